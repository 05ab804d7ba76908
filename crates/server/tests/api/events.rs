//! `GET /events`: every enrolment, challenge, verification and deletion, in the WorkOS shape.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(mfa_activity_is_recorded_and_served_with_filters_and_pagination);

fn names(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

async fn mfa_activity_is_recorded_and_served_with_filters_and_pagination(app: TestApp) {
    let u = app.create_user("events@example.com").await;
    let uid = u["id"].as_str().unwrap();
    let (fid, secret) = app.totp_factor(Some(uid)).await;
    app.clock.advance_millis(1000);
    let c = app.challenge(&fid).await;
    let cid = c["id"].as_str().unwrap();
    assert_eq!(
        app.verify(cid, "000000").await.1["valid"],
        json!(app.totp_code(&secret, 0) == "000000")
    );
    let c2 = app.challenge(&fid).await;
    assert_eq!(
        app.verify(c2["id"].as_str().unwrap(), &app.totp_code(&secret, 0))
            .await
            .1["valid"],
        true
    );
    app.clock.advance_millis(1000);
    app.delete(&format!("/auth/factors/{fid}")).await;

    let (s, all) = app.get("/events?order=asc").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(all["object"], "list");
    assert_eq!(
        names(&all),
        [
            "authentication_factor.created",
            "authentication_challenge.created",
            "authentication.mfa_failed",
            "authentication_challenge.created",
            "authentication.mfa_succeeded",
            "authentication_factor.deleted"
        ]
    );
    let ok = &all["data"][4];
    assert_eq!(ok["object"], "event");
    assert!(ok["id"].as_str().unwrap().starts_with("event_"));
    assert_eq!(ok["data"]["type"], "mfa");
    assert_eq!(ok["data"]["status"], "succeeded");
    assert_eq!(ok["data"]["user_id"], uid);
    assert_eq!(ok["data"]["email"], "events@example.com");
    assert_eq!(ok["data"]["ip_address"], "127.0.0.1");
    let failed = &all["data"][2];
    assert_eq!(
        failed["data"]["error"],
        json!({ "code": "mfa_challenge_failed", "message": "The MFA challenge has failed." })
    );

    // Python repeats the key, Node joins with commas.
    let (_, f1) = app
        .get("/events?events=authentication.mfa_succeeded&events=authentication.mfa_failed")
        .await;
    let (_, f2) = app
        .get("/events?events=authentication.mfa_succeeded,authentication.mfa_failed")
        .await;
    assert_eq!(
        names(&f1),
        ["authentication.mfa_succeeded", "authentication.mfa_failed"]
    );
    assert_eq!(f1, f2);

    let (_, ranged) = app.get("/events?range_start=2026-11-29T12:00:01.000Z&range_end=2026-11-29T12:00:02.000Z&order=asc").await;
    assert_eq!(names(&ranged)[0], "authentication_challenge.created");
    assert!(!names(&ranged).contains(&"authentication_factor.deleted".to_owned()));
    let (s, v) = app.get("/events?range_start=yesterday").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "range_start");

    let (_, p1) = app.get("/events?limit=4").await;
    let after = p1["list_metadata"]["after"].as_str().unwrap();
    let (_, p2) = app.get(&format!("/events?limit=4&after={after}")).await;
    assert_eq!(p2["data"].as_array().unwrap().len(), 2);
    assert_eq!(p2["list_metadata"]["after"], Value::Null);
}
