//! `/user_management/users/:id/auth_factors`: TOTP enrolment and listing.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_core::totp::{self, TotpSecret};

use crate::helpers::{decode_qr_data_uri, TestApp, T0};
use crate::on_both_backends;

on_both_backends!(
    enrolling_returns_the_factor_with_its_secret_uri_and_a_scannable_qr_code,
    defaults_are_the_environment_name_and_the_users_email,
    an_imported_secret_is_used_as_given,
    bad_enrolment_requests_are_refused_and_write_nothing,
    listing_factors_never_shows_secrets_and_pages_through_all,
    deleting_a_user_deletes_their_factors,
);

async fn enrolling_returns_the_factor_with_its_secret_uri_and_a_scannable_qr_code(app: TestApp) {
    let u = app.create_user("bob@example.com").await;
    let uid = u["id"].as_str().unwrap();
    let v = app
        .enroll_totp(
            uid,
            json!({ "type": "totp", "totp_issuer": "Foo Corp", "totp_user": "bob@example.com" }),
        )
        .await;
    let f = &v["authentication_factor"];
    let c = &v["authentication_challenge"];
    assert_eq!(f["object"], "authentication_factor");
    assert!(f["id"].as_str().unwrap().starts_with("auth_factor_"));
    assert_eq!(f["type"], "totp");
    assert_eq!(f["user_id"], uid);
    assert_eq!(f["created_at"], "2026-11-29T12:00:00.000Z");
    let secret = f["totp"]["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160-bit secret, base32 without padding");
    assert!(secret
        .chars()
        .all(|ch| ch.is_ascii_uppercase() || ('2'..='7').contains(&ch)));
    let uri = f["totp"]["uri"].as_str().unwrap();
    assert_eq!(
        uri,
        format!("otpauth://totp/Foo%20Corp:bob@example.com?secret={secret}&issuer=Foo%20Corp&algorithm=SHA1&digits=6&period=30")
    );
    assert_eq!(f["totp"]["issuer"], "Foo Corp");
    assert_eq!(f["totp"]["user"], "bob@example.com");
    let qr = f["totp"]["qr_code"].as_str().unwrap();
    assert_eq!(
        decode_qr_data_uri(qr),
        uri,
        "the QR code decodes to exactly the URI"
    );

    assert_eq!(c["object"], "authentication_challenge");
    assert!(c["id"].as_str().unwrap().starts_with("auth_challenge_"));
    assert_eq!(c["authentication_factor_id"], f["id"]);
    assert_eq!(c["created_at"], "2026-11-29T12:00:00.000Z");
    assert_eq!(
        c["expires_at"], "2026-11-29T12:10:00.000Z",
        "10 minutes after creation"
    );
    assert!(
        c.get("code").is_none(),
        "TOTP challenges never carry a code"
    );

    // The secret is a working RFC 6238 key: the code an app would show now is the one the
    // server's own verifier accepts.
    let key = TotpSecret::from_base32(secret).unwrap();
    let now = T0 / 1000;
    let code = totp::code_for_step(&key, totp::step_at(now));
    assert_eq!(totp::verify(&key, &code, now, 1), Some(totp::step_at(now)));
    // And it is what the database holds, sealed.
    let row = app
        .state
        .store
        .get_factor(f["id"].as_str().unwrap())
        .await
        .unwrap();
    let sealed = tessera_core::seal::Sealed {
        key_id: row.secret_key_id.unwrap(),
        blob: row.secret_sealed.unwrap(),
    };
    let opened = app.state.keys.open("totp", &row.id, &sealed).unwrap();
    assert_eq!(&*opened, key.as_bytes());
}

async fn defaults_are_the_environment_name_and_the_users_email(app: TestApp) {
    let u = app.create_user("ada@example.com").await;
    let v = app
        .enroll_totp(u["id"].as_str().unwrap(), json!({ "type": "totp" }))
        .await;
    let t = &v["authentication_factor"]["totp"];
    assert_eq!(t["issuer"], "Tessera Test");
    assert_eq!(t["user"], "ada@example.com");
    assert!(t["uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/Tessera%20Test:ada@example.com?secret="));
    // Two enrolments never share a secret.
    let v2 = app
        .enroll_totp(u["id"].as_str().unwrap(), json!({ "type": "totp" }))
        .await;
    assert_ne!(v2["authentication_factor"]["totp"]["secret"], t["secret"]);
}

