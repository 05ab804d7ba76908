//! Issue 12, items 1, 4, 5, 10 and 11: lost user updates, imported Argon2 costs, cancelled
//! sign-ins, unbounded request data, and the access token's `iss`/`aud`. Each test failed
//! before its fix.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_core::Timestamp;
use tessera_server::services::events::RequestMeta;
use tessera_server::services::signin::{self, AuthenticateRequest};
use tessera_store::{ListParams, Pruned};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    twenty_parallel_single_key_metadata_puts_keep_all_twenty_keys,
    a_password_change_racing_metadata_updates_always_ends_with_the_new_password,
    imported_argon2_hashes_outside_the_documented_cost_range_are_refused,
    a_sign_in_with_an_imported_hash_rehashes_it_to_the_current_parameters,
    a_cancelled_sign_in_keeps_its_hashing_permit_and_still_records_the_failure,
    request_strings_are_bounded_or_refused_before_anything_is_stored,
    access_tokens_carry_an_audience_and_the_public_url_as_issuer,
    profile_picture_url_accepts_only_http_and_https_urls,
    a_rehash_never_replaces_a_password_changed_since_it_was_verified,
    parallel_rehashes_of_one_verified_hash_land_exactly_once,
    sixty_parallel_new_metadata_keys_stop_at_exactly_fifty,
    pruning_deletes_only_what_can_no_longer_change_an_answer_in_bounded_batches,
);

