//! `Idempotency-Key`: a repeated POST gets the first answer and runs once, per API key, for
//! 24 hours; another request under a key is refused; concurrent repeats run once; server
//! errors and 429s are not kept; stored answers are sealed.

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_core::Timestamp;
use tessera_server::config::SmsProvider;
use tessera_server::idempotency::{fingerprint, ABANDONED_AFTER_MS, TTL_MS};
use tessera_store::{idempotency_id, IdempotencyClaim};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    an_enrolment_repeated_with_one_key_replays_the_first_answer_and_makes_one_factor,
    a_verify_retried_with_its_key_returns_the_first_valid_answer,
    a_key_reused_for_another_request_is_refused_with_400,
    one_key_under_two_api_keys_runs_twice,
    twenty_parallel_enrolments_with_one_key_make_one_factor,
    a_key_expires_after_24_hours_is_pruned_and_can_be_used_again,
    a_stored_answer_holds_no_totp_secret_in_clear,
    malformed_keys_are_400_and_requests_the_layer_does_not_cover_run_as_before,
    a_client_error_is_kept_and_replayed_but_a_429_is_not,
);

/// One answer: status, headers, body text.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
    fn replayed(&self) -> bool {
        self.headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
    }
    fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// POSTs `body` (sent as these exact bytes) with the API key `api_key` and, when given, the