async fn an_imported_secret_is_used_as_given(app: TestApp) {
    let u = app.create_user("import@example.com").await;
    let v = app
        .enroll_totp(
            u["id"].as_str().unwrap(),
            json!({ "type": "totp", "totp_secret": "ofaf oqap hr6x mqka iymw u72x ie3d gi3p" }),
        )
        .await;
    assert_eq!(
        v["authentication_factor"]["totp"]["secret"],
        "OFAFOQAPHR6XMQKAIYMWU72XIE3DGI3P"
    );
}

async fn bad_enrolment_requests_are_refused_and_write_nothing(app: TestApp) {
    let u = app.create_user("bad@example.com").await;
    let uid = u["id"].as_str().unwrap();
    let path = format!("/user_management/users/{uid}/auth_factors");
    let cases = [
        (json!({}), "type"),
        (json!({ "type": "sms" }), "type"),
        (
            json!({ "type": "totp", "totp_secret": "JBSWY3DPEHPK3PXP" }),
            "totp_secret",
        ),
        (
            json!({ "type": "totp", "totp_secret": "not base32!" }),
            "totp_secret",
        ),
        (
            json!({ "type": "totp", "totp_issuer": "x".repeat(257) }),
            "totp_issuer",
        ),
        (json!({ "type": "totp", "totp_user": "" }), "totp_user"),
    ];
    for (body, field) in cases {
        let (s, v) = app.post(&path, body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(v["code"], "invalid_request_parameters");
        assert_eq!(v["errors"][0]["field"], field, "{body}");
    }
    let (s, v) = app
        .post(
            "/user_management/users/user_01JZZZZZZZZZZZZZZZZZZZZZZZ/auth_factors",
            json!({ "type": "totp" }),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["code"], "entity_not_found");
    assert_eq!(v["entity_id"], "user_01JZZZZZZZZZZZZZZZZZZZZZZZ");
    let (_, list) = app.get(&path).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

async fn listing_factors_never_shows_secrets_and_pages_through_all(app: TestApp) {
    let u = app.create_user("many@example.com").await;
    let uid = u["id"].as_str().unwrap();
    let other = app.create_user("other@example.com").await;
    app.enroll_totp(other["id"].as_str().unwrap(), json!({ "type": "totp" }))
        .await;
    let mut ids = vec![];
    for _ in 0..12 {
        app.clock.advance_millis(5);
        ids.push(
            app.enroll_totp(uid, json!({ "type": "totp" })).await["authentication_factor"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (s, first) = app
        .get(&format!("/user_management/users/{uid}/auth_factors"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        first["data"].as_array().unwrap().len(),
        10,
        "default limit 10"
    );
    for f in first["data"].as_array().unwrap() {
        assert_eq!(f["user_id"], uid);
        let t = f["totp"].as_object().unwrap();
        assert_eq!(
            t.keys().collect::<Vec<_>>(),
            ["issuer", "user"],
            "no secret, qr_code or uri in lists"
        );
    }
    let mut seen = vec![];
    let mut after: Option<String> = None;
    loop {
        let q = format!(
            "/user_management/users/{uid}/auth_factors?limit=5&order=asc{}",
            after
                .as_ref()
                .map(|a| format!("&after={a}"))
                .unwrap_or_default()
        );
        let (_, p) = app.get(&q).await;
        seen.extend(
            p["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["id"].as_str().unwrap().to_owned()),
        );
        match &p["list_metadata"]["after"] {
            Value::String(a) => after = Some(a.clone()),
            Value::Null => break,
            other => panic!("bad cursor {other}"),
        }
    }
    assert_eq!(seen, ids);
    let (s, _) = app
        .get("/user_management/users/user_01JZZZZZZZZZZZZZZZZZZZZZZZ/auth_factors")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn deleting_a_user_deletes_their_factors(app: TestApp) {
    let u = app.create_user("gone@example.com").await;
    let uid = u["id"].as_str().unwrap();
    let v = app.enroll_totp(uid, json!({ "type": "totp" })).await;
    let fid = v["authentication_factor"]["id"].as_str().unwrap();
    let cid = v["authentication_challenge"]["id"].as_str().unwrap();
    assert!(app.state.store.find_factor(fid).await.unwrap().is_some());
    app.delete(&format!("/user_management/users/{uid}")).await;
    assert!(app.state.store.find_factor(fid).await.unwrap().is_none());
    assert!(app.state.store.find_challenge(cid).await.unwrap().is_none());
}