/// Sends every `(path, body)` as its own PUT at once, each from its own task, and returns the
/// statuses in order.
async fn put_all(app: &TestApp, calls: Vec<(String, Value)>) -> Vec<(StatusCode, Value)> {
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|(path, body)| {
            let http = app.http.clone();
            let url = app.url(&path);
            let key = app.key.clone();
            tokio::spawn(async move {
                let r = http
                    .put(url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                (r.status(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut out = vec![];
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn auth(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.authenticate(body).await
}

async fn events_named(app: &TestApp, name: &str) -> Vec<Value> {
    let page = app
        .state
        .store
        .list_events(
            &[name.to_owned()],
            None,
            None,
            &ListParams {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    page.data
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

// ---- item 1: updates change only what they name, atomically ------------------------------

async fn twenty_parallel_single_key_metadata_puts_keep_all_twenty_keys(app: TestApp) {
    for round in 0..3 {
        let u = app.create_user(&format!("meta{round}@example.com")).await;
        let path = format!("/user_management/users/{}", u["id"].as_str().unwrap());
        let calls = (0..20)
            .map(|i| {
                (
                    path.clone(),
                    json!({ "metadata": { format!("k{i}"): format!("v{i}") } }),
                )
            })
            .collect();
        for (s, v) in put_all(&app, calls).await {
            assert_eq!(s, StatusCode::OK, "{v}");
        }
        let (_, got) = app.get(&path).await;
        let expected: serde_json::Map<String, Value> = (0..20)
            .map(|i| (format!("k{i}"), json!(format!("v{i}"))))
            .collect();
        assert_eq!(
            got["metadata"],
            Value::Object(expected),
            "round {round}: every key of every PUT is kept"
        );
    }
}

async fn sixty_parallel_new_metadata_keys_stop_at_exactly_fifty(app: TestApp) {
    let u = app.create_user("full@example.com").await;
    let path = format!("/user_management/users/{}", u["id"].as_str().unwrap());
    let calls = (0..60)
        .map(|i| {
            (
                path.clone(),
                json!({ "metadata": { format!("k{i}"): "v" } }),
            )
        })
        .collect();
    let results = put_all(&app, calls).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let full = results
        .iter()
        .filter(|(s, v)| {
            *s == StatusCode::UNPROCESSABLE_ENTITY && v["errors"][0]["code"] == "too_many_keys"
        })
        .count();
    let statuses: Vec<u16> = results.iter().map(|(s, _)| s.as_u16()).collect();
    assert_eq!((ok, full), (50, 10), "{statuses:?}");
    let (_, got) = app.get(&path).await;
    assert_eq!(got["metadata"].as_object().unwrap().len(), 50);
}

async fn a_password_change_racing_metadata_updates_always_ends_with_the_new_password(app: TestApp) {
    for trial in 0..6 {
        let u = app.create_user(&format!("race{trial}@example.com")).await;
        let id = u["id"].as_str().unwrap().to_owned();
        let path = format!("/user_management/users/{id}");
        let new_password = format!("brand new password {trial}");
        let done = Arc::new(AtomicBool::new(false));
        // Eight writers of metadata keep PUTting while the password PUT hashes and commits.
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let http = app.http.clone();
                let url = app.url(&path);
                let key = app.key.clone();
                let done = done.clone();
                tokio::spawn(async move {
                    let mut n = 0;
                    // At least a few PUTs after the password PUT has answered, too.
                    let mut after = 0;
                    while after < 3 {
                        if done.load(Ordering::Acquire) {
                            after += 1;
                        }
                        n += 1;
                        let r = http
                            .put(&url)
                            .bearer_auth(&key)
                            .json(&json!({ "metadata": { format!("w{w}"): format!("{n}") } }))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), StatusCode::OK);
                    }
                    n
                })
            })
            .collect();
        let (s, v) = app
            .put(&path, json!({ "password": new_password.clone() }))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        done.store(true, Ordering::Release);
        let mut last = vec![];
        for w in writers {
            last.push(w.await.unwrap());
        }
        let row = app.state.store.get_user(&id).await.unwrap();
        assert!(
            tessera_core::password::verify(&new_password, row.password_hash.as_deref()),
            "trial {trial}: a metadata PUT wrote the old password hash back"
        );
        let meta: Value = serde_json::from_str(&row.metadata).unwrap();
        for (w, n) in last.iter().enumerate() {
            assert_eq!(meta[format!("w{w}")], json!(n.to_string()), "trial {trial}");
        }
        let (s, _) = auth(
            &app,
            json!({ "grant_type": "password", "email": format!("race{trial}@example.com"), "password": new_password }),
        )
        .await;
        assert_eq!(
            s,
            StatusCode::OK,
            "trial {trial}: the new password signs in"
        );
    }
}

// ---- item 4: imported Argon2 parameters are bounded; sign-in rehashes -------------------

/// A syntactically valid PHC string with the given parameters (salt and output are arbitrary).
fn phc(params: &str) -> String {
    format!("$argon2id$v=19${params}$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g")
}

async fn imported_argon2_hashes_outside_the_documented_cost_range_are_refused(app: TestApp) {
    for (i, params) in [
        "m=4294967295,t=2,p=1",
        "m=19456,t=4294967295,p=1",
        "m=19456,t=300,p=1",
        "m=19456,t=11,p=1",
        "m=262145,t=2,p=1",
        "m=65536,t=2,p=9",
    ]
    .iter()
    .enumerate()
    {
        let (s, v) = app
            .post(
                "/user_management/users",
                json!({ "email": format!("costly{i}@example.com"), "password_hash": phc(params), "password_hash_type": "argon2" }),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{params}: {v}");
        assert_eq!(v["errors"][0]["field"], "password_hash", "{v}");
        assert_eq!(v["errors"][0]["code"], "password_hash_cost_out_of_range");
    }
    // The edges of the range are accepted.
    for (i, params) in ["m=262144,t=10,p=8", "m=64,t=1,p=1"].iter().enumerate() {
        let (s, v) = app
            .post(
                "/user_management/users",
                json!({ "email": format!("fine{i}@example.com"), "password_hash": phc(params), "password_hash_type": "argon2" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{params}: {v}");
    }
    // And an update is held to the same range.
    let u = app.create_user("upd@example.com").await;
    let (s, v) = app
        .put(
            &format!("/user_management/users/{}", u["id"].as_str().unwrap()),
            json!({ "password_hash": phc("m=19456,t=300,p=1"), "password_hash_type": "argon2" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "password_hash");
}

async fn a_sign_in_with_an_imported_hash_rehashes_it_to_the_current_parameters(app: TestApp) {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let imported = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(4096, 1, 1, None).unwrap(),
    )
    .hash_password(
        b"imported password",
        &SaltString::generate(&mut rand::rngs::OsRng),
    )
    .unwrap()
    .to_string();
    let (s, u) = app
        .post(
            "/user_management/users",
            json!({ "email": "moved@example.com", "password_hash": imported, "password_hash_type": "argon2" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let id = u["id"].as_str().unwrap();
    // A wrong password leaves the hash alone.
    let (s, _) = auth(
        &app,
        json!({ "grant_type": "password", "email": "moved@example.com", "password": "not the password" }),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let row = app.state.store.get_user(id).await.unwrap();
    assert_eq!(row.password_hash.as_deref(), Some(imported.as_str()));

    let (s, v) = auth(
        &app,
        json!({ "grant_type": "password", "email": "moved@example.com", "password": "imported password" }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let row = app.state.store.get_user(id).await.unwrap();
    let now = row.password_hash.unwrap();
    assert!(
        now.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "rehashed to the current parameters: {now}"
    );
    assert!(tessera_core::password::verify(
        "imported password",
        Some(&now)
    ));
    let (s, _) = auth(
        &app,
        json!({ "grant_type": "password", "email": "moved@example.com", "password": "imported password" }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "still signs in after the rehash");
    assert_eq!(
        app.state
            .store
            .get_user(id)
            .await
            .unwrap()
            .password_hash
            .unwrap(),
        now,
        "a hash with the current parameters is not rehashed again"
    );
}

// ---- item 5: a cancelled sign-in keeps its permit and finishes ---------------------------

async fn a_cancelled_sign_in_keeps_its_hashing_permit_and_still_records_the_failure(app: TestApp) {
    app.create_user("gone@example.com").await;
    let state = app.state.clone();
    let free = state.hashing.available_permits();
    // Hold every Argon2 buffer: the sign-in's hash then stops, deterministically, once it
    // has its permit and is running on the blocking pool.
    let pool = state.password_memory.clone();
    let held: Vec<_> = (0..pool.max_buffers()).map(|_| pool.lease()).collect();
    let req = AuthenticateRequest {
        grant_type: Some("password".into()),
        client_id: Some(app.client_id.clone()),
        client_secret: Some(app.key.clone()),
        email: Some("gone@example.com".into()),
        password: Some("wrong password".into()),
        ..Default::default()
    };
    let request = tokio::spawn({
        let state = state.clone();
        async move { signin::authenticate(&state, req, &RequestMeta::default()).await }
    });
    tokio::time::timeout(Duration::from_secs(30), async {
        while state.hashing.available_permits() == free {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the sign-in reached its hash");
    // The client goes away: the request future is dropped.
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled());
    assert_eq!(
        state.hashing.available_permits(),
        free - 1,
        "the running hash still holds its permit"
    );
    drop(held);
    // The permit comes back when the hash is done, and the failure is recorded.
    drop(state.hashing.acquire().await.unwrap());
    let failed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let e = events_named(&app, "authentication.password_failed").await;
            if !e.is_empty() {
                return e;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("authentication.password_failed was written");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["email"], "gone@example.com");
    // And it was charged: nine more failures reach the limit of ten, then 429.
    for i in 0..9 {
        let (s, _) = auth(
            &app,
            json!({ "grant_type": "password", "email": "gone@example.com", "password": "wrong password" }),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "failure {}", i + 2);
    }
    let (s, _) = auth(
        &app,
        json!({ "grant_type": "password", "email": "gone@example.com", "password": "correct horse battery" }),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // Every attempt is counted, the cancelled one too (by the task that ran it to the end).
    let metrics = crate::metrics::Scrape::of_state(&state);
    let password = |result| {
        metrics.count(
            "tessera_sign_ins_total",
            &[("grant", "password"), ("result", result)],
        )
    };
    assert_eq!((password("failed"), password("rate_limited")), (10.0, 1.0));
}

// ---- item 10: request strings are bounded before they are stored --------------------------

async fn request_strings_are_bounded_or_refused_before_anything_is_stored(app: TestApp) {
    app.create_user("ua@example.com").await;
    let huge_email = format!("{}@example.com", "a".repeat(200_000));
    let (s, v) = auth(
        &app,
        json!({ "grant_type": "password", "email": huge_email, "password": "whatever it is" }),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "email");
    assert!(events_named(&app, "authentication.password_failed")
        .await
        .is_empty());

    for bad_ip in [
        "1".repeat(50_000),
        "not an address".to_owned(),
        "10.0.0.1, 10.0.0.2".to_owned(),
    ] {
        let (s, v) = auth(
            &app,
            json!({ "grant_type": "password", "email": "ua@example.com", "password": "correct horse battery", "ip_address": bad_ip }),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["errors"][0]["field"], "ip_address");
    }
    assert!(events_named(&app, "authentication.password_succeeded")
        .await
        .is_empty());

    // A 200 KB user agent (two-byte characters, so a cut could split one) is stored cut to
    // 512 bytes on a character boundary; an IPv6 address is stored in its canonical form.
    let ua = "é".repeat(100_000);
    let (s, v) = auth(
        &app,
        json!({ "grant_type": "password", "email": "ua@example.com", "password": "correct horse battery", "ip_address": "2001:DB8:0:0::1", "user_agent": ua }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for name in ["authentication.password_succeeded", "session.created"] {
        let e = events_named(&app, name).await;
        assert_eq!(e.len(), 1, "{name}");
        let stored = e[0]["user_agent"].as_str().unwrap();
        assert!(
            stored.len() <= 512 && stored.len() >= 510,
            "{}",
            stored.len()
        );
        assert!(ua.starts_with(stored));
        assert_eq!(e[0]["ip_address"], "2001:db8::1");
    }
}

// ---- item 11: iss, aud, profile pictures ---------------------------------------------------

async fn access_tokens_carry_an_audience_and_the_public_url_as_issuer(app: TestApp) {
    app.create_user("aud@example.com").await;
    let (s, v) = auth(
        &app,
        json!({ "grant_type": "password", "email": "aud@example.com", "password": "correct horse battery" }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = v["access_token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = {
        use base64::Engine;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(claims["aud"], json!(app.client_id));
    assert_eq!(
        claims["iss"], "http://127.0.0.1:8080",
        "the default public URL"
    );
}

async fn profile_picture_url_accepts_only_http_and_https_urls(app: TestApp) {
    for (i, bad) in [
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://example.com/a.png",
        "not a url at all",
        "https://",
        "//example.com/a.png",
    ]
    .iter()
    .enumerate()
    {
        let (s, v) = app
            .post(
                "/user_management/users",
                json!({ "email": format!("pic{i}@example.com"), "profile_picture_url": bad }),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
        assert_eq!(v["errors"][0]["field"], "profile_picture_url", "{v}");
    }
    let (s, u) = app
        .post(
            "/user_management/users",
            json!({ "email": "pic@example.com", "profile_picture_url": "https://cdn.example.com/a.png?s=64" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert_eq!(
        u["profile_picture_url"],
        "https://cdn.example.com/a.png?s=64"
    );
    let path = format!("/user_management/users/{}", u["id"].as_str().unwrap());
    let (s, v) = app
        .put(
            &path,
            json!({ "profile_picture_url": "javascript:alert(1)" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "profile_picture_url");
    let (s, v) = app
        .put(
            &path,
            json!({ "profile_picture_url": "http://example.com/b.png" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["profile_picture_url"], "http://example.com/b.png");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_is_the_configured_public_url_or_tessera_issuer() {
    for (public_url, issuer, expected) in [
        ("https://auth.example.com", None, "https://auth.example.com"),
        (
            "https://auth.example.com",
            Some("urn:example:tessera"),
            "urn:example:tessera",
        ),
    ] {
        let app = TestApp::spawn_configured(Backend::Sqlite, |c| {
            c.public_url = public_url.to_owned();
            c.issuer = issuer.map(str::to_owned);
        })
        .await
        .unwrap();
        app.create_user("iss@example.com").await;
        let (s, v) = auth(
            &app,
            json!({ "grant_type": "password", "email": "iss@example.com", "password": "correct horse battery" }),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let claims = claims_of(v["access_token"].as_str().unwrap());
        assert_eq!(claims["iss"], expected);
        assert_eq!(claims["aud"], json!(app.client_id));
    }
}

/// The claims of a JWT, unverified (the signature is checked in `signin.rs`).
fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

async fn a_rehash_never_replaces_a_password_changed_since_it_was_verified(app: TestApp) {
    let u = app.create_user("changed@example.com").await;
    let id = u["id"].as_str().unwrap();
    let store = &app.state.store;
    let verified = store.get_user(id).await.unwrap().password_hash.unwrap();
    // The password changes while a sign-in (which verified the old hash) is rehashing.
    let (s, v) = app
        .put(
            &format!("/user_management/users/{id}"),
            json!({ "password": "changed in between" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let rehash = tessera_core::password::hash("correct horse battery").unwrap();
    assert!(!store
        .replace_password_hash(id, &verified, &rehash)
        .await
        .unwrap());
    let now = store.get_user(id).await.unwrap().password_hash.unwrap();
    assert!(tessera_core::password::verify(
        "changed in between",
        Some(&now)
    ));
    // Over the hash it verified, a rehash does land.
    let rehash = tessera_core::password::hash("changed in between").unwrap();
    assert!(store
        .replace_password_hash(id, &now, &rehash)
        .await
        .unwrap());
    assert_eq!(
        store.get_user(id).await.unwrap().password_hash.unwrap(),
        rehash
    );
}

async fn parallel_rehashes_of_one_verified_hash_land_exactly_once(app: TestApp) {
    let u = app.create_user("twice@example.com").await;
    let id = u["id"].as_str().unwrap().to_owned();
    let verified = app
        .state
        .store
        .get_user(&id)
        .await
        .unwrap()
        .password_hash
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = app.state.store.clone();
            let (id, verified) = (id.clone(), verified.clone());
            tokio::spawn(async move {
                store
                    .replace_password_hash(&id, &verified, &format!("rehash {i}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = vec![];
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap() {
            won.push(i);
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(
        app.state
            .store
            .get_user(&id)
            .await
            .unwrap()
            .password_hash
            .unwrap(),
        format!("rehash {}", won[0])
    );
}

async fn pruning_deletes_only_what_can_no_longer_change_an_answer_in_bounded_batches(app: TestApp) {
    use tessera_server::maintenance::prune;
    const MIN: i64 = 60 * 1000;
    const DAY: i64 = 24 * 60 * MIN;
    let u = app.create_user("prune@example.com").await;
    let uid = u["id"].as_str().unwrap();
    // Throttle rows: three failures charge the email and the end user's IP.
    for _ in 0..3 {
        let (s, _) = auth(
            &app,
            json!({ "grant_type": "password", "email": "prune@example.com", "password": "wrong password", "ip_address": "203.0.113.9" }),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
    // A TOTP factor (with its enrolment challenge), a pending token, and a second challenge.
    let enrolled = app.enroll_totp(uid, json!({ "type": "totp" })).await;
    let factor_id = enrolled["authentication_factor"]["id"].as_str().unwrap();
    let (s, pending) = auth(
        &app,
        json!({ "grant_type": "password", "email": "prune@example.com", "password": "correct horse battery" }),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{pending}");
    let challenge = app.challenge(factor_id).await;
    // An SMS send-limit row.
    let (s, sms) = app
        .post(
            "/auth/factors/enroll",
            json!({ "type": "sms", "phone_number": "+15555550123" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sms}");
    app.challenge(sms["id"].as_str().unwrap()).await;
    let all_events = || async {
        app.state
            .store
            .list_events(
                &[],
                None,
                None,
                &ListParams {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .data
    };
    let events_at_t0 = all_events().await.len() as u64;
    assert!(events_at_t0 >= 5, "{events_at_t0}");

    // Nothing has expired yet.
    assert_eq!(prune(&app.state, 2).await.unwrap(), Pruned::default());

    // 11 minutes on: the throttle rows (3 × 90 s, 3 × 9 s), the SMS limit (one 2-minute
    // interval) and the pending token (10 minutes) are past; the challenges are within
    // their day of grace, and the events within their 90 days.
    app.clock.advance_millis(11 * MIN);
    assert_eq!(
        prune(&app.state, 2).await.unwrap(),
        Pruned {
            password_limits: 2,
            sms_send_limits: 1,
            pending_tokens: 1,
            challenges: 0,
            events: 0,
            ..Pruned::default()
        }
    );
    let (s, v) = app
        .verify(challenge["id"].as_str().unwrap(), "000000")
        .await;
    assert_eq!(
        (s, v["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("authentication_challenge_expired")
        ),
        "an expired challenge still answers as such within the grace"
    );

    // A day later the three challenges go.
    app.clock.advance_millis(DAY);
    let pruned = prune(&app.state, 2).await.unwrap();
    assert_eq!((pruned.challenges, pruned.events), (3, 0), "{pruned:?}");

    // 90 days after T0, the events of T0 go, in batches of 2; a fresh failure (its event and
    // its throttle rows) stays.
    app.clock.set(Timestamp(crate::helpers::T0 + 90 * DAY + 1));
    let (s, _) = auth(
        &app,
        json!({ "grant_type": "password", "email": "prune@example.com", "password": "wrong password", "ip_address": "203.0.113.9" }),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let pruned = prune(&app.state, 2).await.unwrap();
    assert_eq!(
        pruned,
        Pruned {
            events: events_at_t0,
            ..Pruned::default()
        }
    );
    let left = all_events().await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event, "authentication.password_failed");
    assert_eq!(prune(&app.state, 2).await.unwrap(), Pruned::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_retention_of_zero_days_keeps_every_event() {
    let app = TestApp::spawn_configured(Backend::Sqlite, |c| c.event_retention_days = 0)
        .await
        .unwrap();
    app.create_user("keep@example.com").await;
    let (s, _) = auth(
        &app,
        json!({ "grant_type": "password", "email": "keep@example.com", "password": "wrong password" }),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    app.clock.advance_millis(3650 * 24 * 60 * 60 * 1000);
    let pruned = tessera_server::maintenance::prune(&app.state, 10)
        .await
        .unwrap();
    assert_eq!((pruned.events, pruned.password_limits), (0, 1));
    assert_eq!(
        events_named(&app, "authentication.password_failed")
            .await
            .len(),
        1
    );
}
