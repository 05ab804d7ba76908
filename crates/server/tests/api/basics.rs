//! Cross-cutting HTTP behaviour: health, API-key auth, request ids, error shapes, tolerance of
//! what SDKs send.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    health_answers_without_auth_and_every_response_has_a_request_id,
    a_missing_or_wrong_api_key_gets_401_with_a_json_message,
    unknown_routes_and_methods_answer_in_the_json_error_shape,
    malformed_json_gets_our_error_shape_and_type_errors_name_the_field,
    oversized_bodies_get_413_and_change_nothing,
    sdk_quirks_are_tolerated,
);

async fn health_answers_without_auth_and_every_response_has_a_request_id(app: TestApp) {
    let r = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let id = r
        .headers()
        .get("x-request-id")
        .expect("x-request-id")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID");
    let r2 = app
        .http
        .get(app.url("/user_management/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(r2.status(), StatusCode::UNAUTHORIZED);
    let id2 = r2.headers().get("x-request-id").unwrap().to_str().unwrap();
    assert_ne!(id, id2, "a fresh id per request");
}

async fn a_missing_or_wrong_api_key_gets_401_with_a_json_message(app: TestApp) {
    // The right key with its last character changed (to one it surely is not).
    let last = if app.key.ends_with('x') { "y" } else { "x" };
    let wrong_secret = format!("{}{last}", &app.key[..app.key.len() - 1]);
    for auth in [
        None,
        Some("Bearer"),
        Some("Bearer sk_example_123456789"),
        Some(wrong_secret.as_str()),
        Some("Basic Zm9vOmJhcg=="),
    ] {
        let mut rb = app.http.get(app.url("/user_management/users"));
        if let Some(a) = auth {
            let a = if a.starts_with("sk_") {
                format!("Bearer {a}")
            } else {
                a.to_owned()
            };
            rb = rb.header("authorization", a);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let v: Value = r.json().await.unwrap();
        assert_eq!(v, json!({ "message": "Unauthorized" }));
    }
    let (s, _) = app.get("/user_management/users").await;
    assert_eq!(s, StatusCode::OK, "the right key works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_api_key_stops_working_at_once_without_the_cache() {
    let app = TestApp::spawn_configured(Backend::Sqlite, |c| c.api_key_cache_ms = 0)
        .await
        .unwrap();
    let (row, secret) =
        tessera_server::startup::create_api_key(&app.state.store, &app.clock, "temp")
            .await
            .unwrap();
    let ok = app
        .http
        .get(app.url("/user_management/users"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    app.state
        .store
        .revoke_api_key(&row.id, tessera_core::Timestamp(1))
        .await
        .unwrap();
    let r = app
        .http
        .get(app.url("/user_management/users"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_api_key_stops_working_when_its_cache_entry_expires() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    assert_eq!(app.state.config.api_key_cache_ms, 1000, "the default");
    let (row, secret) =
        tessera_server::startup::create_api_key(&app.state.store, &app.clock, "temp")
            .await
            .unwrap();
    let status = |secret: String| {
        let (http, url) = (app.http.clone(), app.url("/user_management/users"));
        async move {
            http.get(url)
                .bearer_auth(secret)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status(secret.clone()).await, StatusCode::OK);
    app.state
        .store
        .revoke_api_key(&row.id, tessera_core::Timestamp(1))
        .await
        .unwrap();
    app.clock.advance_millis(999);
    assert_eq!(
        status(secret.clone()).await,
        StatusCode::OK,
        "trusted for the cache time"
    );
    let last = if secret.ends_with('x') { "y" } else { "x" };
    let wrong = format!("{}{last}", &secret[..secret.len() - 1]);
    assert_eq!(
        status(wrong).await,
        StatusCode::UNAUTHORIZED,
        "a cached key is still compared in full"
    );
    app.clock.advance_millis(1);
    assert_eq!(
        status(secret).await,
        StatusCode::UNAUTHORIZED,
        "read again, and refused, once the entry is 1 s old"
    );
}

async fn unknown_routes_and_methods_answer_in_the_json_error_shape(app: TestApp) {
    let (s, v) = app.get("/no/such/thing").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["code"], "not_found");
    let (s, v) = app
        .call(Method::PATCH, "/user_management/users", None)
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(v["code"], "method_not_allowed");
}

async fn malformed_json_gets_our_error_shape_and_type_errors_name_the_field(app: TestApp) {
    let send = |body: &'static [u8], ct: &'static str| {
        app.http
            .post(app.url("/user_management/users"))
            .bearer_auth(&app.key)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = send(b"{\"email\": ", "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "malformed_json");
    assert!(v["message"].as_str().unwrap().len() > 10);

    let r = send(b"{\"email\": 42}", "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "invalid_request_parameters");
    assert_eq!(v["errors"][0]["field"], "email");

    let r = send(b"email=a@b.co", "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "unsupported_media_type");

    let r = send(b"\xff\xfe\x00", "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let (_, list) = app.get("/user_management/users").await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        0,
        "nothing was written"
    );
}

async fn oversized_bodies_get_413_and_change_nothing(app: TestApp) {
    let big = "x".repeat(app.state.config.body_limit_bytes + 1);
    let (s, v) = app
        .post(
            "/user_management/users",
            json!({ "email": "big@example.com", "first_name": big }),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["code"], "payload_too_large");
    let (_, list) = app
        .get("/user_management/users?email=big%40example.com")
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

async fn sdk_quirks_are_tolerated(app: TestApp) {
    let u = app.create_user("quirks@example.com").await;
    let uid = u["id"].as_str().unwrap();
    // Content-Type: application/json with an empty body on GET and DELETE (Python, Node, Go).
    for m in [Method::GET, Method::DELETE] {
        let path = if m == Method::GET {
            format!("/user_management/users/{uid}/auth_factors")
        } else {
            "/user_management/users/user_01JZZZZZZZZZZZZZZZZZZZZZZZ".into()
        };
        let r = app
            .http
            .request(m.clone(), app.url(&path))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == StatusCode::OK || r.status() == StatusCode::NOT_FOUND,
            "{m} {}",
            r.status()
        );
    }
    // A literal `null` body (Go with nil params) and `""` (Ruby) mean "no fields".
    for body in ["null", ""] {
        let r = app
            .http
            .put(app.url(&format!("/user_management/users/{uid}")))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "body {body:?}");
    }
    // Explicit nulls for optional fields, unknown fields, and an Idempotency-Key header.
    let r = app
        .http
        .post(app.url("/user_management/users"))
        .bearer_auth(&app.key)
        .header("idempotency-key", "3f6d1b8e-8a4f-4a4e-9c55-1f1f7c3e2a10")
        .json(&json!({ "email": "nulls@example.com", "first_name": null, "password": null, "metadata": null, "radar_auth_attempt_id": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["first_name"], Value::Null);
    assert_eq!(v["metadata"], json!({}));
}
