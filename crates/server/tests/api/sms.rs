//! SMS delivery through the webhook and Twilio providers, against a local HTTP receiver, and
//! the per-number send limit.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxStatus};
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_server::config::SmsProvider;

use crate::helpers::{Backend, TestApp};

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>);

/// A local HTTP receiver on port 0 answering every POST with `status`.
async fn receiver(status: u16) -> (String, Received) {
    let got = Received::default();
    let g = got.clone();
    let app = axum::Router::new().fallback(post(
        move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                g.0.lock()
                    .unwrap()
                    .push((uri.path().to_owned(), headers, body));
                (AxStatus::from_u16(status).unwrap(), "{}")
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), got)
}

async fn sms_factor(app: &TestApp, phone: &str) -> String {
    let (s, f) = app
        .post(
            "/auth/factors/enroll",
            json!({ "type": "sms", "phone_number": phone }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    f["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_provider_posts_a_signed_message_whose_code_verifies() {
    let (url, got) = receiver(200).await;
    let app = TestApp::spawn_configured(Backend::Sqlite, |c| {
        c.sms_provider = SmsProvider::Webhook {
            url: format!("{url}/sms"),
            secret: zeroize::Zeroizing::new("whsec_test".into()),
        };
    })
    .await
    .unwrap();
    let fid = sms_factor(&app, "+15555550100").await;
    let (s, c) = app
        .post(
            &format!("/auth/factors/{fid}/challenge"),
            json!({ "sms_template": "Your Foo Corp code: {{code}}" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (path, headers, body) = got.0.lock().unwrap().pop().unwrap();
    assert_eq!(path, "/sms");
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["to"], "+15555550100");
    assert_eq!(payload["challenge_id"], c["id"]);
    let text = payload["body"].as_str().unwrap();
    let code = text.strip_prefix("Your Foo Corp code: ").unwrap();
    let sig = headers["tessera-signature"].to_str().unwrap();
    let t = crate::helpers::T0 / 1000;
    assert_eq!(
        sig,
        tessera_server::sms::webhook_signature(
            b"whsec_test",
            t,
            std::str::from_utf8(&body).unwrap()
        )
    );
    assert!(sig.starts_with(&format!("t={t},v1=")));
    let (s, v) = app.verify(c["id"].as_str().unwrap(), code).await;
    assert_eq!((s, v["valid"].clone()), (StatusCode::CREATED, json!(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_twilio_provider_calls_the_messages_api_with_basic_auth() {
    let (url, got) = receiver(201).await;
    let app = TestApp::spawn_configured(Backend::Sqlite, |c| {
        c.sms_provider = SmsProvider::Twilio {
            base_url: url.clone(),
            account_sid: "AC123".into(),
            auth_token: zeroize::Zeroizing::new("token".into()),
            from: "+15555550199".into(),
        };
    })
    .await
    .unwrap();
    let fid = sms_factor(&app, "+15555550100").await;
    let c = app.challenge(&fid).await;
    let (path, headers, body) = got.0.lock().unwrap().pop().unwrap();
    assert_eq!(path, "/2010-04-01/Accounts/AC123/Messages.json");
    use base64::Engine;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("AC123:token")
    );
    assert_eq!(headers["authorization"].to_str().unwrap(), auth);
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap();
    let get = |k: &str| {
        form.iter()
            .find(|(a, _)| a == k)
            .map(|(_, b)| b.clone())
            .unwrap()
    };
    assert_eq!(get("To"), "+15555550100");
    assert_eq!(get("From"), "+15555550199");
    let code: String = get("Body")
        .chars()
        .filter(char::is_ascii_digit)
        .take(6)
        .collect();
    assert_eq!(
        app.verify(c["id"].as_str().unwrap(), &code).await.1["valid"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_a_clear_error_and_leaves_no_challenge() {
    let (url, got) = receiver(500).await;
    let app = TestApp::spawn_configured(Backend::Sqlite, |c| {
        c.sms_provider = SmsProvider::Webhook {
            url,
            secret: zeroize::Zeroizing::new("s".into()),
        };
    })
    .await
    .unwrap();
    let fid = sms_factor(&app, "+15555550100").await;
    let (s, v) = app
        .post(&format!("/auth/factors/{fid}/challenge"), json!({}))
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    assert_eq!(v["code"], "sms_delivery_failed");
    let payload: Value = serde_json::from_slice(&got.0.lock().unwrap()[0].2).unwrap();
    let (s, _) = app
        .verify(payload["challenge_id"].as_str().unwrap(), "123456")
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "no usable challenge was left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_to_one_number_are_limited_to_five_per_ten_minutes() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let a = sms_factor(&app, "+15555550100").await;
    let b = sms_factor(&app, "+1 555 555 0100").await;
    for i in 0..5 {
        let f = if i % 2 == 0 { &a } else { &b };
        let (s, _) = app
            .post(&format!("/auth/factors/{f}/challenge"), json!({}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "send {i}");
    }
    let r = app
        .http
        .post(app.url(&format!("/auth/factors/{a}/challenge")))
        .bearer_auth(&app.key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the limit is per number, across factors"
    );
    assert_eq!(r.headers()["retry-after"], "120");
    let other = sms_factor(&app, "+15555550101").await;
    assert_eq!(
        app.post(&format!("/auth/factors/{other}/challenge"), json!({}))
            .await
            .0,
        StatusCode::CREATED
    );
    app.clock.advance_millis(120_000);
    assert_eq!(
        app.post(&format!("/auth/factors/{a}/challenge"), json!({}))
            .await
            .0,
        StatusCode::CREATED
    );
}