/// `Idempotency-Key`.
async fn post_keyed(
    app: &TestApp,
    api_key: &str,
    path: &str,
    body: &str,
    idempotency_key: Option<&str>,
) -> Answer {
    let mut rb = app
        .http
        .post(app.url(path))
        .bearer_auth(api_key)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(k) = idempotency_key {
        rb = rb.header("idempotency-key", k);
    }
    let r = rb.send().await.unwrap();
    Answer {
        status: r.status(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

async fn post(app: &TestApp, path: &str, body: &str, key: Option<&str>) -> Answer {
    post_keyed(app, &app.key, path, body, key).await
}

async fn factor_count(app: &TestApp, user_id: &str) -> usize {
    let (s, v) = app
        .get(&format!("/user_management/users/{user_id}/auth_factors"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["data"].as_array().unwrap().len()
}

fn enrol_path(user_id: &str) -> String {
    format!("/user_management/users/{user_id}/auth_factors")
}

async fn an_enrolment_repeated_with_one_key_replays_the_first_answer_and_makes_one_factor(
    app: TestApp,
) {
    let user = app.create_user("replay@example.com").await;
    let uid = user["id"].as_str().unwrap();
    let body = r#"{"type":"totp","totp_issuer":"Foo Corp"}"#;
    let first = post(&app, &enrol_path(uid), body, Some("key-enrol-1")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert!(!first.replayed());
    let again = post(&app, &enrol_path(uid), body, Some("key-enrol-1")).await;
    assert_eq!(again.status, first.status);
    assert_eq!(again.body, first.body, "byte for byte the first answer");
    assert_eq!(again.content_type(), first.content_type());
    assert!(again.content_type().starts_with("application/json"));
    assert!(again.replayed(), "a replay says so");
    assert_eq!(
        factor_count(&app, uid).await,
        1,
        "the repeat made no factor"
    );

    // Without a key, or with another one, the same body runs again.
    let other = post(&app, &enrol_path(uid), body, Some("key-enrol-2")).await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_ne!(
        other.json()["authentication_factor"]["id"],
        first.json()["authentication_factor"]["id"]
    );
    let plain = post(&app, &enrol_path(uid), body, None).await;
    assert_eq!(plain.status, StatusCode::CREATED);
    assert_eq!(factor_count(&app, uid).await, 3);
}

async fn a_verify_retried_with_its_key_returns_the_first_valid_answer(app: TestApp) {
    let (fid, secret) = app.totp_factor(None).await;
    let challenge = app.challenge(&fid).await;
    let cid = challenge["id"].as_str().unwrap();
    let path = format!("/auth/challenges/{cid}/verify");
    let body = json!({ "code": app.totp_code(&secret, 0) }).to_string();
    let first = post(&app, &path, &body, Some("verify-retry")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.json()["valid"], true);
    let retry = post(&app, &path, &body, Some("verify-retry")).await;
    assert_eq!((retry.status, &retry.body), (first.status, &first.body));
    assert!(retry.replayed());
    // The control: without the key the same request runs, and the challenge is used.
    let unkeyed = post(&app, &path, &body, None).await;
    assert_eq!(unkeyed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        unkeyed.json()["code"],
        "authentication_challenge_previously_verified"
    );
}

async fn a_key_reused_for_another_request_is_refused_with_400(app: TestApp) {
    let first = post(
        &app,
        "/user_management/users",
        r#"{"email":"first@example.com"}"#,
        Some("reused"),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    // Another body, and another path, under the same key.
    for (path, body) in [
        (
            "/user_management/users",
            r#"{"email":"second@example.com"}"#,
        ),
        ("/auth/factors/enroll", r#"{"email":"first@example.com"}"#),
    ] {
        let r = post(&app, path, body, Some("reused")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        let v = r.json();
        assert_eq!(v["code"], "idempotency_key_reused");
        assert!(v["message"].as_str().unwrap().contains("Idempotency-Key"));
    }
    let (_, list) = app
        .get("/user_management/users?email=second@example.com")
        .await;
    assert_eq!(list["data"], json!([]), "the refused request did not run");
    // The first request can still be repeated.
    let again = post(
        &app,
        "/user_management/users",
        r#"{"email":"first@example.com"}"#,
        Some("reused"),
    )
    .await;
    assert_eq!((again.status, again.body), (first.status, first.body));
}

async fn one_key_under_two_api_keys_runs_twice(app: TestApp) {
    let (_, other_key) =
        tessera_server::startup::create_api_key(&app.state.store, &app.clock, "second")
            .await
            .unwrap();
    let user = app.create_user("scoped@example.com").await;
    let uid = user["id"].as_str().unwrap();
    let body = r#"{"type":"totp"}"#;
    let a = post_keyed(&app, &app.key, &enrol_path(uid), body, Some("shared")).await;
    let b = post_keyed(&app, &other_key, &enrol_path(uid), body, Some("shared")).await;
    assert_eq!(
        (a.status, b.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert!(
        !b.replayed(),
        "another API key never sees this key's answer"
    );
    assert_ne!(
        a.json()["authentication_factor"]["id"],
        b.json()["authentication_factor"]["id"]
    );
    assert_eq!(factor_count(&app, uid).await, 2);
}

async fn twenty_parallel_enrolments_with_one_key_make_one_factor(app: TestApp) {
    let user = app.create_user("parallel@example.com").await;
    let uid = user["id"].as_str().unwrap().to_owned();
    let body = r#"{"type":"totp","totp_issuer":"Foo Corp"}"#;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (http, url, key) = (
            app.http.clone(),
            app.url(&enrol_path(&uid)),
            app.key.clone(),
        );
        tasks.spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .header("content-type", "application/json")
                .header("idempotency-key", "one-key-for-twenty")
                .body(body)
                .send()
                .await
                .unwrap();
            Answer {
                status: r.status(),
                headers: r.headers().clone(),
                body: r.text().await.unwrap(),
            }
        });
    }
    let answers: Vec<Answer> = tasks.join_all().await;
    let created: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .collect();
    let busy = answers
        .iter()
        .filter(|a| a.status == StatusCode::CONFLICT && a.json()["code"] == "idempotency_error")
        .count();
    assert_eq!(
        created.len() + busy,
        20,
        "only the answer or the documented 409"
    );
    assert!(!created.is_empty());
    assert!(
        created.iter().all(|a| a.body == created[0].body),
        "every 201 is the same answer"
    );
    assert_eq!(
        created.iter().filter(|a| !a.replayed()).count(),
        1,
        "exactly one ran"
    );
    assert_eq!(factor_count(&app, &uid).await, 1);
    let events = app
        .state
        .store
        .list_events(
            &["authentication_factor.created".to_owned()],
            None,
            None,
            &tessera_store::ListParams {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(events.data.len(), 1, "one enrolment event");
}

async fn a_key_expires_after_24_hours_is_pruned_and_can_be_used_again(app: TestApp) {
    let user = app.create_user("expiry@example.com").await;
    let uid = user["id"].as_str().unwrap();
    let body = r#"{"type":"totp"}"#;
    let first = post(&app, &enrol_path(uid), body, Some("daily")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let pruned = tessera_server::maintenance::prune(&app.state, 1000)
        .await
        .unwrap();
    assert_eq!(pruned.idempotency_keys, 0, "kept within its 24 hours");

    app.clock.advance_millis(TTL_MS - 1);
    let replay = post(&app, &enrol_path(uid), body, Some("daily")).await;
    assert!(
        replay.replayed(),
        "still replayed a millisecond before expiry"
    );
    assert_eq!(factor_count(&app, uid).await, 1);

    app.clock.advance_millis(1);
    let pruned = tessera_server::maintenance::prune(&app.state, 1000)
        .await
        .unwrap();
    assert_eq!(pruned.idempotency_keys, 1);
    assert!(app
        .state
        .store
        .find_idempotency_key(&key_row(&app, "daily").await)
        .await
        .unwrap()
        .is_none());
    let fresh = post(&app, &enrol_path(uid), body, Some("daily")).await;
    assert_eq!(fresh.status, StatusCode::CREATED);
    assert!(!fresh.replayed(), "the key runs again after its 24 hours");
    assert_eq!(factor_count(&app, uid).await, 2);

    // Expired but not pruned yet: the key is free too, even for another request.
    app.clock.advance_millis(TTL_MS);
    let other = post(
        &app,
        "/user_management/users",
        r#"{"email":"later@example.com"}"#,
        Some("daily"),
    )
    .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
}

/// The id of the test's API key.
async fn api_key_id(app: &TestApp) -> String {
    tessera_server::services::api_keys::authenticate_key(&app.state, &app.key)
        .await
        .unwrap()
}

/// The row id of `key` under the test's API key.
async fn key_row(app: &TestApp, key: &str) -> String {
    idempotency_id(&api_key_id(app).await, key)
}

async fn a_stored_answer_holds_no_totp_secret_in_clear(app: TestApp) {
    let user = app.create_user("sealed@example.com").await;
    let uid = user["id"].as_str().unwrap();
    let r = post(
        &app,
        &enrol_path(uid),
        r#"{"type":"totp"}"#,
        Some("sealed-key"),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let v = r.json();
    let secret = v["authentication_factor"]["totp"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let row = app
        .state
        .store
        .find_idempotency_key(&key_row(&app, "sealed-key").await)
        .await
        .unwrap()
        .expect("the answer is stored");
    assert_eq!(row.response_status, Some(201));
    // Every column of every stored row as the database holds it, blobs in hex.
    let dump: String = if app.db.is_postgres() {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(app.db.url.expose())
            .await
            .unwrap();
        let rows: Vec<String> = sqlx::query_scalar("SELECT t::text FROM idempotency_keys t")
            .fetch_all(&mut c)
            .await
            .unwrap();
        rows.join("\n")
    } else {
        use sqlx::Connection;
        let path = app.db.url.sqlite_path().unwrap();
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT id || ' ' || hex(fingerprint) || ' ' || \
             created_at || ' ' || response_status || ' ' || response_content_type || ' ' || \
             response_key_id || ' ' || hex(response_sealed) FROM idempotency_keys",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        rows.join("\n")
    }
    .to_lowercase();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert!(dump.contains("sealed-key"), "the dump sees the row: {dump}");
    assert!(
        dump.contains(&hex(row.response_sealed.as_deref().unwrap())),
        "the dump shows the stored body"
    );
    for clear in [secret.as_bytes(), b"otpauth".as_slice()] {
        assert!(
            !dump.contains(&hex(clear)),
            "{} is stored in clear",
            String::from_utf8_lossy(clear)
        );
    }
    assert!(!dump.contains(&secret.to_lowercase()));
    // And the replay opens it.
    let again = post(
        &app,
        &enrol_path(uid),
        r#"{"type":"totp"}"#,
        Some("sealed-key"),
    )
    .await;
    assert_eq!(
        again.json()["authentication_factor"]["totp"]["secret"],
        secret.as_str()
    );
}

async fn malformed_keys_are_400_and_requests_the_layer_does_not_cover_run_as_before(app: TestApp) {
    let body = r#"{"email":"keys@example.com"}"#;
    let longest = "k".repeat(255);
    let too_long = "k".repeat(256);
    for bad in ["", too_long.as_str(), "caf\u{e9}"] {
        let mut rb = app
            .http
            .post(app.url("/user_management/users"))
            .bearer_auth(&app.key)
            .body(body);
        rb = rb.header(
            "idempotency-key",
            reqwest::header::HeaderValue::from_bytes(bad.as_bytes())
                .unwrap_or_else(|_| reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap()),
        );
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], "invalid_idempotency_key");
    }
    let (_, list) = app
        .get("/user_management/users?email=keys@example.com")
        .await;
    assert_eq!(list["data"], json!([]), "nothing ran");
    let ok = post(&app, "/user_management/users", body, Some(&longest)).await;
    assert_eq!(ok.status, StatusCode::CREATED, "255 bytes is fine");

    // A body over the limit is 413, as without a key, and claims nothing.
    let huge = format!(
        r#"{{"email":"big@example.com","first_name":"{}"}}"#,
        "x".repeat(300 * 1024)
    );
    let r = post(&app, "/user_management/users", &huge, Some("too-big")).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert_eq!(r.json()["code"], "payload_too_large");
    assert!(app
        .state
        .store
        .find_idempotency_key(&key_row(&app, "too-big").await)
        .await
        .unwrap()
        .is_none());

    // A bad API key is still 401, whatever the Idempotency-Key.
    let r = post_keyed(
        &app,
        "sk_wrong",
        "/user_management/users",
        body,
        Some(&too_long),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // The sign-in endpoint takes its key from the body: the header is ignored and each
    // sign-in runs (two answers, two different sessions).
    let signin = json!({
        "client_id": app.client_id, "client_secret": app.key, "grant_type": "password",
        "email": "keys@example.com", "password": "wrong password"
    })
    .to_string();
    for _ in 0..2 {
        let r = app
            .http
            .post(app.url("/user_management/authenticate"))
            .header("content-type", "application/json")
            .header("idempotency-key", "signin")
            .body(signin.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.headers().get("idempotent-replayed").is_none());
    }
    let row = app
        .state
        .store
        .find_idempotency_key(&key_row(&app, "signin").await)
        .await
        .unwrap();
    assert!(row.is_none(), "no key stored for the sign-in endpoint");

    // Other methods ignore it.
    let uid = ok.json()["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let r = app
            .http
            .put(app.url(&format!("/user_management/users/{uid}")))
            .bearer_auth(&app.key)
            .header("idempotency-key", "put")
            .json(&json!({ "first_name": "Ada" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get("idempotent-replayed").is_none());
    }
}

async fn a_client_error_is_kept_and_replayed_but_a_429_is_not(app: TestApp) {
    // 422: kept, like any answer below 500.
    let bad = r#"{"email":"not an email"}"#;
    let first = post(&app, "/user_management/users", bad, Some("invalid")).await;
    assert_eq!(first.status, StatusCode::UNPROCESSABLE_ENTITY);
    let again = post(&app, "/user_management/users", bad, Some("invalid")).await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    assert!(again.replayed());

    // 429: not kept; after the wait, the retry with the same key runs and passes.
    let (s, f) = app
        .post(
            "/auth/factors/enroll",
            json!({ "type": "sms", "phone_number": "+15555550100" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let path = format!("/auth/factors/{}/challenge", f["id"].as_str().unwrap());
    for _ in 0..5 {
        assert_eq!(
            post(&app, &path, "{}", None).await.status,
            StatusCode::CREATED
        );
    }
    let limited = post(&app, &path, "{}", Some("sms-six")).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.body
    );
    assert!(limited.headers.get("retry-after").is_some());
    assert!(app
        .state
        .store
        .find_idempotency_key(&key_row(&app, "sms-six").await)
        .await
        .unwrap()
        .is_none());
    app.clock.advance_millis(10 * 60 * 1000);
    let retried = post(&app, &path, "{}", Some("sms-six")).await;
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.body);
    assert!(!retried.replayed());
}

async fn a_server_error_is_not_kept_and_the_retry_runs_again(backend: Backend) {
    // A webhook nobody listens on: every SMS challenge is 502 `sms_delivery_failed`.
    let Some(app) = TestApp::spawn_configured(backend, |c| {
        c.sms_provider = SmsProvider::Webhook {
            url: "http://127.0.0.1:1/sms".into(),
            secret: zeroize::Zeroizing::new("s".into()),
        };
    })
    .await
    else {
        return;
    };
    let (s, f) = app
        .post(
            "/auth/factors/enroll",
            json!({ "type": "sms", "phone_number": "+15555550100" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let path = format!("/auth/factors/{}/challenge", f["id"].as_str().unwrap());
    let id = api_key_id(&app).await;
    for attempt in 0..2 {
        let r = post(&app, &path, "{}", Some("sms-502")).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_GATEWAY,
            "attempt {attempt}: {}",
            r.body
        );
        assert!(!r.replayed(), "a 5xx is never replayed: the retry ran");
        assert!(app
            .state
            .store
            .find_idempotency_key(&idempotency_id(&id, "sms-502"))
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_is_not_kept_and_the_retry_runs_again_sqlite() {
    a_server_error_is_not_kept_and_the_retry_runs_again(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_is_not_kept_and_the_retry_runs_again_postgres() {
    a_server_error_is_not_kept_and_the_retry_runs_again(Backend::Postgres).await;
}

/// A claim left by a request that never finished (its node crashed): a repeat meanwhile gets
/// 409 (here at once: no wait configured), and after the abandoned-claim time the repeat
/// takes the claim over and runs.
async fn an_abandoned_claim_answers_409_then_is_taken_over(backend: Backend) {
    let Some(app) = TestApp::spawn_configured(backend, |c| {
        c.idempotency_wait = std::time::Duration::ZERO;
    })
    .await
    else {
        return;
    };
    let path = "/user_management/users";
    let body = r#"{"email":"crash@example.com"}"#;
    let id = api_key_id(&app).await;
    let now = app.state.now().millis();
    let fp = fingerprint(
        &reqwest::Method::POST,
        &path.parse().unwrap(),
        body.as_bytes(),
    );
    let row_id = idempotency_id(&id, "crashed");
    let claim = |now: i64| IdempotencyClaim {
        id: &row_id,
        fingerprint: &fp,
        now: Timestamp::from_millis(now),
        expired_by: Timestamp::from_millis(now - TTL_MS),
        abandoned_by: Timestamp::from_millis(now - ABANDONED_AFTER_MS),
    };
    assert!(app
        .state
        .store
        .claim_idempotency_key(&claim(now))
        .await
        .unwrap());
    assert!(
        !app.state
            .store
            .claim_idempotency_key(&claim(now))
            .await
            .unwrap(),
        "one claim at a time"
    );

    let busy = post(&app, path, body, Some("crashed")).await;
    assert_eq!(busy.status, StatusCode::CONFLICT, "{}", busy.body);
    assert_eq!(busy.json()["code"], "idempotency_error");
    assert_eq!(busy.headers.get("retry-after").unwrap(), "1");
    // Another request under the held key is refused, not queued.
    let other = post(
        &app,
        path,
        r#"{"email":"other@example.com"}"#,
        Some("crashed"),
    )
    .await;
    assert_eq!(other.json()["code"], "idempotency_key_reused");
    let (_, list) = app
        .get("/user_management/users?email=crash@example.com")
        .await;
    assert_eq!(list["data"], json!([]), "the 409 ran nothing");

    app.clock.advance_millis(ABANDONED_AFTER_MS - 1);
    let still = post(&app, path, body, Some("crashed")).await;
    assert_eq!(still.status, StatusCode::CONFLICT);

    app.clock.advance_millis(1);
    let taken = post(&app, path, body, Some("crashed")).await;
    assert_eq!(taken.status, StatusCode::CREATED, "{}", taken.body);
    assert!(!taken.replayed());
    let replay = post(&app, path, body, Some("crashed")).await;
    assert_eq!((replay.status, &replay.body), (taken.status, &taken.body));
    assert!(replay.replayed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_claim_answers_409_then_is_taken_over_sqlite() {
    an_abandoned_claim_answers_409_then_is_taken_over(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_claim_answers_409_then_is_taken_over_postgres() {
    an_abandoned_claim_answers_409_then_is_taken_over(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_declares_the_header_on_keyed_posts_only() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let (_, doc) = app.get("/openapi.json").await;
    let params = |path: &str, method: &str| -> Vec<String> {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let enroll = &doc["paths"]["/auth/factors/enroll"]["post"];
    assert!(params("/auth/factors/enroll", "post").contains(&"Idempotency-Key".to_owned()));
    assert!(enroll["responses"]["409"].is_object());
    assert!(enroll["responses"]["400"].is_object());
    assert!(
        !params("/user_management/authenticate", "post").contains(&"Idempotency-Key".to_owned())
    );
    assert!(!params("/user_management/users/{id}", "put").contains(&"Idempotency-Key".to_owned()));
}
