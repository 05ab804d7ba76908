//! The `authorization_code` grant, sessions that end (list, revoke, expiry, ending on a
//! password change, factor or user deletion) and users by external id.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_server::services::authkit::{self, AuthorizeQuery};
use tessera_server::services::events::RequestMeta;

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    a_code_signs_in_with_the_same_body_as_the_password_grant,
    a_code_is_redeemed_once_even_by_parallel_requests,
    a_code_expires_after_ten_minutes,
    pkce_binds_the_code_to_its_verifier,
    a_code_is_bound_to_the_client,
    sessions_are_listed_newest_first_with_what_the_sdks_read,
    a_revoked_session_refreshes_no_more,
    a_session_expires_after_inactivity,
    a_session_expires_at_its_maximum_age_however_active,
    a_password_change_ends_every_session_of_the_user,
    deleting_a_factor_or_the_user_ends_the_sessions,
    users_are_found_by_external_id,
    a_code_grant_bounds_the_request_strings_and_a_bad_address_keeps_the_code,
    a_used_token_of_an_ended_session_neither_replays_nor_revokes,
    a_cancelled_hosted_password_check_still_records_its_outcome,
);

pub(crate) const CALLBACK: &str = "https://app.example.com/callback";
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub(crate) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub(crate) async fn auth(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let r = app
        .http
        .post(app.url("/user_management/authenticate"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

/// `body` with this app's client id and secret.
fn confidential(app: &TestApp, mut body: Value) -> Value {
    body["client_id"] = json!(app.client_id);
    body["client_secret"] = json!(app.key);
    body
}

/// The claims of a JWT, unverified (the signature is checked by the sign-in tests).
pub(crate) fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// A code for `user_id`, issued as the hosted pages issue it, with an optional PKCE challenge.
async fn code_for(app: &TestApp, user_id: &str, challenge: Option<&str>) -> String {
    app.state
        .store
        .add_redirect_uri(CALLBACK, tessera_core::Timestamp(0))
        .await
        .unwrap();
    let q = AuthorizeQuery {
        client_id: Some(app.client_id.clone()),
        redirect_uri: Some(CALLBACK.into()),
        response_type: Some("code".into()),
        provider: Some("authkit".into()),
        state: Some("st".into()),
        code_challenge: challenge.map(str::to_owned),
        code_challenge_method: challenge.map(|_| "S256".to_owned()),
        ..Default::default()
    };
    let req = authkit::check_authorize(&app.state, &q).await.unwrap();
    let meta = RequestMeta {
        ip_address: Some("198.51.100.4".into()),
        user_agent: Some("Browser/1.0".into()),
    };
    let url = authkit::issue_code(&app.state, &req, user_id, None, &meta)
        .await
        .unwrap();
    let query = url.strip_prefix(&format!("{CALLBACK}?")).unwrap();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    assert_eq!(pairs[1], ("state".to_owned(), "st".to_owned()));
    pairs[0].1.clone()
}

async fn user(app: &TestApp, email: &str) -> String {
    app.create_user(email).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn password_sign_in(app: &TestApp, email: &str, extra: Value) -> Value {
    let mut b = confidential(
        app,
        json!({ "grant_type": "password", "email": email, "password": "correct horse battery" }),
    );
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    let (s, v) = auth(app, b).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn refresh(app: &TestApp, token: &str) -> (StatusCode, Value) {
    auth(
        app,
        confidential(
            app,
            json!({ "grant_type": "refresh_token", "refresh_token": token }),
        ),
    )
    .await
}

async fn sessions(app: &TestApp, user_id: &str) -> Vec<Value> {
    let (s, v) = app
        .get(&format!("/user_management/users/{user_id}/sessions"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "list");
    v["data"].as_array().unwrap().clone()
}

const DAY: i64 = 86_400_000;

async fn a_code_signs_in_with_the_same_body_as_the_password_grant(app: TestApp) {
    let uid = user(&app, "code@example.com").await;
    let code = code_for(&app, &uid, None).await;
    let (s, v) = auth(
        &app,
        confidential(
            &app,
            json!({ "grant_type": "authorization_code", "code": code }),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["id"], uid);
    assert_eq!(v["user"]["object"], "user");
    assert_eq!(v["authentication_method"], "Password");
    assert!(v["refresh_token"].as_str().unwrap().len() >= 40);
    let c = claims(v["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], uid);
    let list = sessions(&app, &uid).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], c["sid"], "the token names its session");
    assert_eq!(list[0]["status"], "active");
    // The browser's address, recorded with the code, since the backend sent none.
    assert_eq!(list[0]["ip_address"], "198.51.100.4");
    assert_eq!(list[0]["user_agent"], "Browser/1.0");
    let (s, v) = refresh(&app, v["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "the code's session refreshes: {v}");
}

async fn a_code_is_redeemed_once_even_by_parallel_requests(app: TestApp) {
    let uid = user(&app, "race@example.com").await;
    let code = code_for(&app, &uid, None).await;
    let body = confidential(
        &app,
        json!({ "grant_type": "authorization_code", "code": code }),
    );
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (http, url, b) = (
                app.http.clone(),
                app.url("/user_management/authenticate"),
                body.clone(),
            );
            tokio::spawn(async move {
                let r = http.post(url).json(&b).send().await.unwrap();
                (r.status(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        if s == StatusCode::OK {
            wins += 1;
        } else {
            assert_eq!(
                (s, v["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_grant"))
            );
        }
    }
    assert_eq!(wins, 1, "exactly one redemption wins");
    assert_eq!(sessions(&app, &uid).await.len(), 1, "one session");
    let (s, v) = auth(&app, body).await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
}

async fn a_code_expires_after_ten_minutes(app: TestApp) {
    let uid = user(&app, "late@example.com").await;
    let in_time = code_for(&app, &uid, None).await;
    let too_late = code_for(&app, &uid, None).await;
    app.clock.advance_millis(10 * 60 * 1000 - 1);
    let (s, v) = auth(
        &app,
        confidential(
            &app,
            json!({ "grant_type": "authorization_code", "code": in_time }),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.clock.advance_millis(1);
    let (s, v) = auth(
        &app,
        confidential(
            &app,
            json!({ "grant_type": "authorization_code", "code": too_late }),
        ),
    )
    .await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );

    // Expired codes (used or not) and browser sessions answer nothing any more, so the
    // maintenance task deletes them; a live browser session stays.
    let now = tessera_core::Clock::now(&app.clock);
    let store = &app.state.store;
    store
        .insert_browser_session(
            "browser_session_old",
            b"old",
            &uid,
            now.minus_millis(5),
            now,
        )
        .await
        .unwrap();
    store
        .insert_browser_session("browser_session_new", b"new", &uid, now, now.plus_millis(1))
        .await
        .unwrap();
    let pruned = tessera_server::maintenance::prune(&app.state, 1)
        .await
        .unwrap();
    assert_eq!(
        (pruned.authorization_codes, pruned.browser_sessions),
        (2, 1),
        "{pruned:?}"
    );
    assert!(store
        .find_browser_session(b"new", now)
        .await
        .unwrap()
        .is_some());
}

async fn pkce_binds_the_code_to_its_verifier(app: TestApp) {
    let uid = user(&app, "pkce@example.com").await;
    let public = |code: &str, verifier: &str| json!({ "grant_type": "authorization_code", "client_id": app.client_id, "code": code, "code_verifier": verifier });
    // A public client: the verifier alone.
    let code = code_for(&app, &uid, Some(CHALLENGE)).await;
    let (s, v) = auth(&app, public(&code, VERIFIER)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // A wrong verifier fails, and spends the code.
    let code = code_for(&app, &uid, Some(CHALLENGE)).await;
    let wrong = format!("{}A", &VERIFIER[..42]);
    let (s, v) = auth(&app, public(&code, &wrong)).await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
    let (s, _) = auth(&app, public(&code, VERIFIER)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "the code is spent");
    // Neither secret nor verifier: not a client at all.
    let code = code_for(&app, &uid, Some(CHALLENGE)).await;
    let (s, v) = auth(
        &app,
        json!({ "grant_type": "authorization_code", "client_id": app.client_id, "code": code }),
    )
    .await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_client"))
    );
    // The secret does not replace the verifier of a code issued with a challenge...
    let (s, v) = auth(
        &app,
        confidential(
            &app,
            json!({ "grant_type": "authorization_code", "code": code }),
        ),
    )
    .await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
    // ...and with both, both are checked (AuthKit's Next.js library sends both).
    let code = code_for(&app, &uid, Some(CHALLENGE)).await;
    let both = |code: &str, verifier: &str, secret: &str| json!({ "grant_type": "authorization_code", "client_id": app.client_id, "client_secret": secret, "code": code, "code_verifier": verifier });
    let (s, v) = auth(&app, both(&code, &wrong, &app.key)).await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
    let code = code_for(&app, &uid, Some(CHALLENGE)).await;
    let (s, v) = auth(&app, both(&code, VERIFIER, "sk_wrong")).await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_client"))
    );
    let (s, v) = auth(&app, both(&code, VERIFIER, &app.key)).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "a refused client did not spend the code: {v}"
    );
    // A verifier for a code issued without a challenge is refused.
    let code = code_for(&app, &uid, None).await;
    let (s, v) = auth(&app, both(&code, VERIFIER, &app.key)).await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
}

async fn a_code_is_bound_to_the_client(app: TestApp) {
    let uid = user(&app, "client@example.com").await;
    let code = code_for(&app, &uid, Some(CHALLENGE)).await;
    for other in ["client_01OTHERCLIENT0000000000000", ""] {
        let (s, v) = auth(
            &app,
            json!({ "grant_type": "authorization_code", "client_id": other, "client_secret": app.key, "code": code, "code_verifier": VERIFIER }),
        )
        .await;
        assert_eq!(
            (s, v["error"].clone()),
            (StatusCode::BAD_REQUEST, json!("invalid_client"))
        );
        let (s, v) = auth(
            &app,
            json!({ "grant_type": "authorization_code", "client_id": other, "code": code, "code_verifier": VERIFIER }),
        )
        .await;
        assert_eq!(
            (s, v["error"].clone()),
            (StatusCode::BAD_REQUEST, json!("invalid_client"))
        );
    }
    // The code was issued to this client and still works for it.
    let (s, v) = auth(
        &app,
        json!({ "grant_type": "authorization_code", "client_id": app.client_id, "code": code, "code_verifier": VERIFIER }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn sessions_are_listed_newest_first_with_what_the_sdks_read(app: TestApp) {
    let uid = user(&app, "list@example.com").await;
    let long_agent = "A".repeat(2000);
    let first = password_sign_in(
        &app,
        "list@example.com",
        json!({ "ip_address": "203.0.113.9", "user_agent": long_agent }),
    )
    .await;
    app.clock.advance_millis(1000);
    let second = password_sign_in(&app, "list@example.com", json!({})).await;
    let list = sessions(&app, &uid).await;
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0]["id"],
        claims(second["access_token"].as_str().unwrap())["sid"]
    );
    assert_eq!(
        list[1]["id"],
        claims(first["access_token"].as_str().unwrap())["sid"]
    );
    let s = &list[1];
    for key in [
        "object",
        "id",
        "user_id",
        "status",
        "auth_method",
        "ip_address",
        "user_agent",
        "expires_at",
        "ended_at",
        "created_at",
        "updated_at",
    ] {
        assert!(s.get(key).is_some(), "{key} in {s}");
    }
    assert_eq!(s["object"], "session");
    assert_eq!(s["user_id"], uid);
    assert_eq!(s["auth_method"], "password");
    assert_eq!(s["status"], "active");
    assert_eq!(s["ended_at"], Value::Null);
    assert_eq!(s["ip_address"], "203.0.113.9");
    assert_eq!(s["user_agent"].as_str().unwrap().len(), 512, "truncated");
    // Seven days of inactivity come before thirty days of age.
    assert_eq!(s["expires_at"], "2026-12-06T12:00:00.000Z");
    let (st, page) = app
        .get(&format!(
            "/user_management/users/{uid}/sessions?limit=1&order=asc"
        ))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(page["data"][0]["id"], list[1]["id"]);
    assert!(page["list_metadata"]["after"].is_string());
    let (st, v) = app
        .get("/user_management/users/user_01NOBODY000000000000000000/sessions")
        .await;
    assert_eq!(
        (st, v["code"].clone()),
        (StatusCode::NOT_FOUND, json!("entity_not_found"))
    );
}

async fn a_revoked_session_refreshes_no_more(app: TestApp) {
    let uid = user(&app, "revoke@example.com").await;
    let v = password_sign_in(&app, "revoke@example.com", json!({})).await;
    let other = password_sign_in(&app, "revoke@example.com", json!({})).await;
    let sid = claims(v["access_token"].as_str().unwrap())["sid"].clone();
    app.clock.advance_millis(5000);
    let (s, r) = app
        .post(
            "/user_management/sessions/revoke",
            json!({ "session_id": sid }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "revoked");
    let (s, e) = refresh(&app, v["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (s, e["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
    let (s, _) = refresh(&app, other["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "only that session ended");
    let list = sessions(&app, &uid).await;
    let ended = list.iter().find(|x| x["id"] == sid).unwrap();
    assert_eq!(ended["status"], "revoked");
    assert_eq!(ended["ended_at"], "2026-11-29T12:00:05.000Z");
    // Again: no change, no error.
    let (s, _) = app
        .post(
            "/user_management/sessions/revoke",
            json!({ "session_id": sid }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, ev) = app.get("/events?events=session.revoked").await;
    assert_eq!(ev["data"].as_array().unwrap().len(), 1, "one event: {ev}");
    assert_eq!(ev["data"][0]["data"]["id"], sid);
    let (s, v) = app
        .post(
            "/user_management/sessions/revoke",
            json!({ "session_id": "session_01NOPE0000000000000000000" }),
        )
        .await;
    assert_eq!(
        (s, v["code"].clone()),
        (StatusCode::NOT_FOUND, json!("entity_not_found"))
    );
    let (s, v) = app
        .post("/user_management/sessions/revoke", json!({}))
        .await;
    assert_eq!(
        (s, v["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("session_id"))
    );
}

async fn a_session_expires_after_inactivity(app: TestApp) {
    let uid = user(&app, "idle@example.com").await;
    let v = password_sign_in(&app, "idle@example.com", json!({})).await;
    let mut token = v["refresh_token"].as_str().unwrap().to_owned();
    // Each refresh within the 7 days moves the deadline.
    for _ in 0..2 {
        app.clock.advance_millis(7 * DAY - 1);
        let (s, v) = refresh(&app, &token).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        token = v["refresh_token"].as_str().unwrap().to_owned();
    }
    app.clock.advance_millis(7 * DAY);
    let (s, e) = refresh(&app, &token).await;
    assert_eq!(
        (s, e["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
    let s = &sessions(&app, &uid).await[0];
    assert_eq!(s["status"], "expired");
    assert_eq!(s["ended_at"], s["expires_at"]);
    assert_eq!(
        s["ended_at"], "2026-12-20T11:59:59.998Z",
        "7 days after the last refresh"
    );
}

async fn a_session_expires_at_its_maximum_age_however_active(app: TestApp) {
    let uid = user(&app, "old@example.com").await;
    let v = password_sign_in(&app, "old@example.com", json!({})).await;
    let mut token = v["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..4 {
        app.clock.advance_millis(6 * DAY);
        let (s, v) = refresh(&app, &token).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        token = v["refresh_token"].as_str().unwrap().to_owned();
    }
    app.clock.advance_millis(6 * DAY - 1);
    let (st, v) = refresh(&app, &token).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    token = v["refresh_token"].as_str().unwrap().to_owned();
    // Day 30: the age limit, however recent the last refresh.
    let s = &sessions(&app, &uid).await[0];
    assert_eq!(s["expires_at"], "2026-12-29T12:00:00.000Z");
    app.clock.advance_millis(1);
    let (st, e) = refresh(&app, &token).await;
    assert_eq!(
        (st, e["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
    assert_eq!(sessions(&app, &uid).await[0]["status"], "expired");
}

async fn a_password_change_ends_every_session_of_the_user(app: TestApp) {
    let uid = user(&app, "change@example.com").await;
    let bystander = user(&app, "bystander@example.com").await;
    let a = password_sign_in(&app, "change@example.com", json!({})).await;
    let b = password_sign_in(&app, "change@example.com", json!({})).await;
    let c = password_sign_in(&app, "bystander@example.com", json!({})).await;
    let code = code_for(&app, &uid, None).await;
    let (s, _) = app
        .put(
            &format!("/user_management/users/{uid}"),
            json!({ "first_name": "Ada" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, a2) = refresh(&app, a["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "other changes keep the sessions: {a2}");
    let (s, _) = app
        .put(
            &format!("/user_management/users/{uid}"),
            json!({ "password": "a brand new passphrase" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for t in [&a2, &b] {
        let (s, e) = refresh(&app, t["refresh_token"].as_str().unwrap()).await;
        assert_eq!(
            (s, e["error"].clone()),
            (StatusCode::BAD_REQUEST, json!("invalid_grant"))
        );
    }
    let (s, _) = auth(
        &app,
        confidential(
            &app,
            json!({ "grant_type": "authorization_code", "code": code }),
        ),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "an unredeemed code dies with the password"
    );
    for s in sessions(&app, &uid).await {
        assert_eq!(s["status"], "revoked", "{s}");
    }
    let (s, _) = refresh(&app, c["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "other users keep theirs");
    assert_eq!(sessions(&app, &bystander).await[0]["status"], "active");
    let (_, ev) = app.get("/events?events=session.revoked").await;
    assert_eq!(ev["data"].as_array().unwrap().len(), 2, "{ev}");
}

async fn deleting_a_factor_or_the_user_ends_the_sessions(app: TestApp) {
    let uid = user(&app, "factor@example.com").await;
    let enrolled = app.enroll_totp(&uid, json!({ "type": "totp" })).await;
    let fid = enrolled["authentication_factor"]["id"].as_str().unwrap();
    let secret = enrolled["authentication_factor"]["totp"]["secret"]
        .as_str()
        .unwrap();
    let (s, step) = auth(
        &app,
        confidential(&app, json!({ "grant_type": "password", "email": "factor@example.com", "password": "correct horse battery" })),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = auth(
        &app,
        confidential(
            &app,
            json!({
                "grant_type": "urn:workos:oauth:grant-type:mfa-totp",
                "code": app.totp_code(secret, 0),
                "pending_authentication_token": step["pending_authentication_token"],
                "authentication_challenge_id": enrolled["authentication_challenge"]["id"],
            }),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = app.delete(&format!("/auth/factors/{fid}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = refresh(&app, v["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "the factor's deletion ended the session"
    );
    assert_eq!(sessions(&app, &uid).await[0]["status"], "revoked");

    let v = password_sign_in(&app, "factor@example.com", json!({})).await;
    let sid = claims(v["access_token"].as_str().unwrap())["sid"].clone();
    let (s, _) = app.delete(&format!("/user_management/users/{uid}")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = refresh(&app, v["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, ev) = app.get("/events?events=session.revoked").await;
    assert!(
        ev["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["data"]["id"] == sid),
        "the deleted user's session got its event: {ev}"
    );
}

async fn users_are_found_by_external_id(app: TestApp) {
    let (s, u) = app
        .post(
            "/user_management/users",
            json!({ "email": "ext@example.com", "external_id": "crm-42/a b" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let (s, v) = app
        .get("/user_management/users/external_id/crm-42%2Fa%20b")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["id"], u["id"]);
    assert_eq!(v["external_id"], "crm-42/a b");
    let (s, v) = app.get("/user_management/users/external_id/nobody").await;
    assert_eq!(
        (s, v["code"].clone()),
        (StatusCode::NOT_FOUND, json!("entity_not_found"))
    );
    let r = app
        .http
        .get(app.url("/user_management/users/external_id/crm-42"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

// ---- the merge of main (issue 12) into authkit ---------------------------------------------

async fn a_code_grant_bounds_the_request_strings_and_a_bad_address_keeps_the_code(app: TestApp) {
    let uid = user(&app, "bounds@example.com").await;
    let code = code_for(&app, &uid, None).await;
    let grant = |extra: Value| {
        let mut b = confidential(
            &app,
            json!({ "grant_type": "authorization_code", "code": code }),
        );
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let (s, e) = auth(&app, grant(json!({ "ip_address": "not an address" }))).await;
    assert_eq!(
        (s, e["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("ip_address")),
        "{e}"
    );
    let agent = "é".repeat(400);
    let (s, v) = auth(
        &app,
        grant(json!({ "ip_address": " 2001:DB8::1 ", "user_agent": agent })),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the refused request did not spend the code: {v}"
    );
    let listed = &sessions(&app, &uid).await[0];
    assert_eq!(listed["ip_address"], "2001:db8::1", "parsed and canonical");
    assert_eq!(
        listed["user_agent"].as_str().unwrap().len(),
        512,
        "cut to 512 bytes on a character boundary"
    );
}

async fn a_used_token_of_an_ended_session_neither_replays_nor_revokes(app: TestApp) {
    let uid = user(&app, "ended@example.com").await;
    let v = password_sign_in(&app, "ended@example.com", json!({})).await;
    let first = v["refresh_token"].as_str().unwrap().to_owned();
    let (s, r) = refresh(&app, &first).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    // Within the retry grace the same client gets the same answer.
    let (s, again) = refresh(&app, &first).await;
    assert_eq!(
        (s, &again["refresh_token"]),
        (StatusCode::OK, &r["refresh_token"])
    );
    // The session then ends by inactivity; presenting the used token is no reuse to punish.
    app.clock.advance_millis(7 * DAY);
    let (s, e) = refresh(&app, &first).await;
    assert_eq!(
        (s, e["error_description"].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("The refresh token is invalid or its session has ended.")
        )
    );
    assert_eq!(sessions(&app, &uid).await[0]["status"], "expired");
    let (_, ev) = app.get("/events?events=session.revoked").await;
    assert_eq!(ev["data"].as_array().unwrap().len(), 0, "{ev}");
}

async fn a_cancelled_hosted_password_check_still_records_its_outcome(app: TestApp) {
    use std::time::Duration;
    use tessera_server::services::signin;
    app.create_user("hosted-gone@example.com").await;
    let state = app.state.clone();
    let free = state.hashing.available_permits();
    // Hold every Argon2 buffer, so the check stops once it holds its permit.
    let pool = state.password_memory.clone();
    let held: Vec<_> = (0..pool.max_buffers()).map(|_| pool.lease()).collect();
    let request = tokio::spawn({
        let state = state.clone();
        async move {
            let meta = RequestMeta {
                ip_address: Some("198.51.100.9".into()),
                user_agent: Some("Browser/1.0".into()),
            };
            signin::check_password(
                &state,
                "hosted-gone@example.com",
                "wrong password",
                Some("198.51.100.9"),
                &meta,
            )
            .await
        }
    });
    tokio::time::timeout(Duration::from_secs(30), async {
        while state.hashing.available_permits() == free {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the check reached its hash");
    // The browser goes away: the page handler's future is dropped.
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled());
    drop(held);
    let failed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let (_, ev) = app
                .get("/events?events=authentication.password_failed")
                .await;
            if !ev["data"].as_array().unwrap().is_empty() {
                return ev;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("authentication.password_failed was written");
    assert_eq!(
        failed["data"][0]["data"]["email"], "hosted-gone@example.com",
        "{failed}"
    );
    // And counted, by the same task, right after.
    tokio::time::timeout(Duration::from_secs(30), async {
        while crate::metrics::Scrape::of_state(&state).count(
            "tessera_sign_ins_total",
            &[("grant", "hosted_password"), ("result", "failed")],
        ) != 1.0
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the cancelled check was counted as a failed hosted_password sign-in");
}
