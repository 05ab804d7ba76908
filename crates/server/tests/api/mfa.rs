//! The standalone MFA API: enrol, get, delete, challenge, verify, and every verification
//! rule (window, replay, single use, expiry, attempt and rate limits), with the clock injected.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    enrolling_each_factor_type_validates_its_fields,
    factors_can_be_read_without_secrets_and_deleted,
    deleting_a_factor_kills_its_open_challenges,
    challenges_expire_ten_minutes_after_creation_and_carry_codes_only_for_generic_otp,
    a_correct_totp_code_verifies_once_and_the_challenge_is_single_use,
    a_totp_code_is_accepted_only_once_across_challenges,
    the_totp_window_is_one_step_either_side,
    an_expired_challenge_refuses_even_the_right_code,
    five_wrong_codes_kill_a_challenge_even_for_the_right_code,
    failures_per_factor_are_rate_limited_with_retry_after_and_released_by_time,
    failures_per_user_hit_a_ceiling_of_100_per_hour,
    generic_otp_codes_verify_once_and_are_stored_only_as_a_mac,
    verify_requests_are_validated,
    a_hundred_consecutive_failures_lock_the_factor_until_an_administrator_unlocks_it,
);

mod lockout_threshold {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = TestApp::spawn_configured(crate::helpers::Backend::Sqlite, |c| {
            c.factor_lockout_after = 3
        })
        .await
        .unwrap();
        a_right_code_resets_the_consecutive_failures_and_only_wrong_codes_in_a_row_lock(app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(app) = TestApp::spawn_configured(crate::helpers::Backend::Postgres, |c| {
            c.factor_lockout_after = 3
        })
        .await
        else {
            return eprintln!("TESSERA_TEST_DATABASE_URL unset: PostgreSQL variant not run");
        };
        a_right_code_resets_the_consecutive_failures_and_only_wrong_codes_in_a_row_lock(app).await;
    }
}

/// A code that is wrong for `secret` at the server's clock (not the code of any step in the
/// window).
fn wrong_code(app: &TestApp, secret: &str) -> String {
    let near: Vec<String> = (-1..=1).map(|d| app.totp_code(secret, d)).collect();
    ["000000", "111111", "222222", "333333"]
        .into_iter()
        .find(|c| !near.iter().any(|n| n == c))
        .unwrap()
        .to_owned()
}

async fn a_hundred_consecutive_failures_lock_the_factor_until_an_administrator_unlocks_it(
    app: TestApp,
) {
    let (fid, secret) = app.totp_factor(None).await;
    let mut cid = String::new();
    for i in 0..100 {
        if i % 5 == 0 {
            cid = app.challenge(&fid).await["id"].as_str().unwrap().to_owned();
        }
        let (s, v) = app.verify(&cid, &wrong_code(&app, &secret)).await;
        assert_eq!(
            (s, &v["valid"]),
            (StatusCode::CREATED, &json!(false)),
            "failure {i}: {v}"
        );
        // One failure per 90 s stays inside the factor's rate limit (10 per 15 min), so
        // only the lockout can stop the guessing.
        app.clock.advance_millis(90_000);
    }
    let lock = app
        .state
        .store
        .find_factor_lock(&fid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lock.consecutive_failures, 100);
    assert!(lock.locked_at.is_some());
    let (_, evs) = app.get("/events?events=authentication_factor.locked").await;
    assert_eq!(evs["data"].as_array().unwrap().len(), 1, "{evs}");
    assert_eq!(evs["data"][0]["data"]["id"], json!(fid));

    // Locked: even the right code is refused, with a code of its own.
    let c = app.challenge(&fid).await;
    let c_id = c["id"].as_str().unwrap();
    let (s, v) = app.verify(c_id, &app.totp_code(&secret, 0)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["code"], "authentication_factor_locked");
    assert_eq!(v["authentication_factor_id"], json!(fid));
    // The lock does not expire with time, as rate limits do.
    app.clock.advance_millis(24 * 3600 * 1000);
    let c = app.challenge(&fid).await;
    let c_id = c["id"].as_str().unwrap();
    let (s, _) = app.verify(c_id, &app.totp_code(&secret, 0)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "still locked a day later");
    let (_, evs) = app.get("/events?events=authentication.mfa_failed").await;
    assert_eq!(
        evs["data"][0]["data"]["error"]["code"], "authentication_factor_locked",
        "the refused attempt is recorded"
    );

    // The administrator unlocks it (what `tessera factors unlock` runs).
    use tessera_core::Clock;
    tessera_server::services::mfa::unlock_factor(&app.state.store, app.clock.now(), &fid)
        .await
        .unwrap();
    let (s, v) = app.verify(c_id, &app.totp_code(&secret, 0)).await;
    assert_eq!((s, &v["valid"]), (StatusCode::CREATED, &json!(true)), "{v}");
    let (_, evs) = app
        .get("/events?events=authentication_factor.unlocked")
        .await;
    assert_eq!(evs["data"][0]["data"]["id"], json!(fid));
    assert_eq!(evs["data"][0]["data"]["was_locked"], json!(true));
}

