//! `POST /user_management/authenticate`: password, MFA interruptions, the TOTP grant, tokens.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    client_credentials_are_checked_in_the_oauth_style,
    a_password_only_user_gets_tokens_verifiable_with_the_jwks,
    wrong_passwords_and_unknown_emails_get_the_same_answer_and_are_throttled,
    a_user_with_totp_is_challenged_then_signs_in_with_the_totp_grant,
    required_mfa_makes_a_user_without_factors_enroll_first,
    pending_tokens_are_single_use_and_expire,
    refresh_tokens_rotate_and_a_reused_one_revokes_the_session,
    the_same_pending_token_and_code_in_parallel_give_exactly_one_session,
    parallel_wrong_passwords_never_get_past_the_account_limit,
    successful_sign_ins_do_not_use_up_the_limit,
    a_refresh_retried_within_the_grace_gets_the_same_pair_and_after_it_revokes,
    a_refresh_token_presented_again_by_another_api_key_revokes_the_session,
    a_refresh_token_presented_again_for_another_end_user_address_revokes_the_session,
    parallel_presentations_of_one_refresh_token_rotate_once_and_all_get_the_same_pair,
    refreshes_while_the_signing_key_rotates_never_fail_nor_revoke_the_session,
    a_refresh_that_cannot_sign_leaves_the_refresh_token_unused,
);

async fn parallel_wrong_passwords_never_get_past_the_account_limit(app: TestApp) {
    app.create_user("burst@example.com").await;
    let mut tasks = vec![];
    for _ in 0..30 {
        let http = app.http.clone();
        let url = app.url("/user_management/authenticate");
        let b = json!({ "grant_type": "password", "client_id": app.client_id, "client_secret": app.key, "email": "burst@example.com", "password": "wrong password" });
        tasks.push(tokio::spawn(async move {
            http.post(url).json(&b).send().await.unwrap().status()
        }));
    }
    let mut counts = std::collections::HashMap::new();
    for t in tasks {
        *counts.entry(t.await.unwrap().as_u16()).or_insert(0) += 1;
    }
    assert_eq!(
        counts.get(&400),
        Some(&10),
        "exactly the limit was checked: {counts:?}"
    );
    assert_eq!(counts.get(&429), Some(&20), "{counts:?}");
}

async fn successful_sign_ins_do_not_use_up_the_limit(app: TestApp) {
    app.create_user("often@example.com").await;
    for i in 0..15 {
        let (s, _) = auth(&app, json!({ "grant_type": "password", "email": "often@example.com", "password": "correct horse battery", "ip_address": "203.0.113.7" })).await;
        assert_eq!(s, StatusCode::OK, "sign-in {i}");
    }
}

async fn auth(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.authenticate(body).await
}

async fn password(app: &TestApp, email: &str, pw: &str) -> (StatusCode, Value) {
    auth(
        app,
        json!({ "grant_type": "password", "email": email, "password": pw }),
    )
    .await
}

/// Checks an access token's RS256 signature against the server's JWKS with an independent
/// JWT implementation, and returns its claims.
async fn verify_jwt(app: &TestApp, token: &str) -> Value {
    let (s, jwks) = app.get(&format!("/sso/jwks/{}", app.client_id)).await;
    assert_eq!(s, StatusCode::OK);
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let kid = header.kid.unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("kid in JWKS");
    assert_eq!(jwk["kty"], "RSA");
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.validate_exp = false; // the test clock is not the wall clock
    v.required_spec_claims.clear();
    v.set_audience(&[&app.client_id]); // `aud` is the client id
    v.set_issuer(&[app.state.config.issuer()]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .expect("valid signature")
        .claims
}

async fn client_credentials_are_checked_in_the_oauth_style(app: TestApp) {
    app.create_user("c@example.com").await;
    for (id, secret) in [
        (
            "client_01JZZZZZZZZZZZZZZZZZZZZZZZ".to_owned(),
            app.key.clone(),
        ),
        (app.client_id.clone(), "sk_nope".to_owned()),
    ] {
        let r = app.http.post(app.url("/user_management/authenticate"))
            .json(&json!({ "grant_type": "password", "client_id": id, "client_secret": secret, "email": "c@example.com", "password": "correct horse battery" }))
            .send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_client");
        assert!(v["error_description"].is_string());
    }
    let (s, v) = auth(&app, json!({ "grant_type": "magic" })).await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("unsupported_grant_type"))
    );
}