async fn a_right_code_resets_the_consecutive_failures_and_only_wrong_codes_in_a_row_lock(
    app: TestApp,
) {
    let (fid, secret) = app.totp_factor(None).await;
    let cid = app.challenge(&fid).await["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (_, v) = app.verify(&cid, &wrong_code(&app, &secret)).await;
        assert_eq!(v["valid"], false);
    }
    let (_, v) = app.verify(&cid, &app.totp_code(&secret, 0)).await;
    assert_eq!(v["valid"], true, "the third attempt is right: no lock");
    let lock = app
        .state
        .store
        .find_factor_lock(&fid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((lock.consecutive_failures, lock.locked_at), (0, None));
    let cid = app.challenge(&fid).await["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (_, v) = app.verify(&cid, &wrong_code(&app, &secret)).await;
        assert_eq!(v["valid"], false);
    }
    // A replay of the accepted code is refused but does not count as the third failure.
    let (s, v) = app.verify(&cid, &app.totp_code(&secret, 0)).await;
    assert_eq!((s, &v["valid"]), (StatusCode::CREATED, &json!(false)));
    let lock = app
        .state
        .store
        .find_factor_lock(&fid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((lock.consecutive_failures, lock.locked_at), (2, None));
    let cid = app.challenge(&fid).await["id"].as_str().unwrap().to_owned();
    let (s, v) = app.verify(&cid, &wrong_code(&app, &secret)).await;
    assert_eq!(
        (s, &v["valid"]),
        (StatusCode::CREATED, &json!(false)),
        "the locking failure is still evaluated"
    );
    app.clock.advance_millis(30_000);
    let (s, v) = app.verify(&cid, &app.totp_code(&secret, 0)).await;
    assert_eq!(
        (s, &v["code"]),
        (
            StatusCode::FORBIDDEN,
            &json!("authentication_factor_locked")
        )
    );
}

async fn enrolling_each_factor_type_validates_its_fields(app: TestApp) {
    let (s, v) = app
        .post("/auth/factors/enroll", json!({ "type": "totp" }))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["totp_issuer", "totp_user"]);

    let (s, v) = app
        .post(
            "/auth/factors/enroll",
            json!({ "type": "sms", "phone_number": "foo" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        v,
        json!({ "code": "invalid_phone_number", "message": "Phone number is invalid: 'foo'" })
    );

    let (s, f) = app
        .post(
            "/auth/factors/enroll",
            json!({ "type": "sms", "phone_number": "+1 (607) 351-7112" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(f["sms"], json!({ "phone_number": "+16073517112" }));
    assert!(f.get("totp").is_none());

    let (s, f) = app
        .post("/auth/factors/enroll", json!({ "type": "generic_otp" }))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(f["type"], "generic_otp");
    assert!(f.get("totp").is_none() && f.get("sms").is_none() && f.get("user_id").is_none());

    let (s, f) = app
        .post(
            "/auth/factors/enroll",
            json!({ "type": "totp", "totp_issuer": "Foo Corp", "totp_user": "bob@example.com" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let t = f["totp"].as_object().unwrap();
    for k in ["issuer", "user", "secret", "qr_code", "uri"] {
        assert!(t.contains_key(k), "{k}");
    }
    assert_eq!(
        crate::helpers::decode_qr_data_uri(t["qr_code"].as_str().unwrap()),
        t["uri"].as_str().unwrap()
    );

    let (s, _) = app
        .post("/auth/factors/enroll", json!({ "type": "webauthn" }))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v) = app
        .post(
            "/auth/factors/enroll",
            json!({ "type": "generic_otp", "user_id": "user_01JZZZZZZZZZZZZZZZZZZZZZZZ" }),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["code"], "entity_not_found");

    let u = app.create_user("owner@example.com").await;
    let (fid, _) = app.totp_factor(u["id"].as_str()).await;
    let (_, list) = app
        .get(&format!(
            "/user_management/users/{}/auth_factors",
            u["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        list["data"][0]["id"],
        fid.as_str(),
        "a standalone factor with user_id is the user's factor"
    );
}

async fn factors_can_be_read_without_secrets_and_deleted(app: TestApp) {
    let (fid, _) = app.totp_factor(None).await;
    let (s, f) = app.get(&format!("/auth/factors/{fid}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        f["totp"],
        json!({ "issuer": "Foo Corp", "user": "alan@example.com" })
    );
    let r = app
        .http
        .delete(app.url(&format!("/auth/factors/{fid}")))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.text().await.unwrap(), "");
    let (s, v) = app.get(&format!("/auth/factors/{fid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        v,
        json!({ "code": "entity_not_found", "entity_id": fid, "message": format!("Authentication Factor not found: '{fid}'.") })
    );
    let (s, _) = app.delete(&format!("/auth/factors/{fid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.get("/auth/factors/auth_factor_invalid").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn deleting_a_factor_kills_its_open_challenges(app: TestApp) {
    let (fid, secret) = app.totp_factor(None).await;
    let c = app.challenge(&fid).await;
    app.delete(&format!("/auth/factors/{fid}")).await;
    let (s, v) = app
        .verify(c["id"].as_str().unwrap(), &app.totp_code(&secret, 0))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["code"], "entity_not_found");
}

async fn challenges_expire_ten_minutes_after_creation_and_carry_codes_only_for_generic_otp(
    app: TestApp,
) {
    let (fid, _) = app.totp_factor(None).await;
    let c = app.challenge(&fid).await;
    assert_eq!(c["object"], "authentication_challenge");
    assert_eq!(c["authentication_factor_id"], fid.as_str());
    assert_eq!(c["created_at"], "2026-11-29T12:00:00.000Z");
    assert_eq!(c["expires_at"], "2026-11-29T12:10:00.000Z");
    assert!(c.get("code").is_none());

    let (_, g) = app
        .post("/auth/factors/enroll", json!({ "type": "generic_otp" }))
        .await;
    let gc = app.challenge(g["id"].as_str().unwrap()).await;
    let code = gc["code"].as_str().unwrap();
    assert!(code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()));

    let (_, sms) = app
        .post(
            "/auth/factors/enroll",
            json!({ "type": "sms", "phone_number": "+15555550100" }),
        )
        .await;
    let sid = sms["id"].as_str().unwrap();
    let sc = app.challenge(sid).await;
    assert!(sc.get("code").is_none(), "SMS codes go to the phone only");
    let (s, v) = app
        .post(
            &format!("/auth/factors/{sid}/challenge"),
            json!({ "sms_template": "no placeholder" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "sms_template");
    // Ruby sends {"sms_template": null}; Go sends a null body.
    let (s, _) = app
        .post(
            &format!("/auth/factors/{sid}/challenge"),
            json!({ "sms_template": null }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let r = app
        .http
        .post(app.url(&format!("/auth/factors/{fid}/challenge")))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (s, _) = app
        .post(
            "/auth/factors/auth_factor_01JZZZZZZZZZZZZZZZZZZZZZZZ/challenge",
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn a_correct_totp_code_verifies_once_and_the_challenge_is_single_use(app: TestApp) {
    let (fid, secret) = app.totp_factor(None).await;
    let c = app.challenge(&fid).await;
    let cid = c["id"].as_str().unwrap();
    let code = app.totp_code(&secret, 0);
    let (s, v) = app.verify(cid, &code).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["valid"], true);
    assert_eq!(v["challenge"]["id"], cid);
    assert!(
        v.get("code").is_none(),
        "no top-level code in a success body (Go v6 reads it as an error)"
    );

    app.clock.advance_millis(30_000);
    let (s, v) = app.verify(cid, &app.totp_code(&secret, 0)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        v,
        json!({ "code": "authentication_challenge_previously_verified", "message": format!("The authentication challenge '{cid}' has already been verified.") })
    );
}

async fn a_totp_code_is_accepted_only_once_across_challenges(app: TestApp) {
    let (fid, secret) = app.totp_factor(None).await;
    let code = app.totp_code(&secret, 0);
    let c1 = app.challenge(&fid).await;
    assert_eq!(
        app.verify(c1["id"].as_str().unwrap(), &code).await.1["valid"],
        true
    );
    let c2 = app.challenge(&fid).await;
    let (s, v) = app.verify(c2["id"].as_str().unwrap(), &code).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        v["valid"], false,
        "the same code is refused (RFC 6238 §5.2)"
    );
    // An older code still inside the window is refused too: its step is below the last one.
    let c3 = app.challenge(&fid).await;
    assert_eq!(
        app.verify(c3["id"].as_str().unwrap(), &app.totp_code(&secret, -1))
            .await
            .1["valid"],
        false
    );
    // The next step's code works once the clock gets there.
    app.clock.advance_millis(30_000);
    let c4 = app.challenge(&fid).await;
    assert_eq!(
        app.verify(c4["id"].as_str().unwrap(), &app.totp_code(&secret, 0))
            .await
            .1["valid"],
        true
    );
    let (_, evs) = app.get("/events?events=authentication.mfa_failed").await;
    let codes: Vec<&str> = evs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["error"]["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"one_time_code_previously_used"),
        "replays are logged: {codes:?}"
    );
}

async fn the_totp_window_is_one_step_either_side(app: TestApp) {
    for (delta, ok) in [(-2i64, false), (-1, true), (1, true), (2, false)] {
        let (fid, secret) = app.totp_factor(None).await;
        let c = app.challenge(&fid).await;
        let (_, v) = app
            .verify(c["id"].as_str().unwrap(), &app.totp_code(&secret, delta))
            .await;
        assert_eq!(v["valid"], ok, "delta {delta}");
    }
}

async fn an_expired_challenge_refuses_even_the_right_code(app: TestApp) {
    let (fid, secret) = app.totp_factor(None).await;
    let c = app.challenge(&fid).await;
    let cid = c["id"].as_str().unwrap();
    app.clock.advance_millis(10 * 60 * 1000 - 1);
    let (s, v) = app.verify(cid, "000000").await;
    assert_eq!(
        (s, v["valid"].clone()),
        (StatusCode::CREATED, json!(false)),
        "1 ms before expiry it still counts"
    );
    app.clock.advance_millis(1);
    let (s, v) = app.verify(cid, &app.totp_code(&secret, 0)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["code"], "authentication_challenge_expired");
    assert_eq!(
        v["message"],
        format!("The authentication challenge '{cid}' has expired.")
    );
}

async fn five_wrong_codes_kill_a_challenge_even_for_the_right_code(app: TestApp) {
    let (fid, secret) = app.totp_factor(None).await;
    let c = app.challenge(&fid).await;
    let cid = c["id"].as_str().unwrap();
    let right = app.totp_code(&secret, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for i in 0..5 {
        let (s, v) = app.verify(cid, wrong).await;
        assert_eq!(
            (s, v["valid"].clone()),
            (StatusCode::CREATED, json!(false)),
            "attempt {i}"
        );
    }
    let (s, v) = app.verify(cid, &right).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "one_time_code_too_many_attempts");
    // A new challenge of the same factor still works (the factor limit is 10).
    let c2 = app.challenge(&fid).await;
    assert_eq!(
        app.verify(c2["id"].as_str().unwrap(), &right).await.1["valid"],
        true
    );
}

async fn failures_per_factor_are_rate_limited_with_retry_after_and_released_by_time(app: TestApp) {
    let (fid, secret) = app.totp_factor(None).await;
    let wrong = |app: &TestApp| {
        if app.totp_code(&secret, 0) == "000000" {
            "111111"
        } else {
            "000000"
        }
    };
    for _ in 0..2 {
        let c = app.challenge(&fid).await;
        for _ in 0..5 {
            assert_eq!(
                app.verify(c["id"].as_str().unwrap(), wrong(&app)).await.1["valid"],
                false
            );
        }
    }
    let c = app.challenge(&fid).await;
    let cid = c["id"].as_str().unwrap();
    let r = app
        .http
        .post(app.url(&format!("/auth/challenges/{cid}/verify")))
        .bearer_auth(&app.key)
        .json(&json!({ "code": app.totp_code(&secret, 0) }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right code is refused past the limit"
    );
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry, 90, "10 per 15 minutes: one failure leaks every 90 s");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "rate_limit_exceeded");
    let row = app.state.store.find_challenge(cid).await.unwrap().unwrap();
    assert_eq!(
        row.attempts, 0,
        "a refused attempt is not evaluated or counted"
    );

    app.clock.advance_millis(retry * 1000 - 1000);
    let (s, _) = app.verify(cid, "000001").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance_millis(1000);
    // Released: the current step's code works on the still-valid challenge.
    let (s, v) = app.verify(cid, &app.totp_code(&secret, 0)).await;
    assert_eq!((s, v["valid"].clone()), (StatusCode::CREATED, json!(true)));
}

async fn failures_per_user_hit_a_ceiling_of_100_per_hour(app: TestApp) {
    let u = app.create_user("guessed@example.com").await;
    let uid = u["id"].as_str().unwrap();
    let mut failures = 0;
    // 10 factors x 2 challenges x 5 wrong codes = 100 failures, none over a factor's limit.
    for _ in 0..10 {
        let (fid, secret) = app.totp_factor(Some(uid)).await;
        let wrong = if app.totp_code(&secret, 0) == "000000" {
            "111111"
        } else {
            "000000"
        };
        for _ in 0..2 {
            let c = app.challenge(&fid).await;
            for _ in 0..5 {
                let (s, v) = app.verify(c["id"].as_str().unwrap(), wrong).await;
                assert_eq!(
                    (s, v["valid"].clone()),
                    (StatusCode::CREATED, json!(false)),
                    "failure {failures}"
                );
                failures += 1;
            }
        }
    }
    let (fid, secret) = app.totp_factor(Some(uid)).await;
    let c = app.challenge(&fid).await;
    let (s, v) = app
        .verify(c["id"].as_str().unwrap(), &app.totp_code(&secret, 0))
        .await;
    assert_eq!(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        "the 101st attempt in the hour: {v}"
    );
    assert!(v["message"].as_str().unwrap().contains("user"));
    // Another user's factors are not affected.
    let (ofid, osecret) = app.totp_factor(None).await;
    let oc = app.challenge(&ofid).await;
    assert_eq!(
        app.verify(oc["id"].as_str().unwrap(), &app.totp_code(&osecret, 0))
            .await
            .1["valid"],
        true
    );
}

async fn generic_otp_codes_verify_once_and_are_stored_only_as_a_mac(app: TestApp) {
    let (_, g) = app
        .post("/auth/factors/enroll", json!({ "type": "generic_otp" }))
        .await;
    let c = app.challenge(g["id"].as_str().unwrap()).await;
    let cid = c["id"].as_str().unwrap();
    let code = c["code"].as_str().unwrap().to_owned();
    let row = app.state.store.find_challenge(cid).await.unwrap().unwrap();
    let stored = row.code_hash.unwrap();
    assert_eq!(stored.len(), 32);
    assert!(!stored.windows(6).any(|w| w == code.as_bytes()));
    assert_ne!(
        stored,
        tessera_core::token::hash(&code),
        "not a plain SHA-256 either"
    );

    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(app.verify(cid, wrong).await.1["valid"], false);
    let (s, v) = app.verify(cid, &code).await;
    assert_eq!((s, v["valid"].clone()), (StatusCode::CREATED, json!(true)));
    assert_eq!(
        v["challenge"]["code"],
        code.as_str(),
        "the verify answer echoes a generic OTP code"
    );
    let (s, _) = app.verify(cid, &code).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn verify_requests_are_validated(app: TestApp) {
    let (fid, _) = app.totp_factor(None).await;
    let c = app.challenge(&fid).await;
    let cid = c["id"].as_str().unwrap();
    let (s, v) = app
        .post(&format!("/auth/challenges/{cid}/verify"), json!({}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "code");
    let (s, v) = app
        .post(
            &format!("/auth/challenges/{cid}/verify"),
            json!({ "code": 123456 }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "code");
    let (s, v) = app
        .verify("auth_challenge_01JZZZZZZZZZZZZZZZZZZZZZZZ", "123456")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        v["message"],
        "Authentication Challenge not found: 'auth_challenge_01JZZZZZZZZZZZZZZZZZZZZZZZ'."
    );
    // Malformed codes are just wrong codes.
    assert_eq!(app.verify(cid, "12 34 56").await.1["valid"], false);
}