async fn a_password_only_user_gets_tokens_verifiable_with_the_jwks(app: TestApp) {
    let u = app.create_user("pw@example.com").await;
    let (s, v) = password(&app, "PW@example.com", "correct horse battery").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["id"], u["id"]);
    assert_eq!(v["authentication_method"], "Password");
    assert_eq!(v["user"]["last_sign_in_at"], "2026-11-29T12:00:00.000Z");
    let claims = verify_jwt(&app, v["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], u["id"]);
    assert!(claims["sid"].as_str().unwrap().starts_with("session_"));
    assert_eq!(claims["iat"], crate::helpers::T0 / 1000);
    assert_eq!(claims["exp"], crate::helpers::T0 / 1000 + 300);
    assert!(v["refresh_token"].as_str().unwrap().len() >= 32);
    let (_, got) = app
        .get(&format!(
            "/user_management/users/{}",
            u["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(got["last_sign_in_at"], "2026-11-29T12:00:00.000Z");
    let (s, _) = app.get("/sso/jwks/client_01JZZZZZZZZZZZZZZZZZZZZZZZ").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn wrong_passwords_and_unknown_emails_get_the_same_answer_and_are_throttled(app: TestApp) {
    app.create_user("victim@example.com").await;
    let (s1, v1) = password(&app, "victim@example.com", "wrong password").await;
    let (s2, v2) = password(&app, "nobody@example.com", "wrong password").await;
    assert_eq!(s1, StatusCode::BAD_REQUEST);
    assert_eq!((s1, &v1), (s2, &v2), "no account enumeration");
    assert_eq!(v1["code"], "invalid_credentials");
    for _ in 0..9 {
        password(&app, "victim@example.com", "wrong password").await;
    }
    let r = app.http.post(app.url("/user_management/authenticate"))
        .json(&json!({ "grant_type": "password", "client_id": app.client_id, "client_secret": app.key, "email": "victim@example.com", "password": "correct horse battery" }))
        .send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "10 failures per 15 minutes per account"
    );
    assert!(r.headers().contains_key("retry-after"));
    // Unknown emails are limited exactly like accounts, so a 429 reveals nothing either.
    for _ in 0..9 {
        password(&app, "nobody@example.com", "wrong password").await;
    }
    let (s, _) = password(&app, "nobody@example.com", "wrong password").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance_millis(15 * 60 * 1000);
    assert_eq!(
        password(&app, "victim@example.com", "correct horse battery")
            .await
            .0,
        StatusCode::OK
    );
    let (_, ev) = app
        .get("/events?events=authentication.password_failed&limit=100")
        .await;
    assert_eq!(ev["data"].as_array().unwrap().len(), 20);
}

async fn a_user_with_totp_is_challenged_then_signs_in_with_the_totp_grant(app: TestApp) {
    let u = app.create_user("mfa@example.com").await;
    let uid = u["id"].as_str().unwrap();
    let e = app.enroll_totp(uid, json!({ "type": "totp" })).await;
    let fid = e["authentication_factor"]["id"].as_str().unwrap();
    let secret = e["authentication_factor"]["totp"]["secret"]
        .as_str()
        .unwrap();
    let (s, v) = password(&app, "mfa@example.com", "correct horse battery").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["code"], "mfa_challenge");
    assert_eq!(
        v["authentication_factors"],
        json!([{ "id": fid, "type": "totp" }])
    );
    assert_eq!(v["user"]["id"], uid);
    let pending = v["pending_authentication_token"].as_str().unwrap();
    let c = app.challenge(fid).await;
    let cid = c["id"].as_str().unwrap();
    let grant = |code: String| json!({ "grant_type": "urn:workos:oauth:grant-type:mfa-totp", "code": code, "pending_authentication_token": pending, "authentication_challenge_id": cid });
    let right = app.totp_code(secret, 0);
    let wrong = if right == "000000" {
        "111111".to_owned()
    } else {
        "000000".to_owned()
    };
    let (s, v) = auth(&app, grant(wrong)).await;
    assert_eq!(
        (s, v["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_one_time_code"))
    );
    let (s, v) = auth(&app, grant(right)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["id"], uid);
    assert_eq!(
        verify_jwt(&app, v["access_token"].as_str().unwrap()).await["sub"],
        uid
    );
    let (_, ev) = app
        .get("/events?events=authentication.mfa_succeeded,session.created")
        .await;
    assert_eq!(ev["data"].as_array().unwrap().len(), 2);
}

async fn required_mfa_makes_a_user_without_factors_enroll_first(app: TestApp) {
    let u = app.create_user("enroll@example.com").await;
    let uid = u["id"].as_str().unwrap();
    app.state.store.set_mfa_required(true).await.unwrap();
    let (s, v) = password(&app, "enroll@example.com", "correct horse battery").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["code"], "mfa_enrollment");
    assert_eq!(v["user"]["id"], uid);
    assert!(v.get("authentication_factors").is_none());
    let pending = v["pending_authentication_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = app.enroll_totp(uid, json!({ "type": "totp" })).await;
    let code = app.totp_code(
        e["authentication_factor"]["totp"]["secret"]
            .as_str()
            .unwrap(),
        0,
    );
    let (s, v) = auth(&app, json!({ "grant_type": "urn:workos:oauth:grant-type:mfa-totp", "code": code, "pending_authentication_token": pending, "authentication_challenge_id": e["authentication_challenge"]["id"] })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.state.store.set_mfa_required(false).await.unwrap();
    let other = app.create_user("plain@example.com").await;
    assert_eq!(
        password(&app, "plain@example.com", "correct horse battery")
            .await
            .0,
        StatusCode::OK,
        "{other}"
    );
}

async fn pending_tokens_are_single_use_and_expire(app: TestApp) {
    let u = app.create_user("pending@example.com").await;
    let uid = u["id"].as_str().unwrap();
    let e = app.enroll_totp(uid, json!({ "type": "totp" })).await;
    let fid = e["authentication_factor"]["id"].as_str().unwrap();
    let secret = e["authentication_factor"]["totp"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, v) = password(&app, "pending@example.com", "correct horse battery").await;
    let pending = v["pending_authentication_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = app.challenge(fid).await;
    let g = |cid: &str, code: String, p: &str| json!({ "grant_type": "urn:workos:oauth:grant-type:mfa-totp", "code": code, "pending_authentication_token": p, "authentication_challenge_id": cid });
    assert_eq!(
        auth(
            &app,
            g(
                c["id"].as_str().unwrap(),
                app.totp_code(&secret, 0),
                &pending
            )
        )
        .await
        .0,
        StatusCode::OK
    );
    app.clock.advance_millis(30_000);
    let c2 = app.challenge(fid).await;
    let (s, v) = auth(
        &app,
        g(
            c2["id"].as_str().unwrap(),
            app.totp_code(&secret, 0),
            &pending,
        ),
    )
    .await;
    assert_eq!(
        (s, v["code"].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("invalid_pending_authentication_token")
        ),
        "reused"
    );

    let (_, v) = password(&app, "pending@example.com", "correct horse battery").await;
    let pending2 = v["pending_authentication_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.clock.advance_millis(10 * 60 * 1000);
    let c3 = app.challenge(fid).await;
    let (s, v) = auth(
        &app,
        g(
            c3["id"].as_str().unwrap(),
            app.totp_code(&secret, 0),
            &pending2,
        ),
    )
    .await;
    assert_eq!(
        (s, v["code"].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("invalid_pending_authentication_token")
        ),
        "expired"
    );

    // Another user's challenge cannot finish this sign-in.
    let (_, v) = password(&app, "pending@example.com", "correct horse battery").await;
    let pending3 = v["pending_authentication_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = app.create_user("other@example.com").await;
    let oe = app
        .enroll_totp(other["id"].as_str().unwrap(), json!({ "type": "totp" }))
        .await;
    let ocode = app.totp_code(
        oe["authentication_factor"]["totp"]["secret"]
            .as_str()
            .unwrap(),
        0,
    );
    let (s, v) = auth(
        &app,
        g(
            oe["authentication_challenge"]["id"].as_str().unwrap(),
            ocode,
            &pending3,
        ),
    )
    .await;
    assert_eq!(
        (s, v["code"].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("invalid_authentication_challenge")
        )
    );
}

async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_session(app: TestApp) {
    app.create_user("refresh@example.com").await;
    let (_, v) = password(&app, "refresh@example.com", "correct horse battery").await;
    let r1 = v["refresh_token"].as_str().unwrap().to_owned();
    let sid = verify_jwt(&app, v["access_token"].as_str().unwrap()).await["sid"].clone();
    let (s, v2) = auth(
        &app,
        json!({ "grant_type": "refresh_token", "refresh_token": r1 }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v2}");
    let r2 = v2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    assert_eq!(
        verify_jwt(&app, v2["access_token"].as_str().unwrap()).await["sid"],
        sid,
        "same session"
    );
    // Past the retry grace, a second presentation is reuse.
    app.clock
        .advance_millis(app.state.config.refresh_reuse_grace_ms + 1);
    let (s, v) = auth(
        &app,
        json!({ "grant_type": "refresh_token", "refresh_token": r1 }),
    )
    .await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant")),
        "reuse detected"
    );
    let (s, _) = auth(
        &app,
        json!({ "grant_type": "refresh_token", "refresh_token": r2 }),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "the whole session is revoked");
    let (s, _) = auth(
        &app,
        json!({ "grant_type": "refresh_token", "refresh_token": "nope" }),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

async fn the_same_pending_token_and_code_in_parallel_give_exactly_one_session(app: TestApp) {
    let u = app.create_user("race@example.com").await;
    let e = app
        .enroll_totp(u["id"].as_str().unwrap(), json!({ "type": "totp" }))
        .await;
    let code = app.totp_code(
        e["authentication_factor"]["totp"]["secret"]
            .as_str()
            .unwrap(),
        0,
    );
    let (_, v) = password(&app, "race@example.com", "correct horse battery").await;
    let body = json!({ "grant_type": "urn:workos:oauth:grant-type:mfa-totp", "code": code, "pending_authentication_token": v["pending_authentication_token"], "authentication_challenge_id": e["authentication_challenge"]["id"] });
    let mut tasks = vec![];
    for _ in 0..16 {
        let http = app.http.clone();
        let url = app.url("/user_management/authenticate");
        let mut b = body.clone();
        b["client_id"] = json!(app.client_id);
        b["client_secret"] = json!(app.key);
        tasks.push(tokio::spawn(async move {
            http.post(url).json(&b).send().await.unwrap().status()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
    let (_, ev) = app.get("/events?events=session.created").await;
    assert_eq!(ev["data"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mfa_required_set_from_the_cli_takes_effect_on_a_running_server() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    app.create_user("cli@example.com").await;
    assert_eq!(
        password(&app, "cli@example.com", "correct horse battery")
            .await
            .0,
        StatusCode::OK
    );
    let db = app.db.url.sqlite_path().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "--database-url",
            db.to_str().unwrap(),
            "settings",
            "mfa-required",
            "on",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (s, v) = password(&app, "cli@example.com", "correct horse battery").await;
    assert_eq!(
        (s, v["code"].clone()),
        (StatusCode::FORBIDDEN, json!("mfa_enrollment")),
        "no restart needed"
    );
}

on_both_backends!(a_rotated_signing_key_stays_in_the_jwks_until_its_tokens_expire);

mod totp_grant_lockout {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = crate::helpers::TestApp::spawn_configured(crate::helpers::Backend::Sqlite, |c| {
            c.factor_lockout_after = 2
        })
        .await
        .unwrap();
        super::the_totp_grant_on_a_locked_factor_answers_authentication_factor_locked(app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(app) =
            crate::helpers::TestApp::spawn_configured(crate::helpers::Backend::Postgres, |c| {
                c.factor_lockout_after = 2
            })
            .await
        else {
            return eprintln!("TESSERA_TEST_DATABASE_URL unset: PostgreSQL variant not run");
        };
        super::the_totp_grant_on_a_locked_factor_answers_authentication_factor_locked(app).await;
    }
}

async fn the_totp_grant_on_a_locked_factor_answers_authentication_factor_locked(app: TestApp) {
    let u = app.create_user("locked@example.com").await;
    let uid = u["id"].as_str().unwrap();
    let e = app.enroll_totp(uid, json!({ "type": "totp" })).await;
    let fid = e["authentication_factor"]["id"].as_str().unwrap();
    let secret = e["authentication_factor"]["totp"]["secret"]
        .as_str()
        .unwrap();
    let (_, v) = password(&app, "locked@example.com", "correct horse battery").await;
    let pending = v["pending_authentication_token"].as_str().unwrap();
    let c = app.challenge(fid).await;
    let cid = c["id"].as_str().unwrap();
    let grant = |code: String| json!({ "grant_type": "urn:workos:oauth:grant-type:mfa-totp", "code": code, "pending_authentication_token": pending, "authentication_challenge_id": cid });
    let right = app.totp_code(secret, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..2 {
        let (s, v) = auth(&app, grant(wrong.to_owned())).await;
        assert_eq!(
            (s, v["code"].clone()),
            (StatusCode::BAD_REQUEST, json!("invalid_one_time_code"))
        );
    }
    let (s, v) = auth(&app, grant(right)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["code"], "authentication_factor_locked");
    assert!(
        v["message"].as_str().unwrap().contains("administrator"),
        "{v}"
    );
    assert!(
        v.get("pending_authentication_token").is_none(),
        "no way around the lock: {v}"
    );
}

async fn a_rotated_signing_key_stays_in_the_jwks_until_its_tokens_expire(app: TestApp) {
    app.create_user("rot@example.com").await;
    let (_, v) = password(&app, "rot@example.com", "correct horse battery").await;
    let old_token = v["access_token"].as_str().unwrap().to_owned();
    let old_kid = jsonwebtoken::decode_header(&old_token)
        .unwrap()
        .kid
        .unwrap();
    app.clock.advance_millis(1000);
    use tessera_core::Clock;
    let new_kid = tessera_server::services::signin::rotate_signing_key(
        &app.state.store,
        &app.state.keys,
        app.clock.now(),
    )
    .await
    .unwrap();
    assert_ne!(old_kid, new_kid);
    let (_, v) = password(&app, "rot@example.com", "correct horse battery").await;
    let new_token = v["access_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(new_token).unwrap().kid.unwrap(),
        new_kid
    );
    verify_jwt(&app, &old_token).await;
    verify_jwt(&app, new_token).await;
    app.clock.advance_millis(5 * 60 * 1000);
    let (_, jwks) = app.get(&format!("/sso/jwks/{}", app.client_id)).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [new_kid.as_str()],
        "the old key is gone once its tokens have expired"
    );
}

async fn refresh(app: &TestApp, token: &str) -> (StatusCode, Value) {
    auth(
        app,
        json!({ "grant_type": "refresh_token", "refresh_token": token }),
    )
    .await
}

/// Signs `email` in (creating the user) and returns (access token, refresh token).
async fn signed_in(app: &TestApp, email: &str) -> (String, String) {
    app.create_user(email).await;
    let (s, v) = password(app, email, "correct horse battery").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (
        v["access_token"].as_str().unwrap().to_owned(),
        v["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn a_refresh_retried_within_the_grace_gets_the_same_pair_and_after_it_revokes(app: TestApp) {
    let (_, r1) = signed_in(&app, "retry@example.com").await;
    let (s, v2) = refresh(&app, &r1).await;
    assert_eq!(s, StatusCode::OK, "{v2}");
    // The answer was lost; the client retries with the same token a few seconds later.
    app.clock
        .advance_millis(app.state.config.refresh_reuse_grace_ms - 1);
    let (s, again) = refresh(&app, &r1).await;
    assert_eq!(s, StatusCode::OK, "a retry within the grace: {again}");
    assert_eq!(
        again["refresh_token"], v2["refresh_token"],
        "the same refresh token"
    );
    assert_eq!(
        again["access_token"], v2["access_token"],
        "the same access token"
    );
    assert_eq!(again["user"], v2["user"]);
    let (_, ev) = app.get("/events?events=session.revoked").await;
    assert!(
        ev["data"].as_array().unwrap().is_empty(),
        "nothing revoked: {ev}"
    );
    // After the grace, the same token is reuse: the session ends.
    app.clock.advance_millis(1);
    let (s, v) = refresh(&app, &r1).await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
    let (s, _) = refresh(&app, v2["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "the session is revoked");
    let (_, ev) = app.get("/events?events=session.revoked").await;
    assert_eq!(
        ev["data"][0]["data"]["reason"], "refresh_token_reuse",
        "{ev}"
    );
}

async fn a_refresh_token_presented_again_by_another_api_key_revokes_the_session(app: TestApp) {
    let (_, r1) = signed_in(&app, "other-key@example.com").await;
    let (s, v2) = refresh(&app, &r1).await;
    assert_eq!(s, StatusCode::OK, "{v2}");
    let (_, other) = tessera_server::startup::create_api_key(&app.state.store, &app.clock, "other")
        .await
        .unwrap();
    let r = app
        .http
        .post(app.url("/user_management/authenticate"))
        .json(&json!({ "grant_type": "refresh_token", "refresh_token": r1, "client_id": app.client_id, "client_secret": other }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "not a retry of this client"
    );
    let (s, _) = refresh(&app, v2["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "the session is revoked");
}

async fn parallel_presentations_of_one_refresh_token_rotate_once_and_all_get_the_same_pair(
    app: TestApp,
) {
    let (_, r1) = signed_in(&app, "parallel-refresh@example.com").await;
    let mut tasks = vec![];
    for _ in 0..16 {
        let http = app.http.clone();
        let url = app.url("/user_management/authenticate");
        let b = json!({ "grant_type": "refresh_token", "refresh_token": r1, "client_id": app.client_id, "client_secret": app.key });
        tasks.push(tokio::spawn(async move {
            let r = http.post(url).json(&b).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut answers = vec![];
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{v}");
        answers.push((v["access_token"].clone(), v["refresh_token"].clone()));
    }
    // Each rotation mints its own pair: one pair for all means exactly one rotation.
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    let (s, v) = refresh(&app, answers[0].1.as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "the session goes on: {v}");
}

async fn refreshes_while_the_signing_key_rotates_never_fail_nor_revoke_the_session(app: TestApp) {
    let mut sessions = vec![];
    for i in 0..4 {
        sessions.push(signed_in(&app, &format!("rotating{i}@example.com")).await.1);
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loops = vec![];
    for r in sessions {
        let (http, url, client_id, key) = (
            app.http.clone(),
            app.url("/user_management/authenticate"),
            app.client_id.clone(),
            app.key.clone(),
        );
        let done = done.clone();
        loops.push(tokio::spawn(async move {
            let mut token = r;
            let mut n = 0;
            // Until the rotations are over, and at least a few refreshes each.
            while n < 5 || !done.load(std::sync::atomic::Ordering::Acquire) {
                let b = json!({ "grant_type": "refresh_token", "refresh_token": token, "client_id": client_id, "client_secret": key });
                let resp = http.post(&url).json(&b).send().await.unwrap();
                let status = resp.status();
                let v: Value = resp.json().await.unwrap();
                assert_eq!(status, StatusCode::OK, "refresh {n}: {v}");
                token = v["refresh_token"].as_str().unwrap().to_owned();
                n += 1;
            }
            n
        }));
    }
    use tessera_core::Clock;
    for _ in 0..3 {
        tessera_server::services::signin::rotate_signing_key(
            &app.state.store,
            &app.state.keys,
            app.clock.now(),
        )
        .await
        .unwrap();
        app.clock.advance_millis(1);
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    for l in loops {
        assert!(l.await.unwrap() >= 5);
    }
    let (_, ev) = app.get("/events?events=session.revoked").await;
    assert!(ev["data"].as_array().unwrap().is_empty(), "{ev}");
}

async fn a_refresh_that_cannot_sign_leaves_the_refresh_token_unused(app: TestApp) {
    let (_, r1) = signed_in(&app, "no-key@example.com").await;
    // No usable signing key (as in the middle of the old two-step rotation).
    let active = app
        .state
        .store
        .find_active_signing_key_sealed()
        .await
        .unwrap()
        .unwrap();
    let broken = tessera_store::SigningKeyRow {
        kid: "kid_broken".into(),
        secret_key_id: active.key_id.clone(),
        secret_sealed: vec![0; 40],
        public_jwk: "{}".into(),
        created_at: tessera_core::Timestamp(crate::helpers::T0 + 1),
        retired_at: None,
    };
    app.state
        .store
        .rotate_signing_key(&broken, tessera_core::Timestamp(crate::helpers::T0 + 1))
        .await
        .unwrap();
    let (s, v) = refresh(&app, &r1).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    // A working key again: the very same token still refreshes (it was not used up), and
    // the session is not revoked.
    app.clock
        .advance_millis(app.state.config.refresh_reuse_grace_ms + 1);
    use tessera_core::Clock;
    tessera_server::services::signin::rotate_signing_key(
        &app.state.store,
        &app.state.keys,
        app.clock.now(),
    )
    .await
    .unwrap();
    let (s, v) = refresh(&app, &r1).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn a_refresh_token_presented_again_for_another_end_user_address_revokes_the_session(
    app: TestApp,
) {
    let (_, r1) = signed_in(&app, "other-ip@example.com").await;
    let body = |ip: &str| json!({ "grant_type": "refresh_token", "refresh_token": r1, "ip_address": ip, "user_agent": "Firefox" });
    let (s, v2) = auth(&app, body("198.51.100.7")).await;
    assert_eq!(s, StatusCode::OK, "{v2}");
    let (s, again) = auth(&app, body("198.51.100.7")).await;
    assert_eq!(s, StatusCode::OK, "the same end user retries: {again}");
    assert_eq!(again["refresh_token"], v2["refresh_token"]);
    let (s, v) = auth(&app, body("203.0.113.66")).await;
    assert_eq!(
        (s, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant")),
        "another address is reuse"
    );
    let (s, _) = refresh(&app, v2["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "the session is revoked");
}
