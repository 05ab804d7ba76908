//! Hostile input: panics, header floods, slow and idle clients (HTTP/1 and HTTP/2), too many
//! connections, pathological JSON, overlong fields.
//! Nothing malformed may produce a 5xx (except the deliberate panic) or write anything.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Backend, TestApp};

/// Serves the real API plus a route that panics, with the real layers, on port 0.
async fn with_panic_route(app: &TestApp) -> String {
    let routes = tessera_server::routes::api().0.route(
        "/boom",
        axum::routing::get(|| async {
            if std::hint::black_box(true) {
                panic!("deliberate test panic")
            }
            "unreachable"
        }),
    );
    let router = tessera_server::routes::with_layers(routes, app.state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(tessera_server::serve::serve(
        listener,
        router,
        tessera_server::serve::ServeLimits {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_open_connections: 100,
        },
        std::future::pending(),
    ));
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_answered_with_a_json_500_and_the_server_keeps_serving() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let base = with_panic_route(&app).await;
    for _ in 0..3 {
        let r = app.http.get(format!("{base}/boom")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(r.headers().contains_key("x-request-id"));
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], "server_error");
        assert!(
            !v["message"].as_str().unwrap().contains("deliberate"),
            "panic text is not leaked"
        );
    }
    let r = app
        .http
        .get(format!("{base}/user_management/users"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_flood_is_refused_with_431_and_the_server_keeps_serving() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let mut rb = app.http.get(app.url("/health"));
    for i in 0..150 {
        rb = rb.header(format!("x-flood-{i}"), "x");
    }
    let r = rb.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let huge = "x".repeat(600 * 1024);
    let r = app
        .http
        .get(app.url("/health"))
        .header("x-huge", huge)
        .send()
        .await;
    assert!(
        r.map(|r| r.status().is_client_error()).unwrap_or(true),
        "a huge header is refused or the connection closed"
    );
    assert_eq!(
        app.http
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_too_slow_to_send_its_headers_is_disconnected() {
    let app = TestApp::spawn_configured(Backend::Sqlite, |c| {
        c.header_read_timeout = Duration::from_millis(300)
    })
    .await
    .unwrap();
    let addr = app.base.strip_prefix("http://").unwrap().to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap(); // never finishes
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 1024];
    // The guard only bounds a broken test; the server closes after 300 ms.
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue, // a 408 may come first
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept a slow client forever");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        app.http
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pathological_json_is_a_client_error_and_writes_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let deep = format!(
        "{{\"email\":{}1{}}}",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let wide = format!(
        "{{\"email\":\"w@example.com\",\"metadata\":{{{}}}}}",
        (0..5000)
            .map(|i| format!("\"k{i}\":\"v\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let array = format!("[{}]", vec!["1"; 60_000].join(","));
    for (name, body) in [
        ("deep", deep),
        ("wide", wide),
        ("array", array),
        (
            "string-escapes",
            format!("{{\"email\":\"{}\"}}", "\\u0000".repeat(20_000)),
        ),
    ] {
        let r = app
            .http
            .post(app.url("/user_management/users"))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{name}: {}", r.status());
        let v: Value = r.json().await.unwrap();
        assert!(v["code"].is_string(), "{name}: {v}");
    }
    let (_, list) = app.get("/user_management/users").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_strings_in_every_field_get_422_naming_the_field() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let long = "x".repeat(5000);
    for field in [
        "email",
        "first_name",
        "last_name",
        "name",
        "profile_picture_url",
        "external_id",
        "locale",
    ] {
        let mut body = json!({ "email": "long@example.com" });
        body[field] = json!(long);
        let (s, v) = app.post("/user_management/users", body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(v["errors"][0]["field"], field, "{field}: {v}");
    }
    for field in ["totp_issuer", "totp_user"] {
        let mut body = json!({ "type": "totp", "totp_issuer": "i", "totp_user": "u" });
        body[field] = json!(long);
        let (s, v) = app.post("/auth/factors/enroll", body).await;
        assert_eq!(
            (s, v["errors"][0]["field"].clone()),
            (StatusCode::UNPROCESSABLE_ENTITY, json!(field))
        );
    }
    let (s, v) = app
        .post(
            "/auth/factors/enroll",
            json!({ "type": "sms", "phone_number": long }),
        )
        .await;
    assert_eq!(
        (s, v["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("invalid_phone_number")
        )
    );
    assert!(
        v["message"].as_str().unwrap().len() < 200,
        "the echo of a bad number is bounded"
    );
    let (fid, _) = app.totp_factor(None).await;
    let (s, v) = app
        .post(
            &format!("/auth/factors/{fid}/challenge"),
            json!({ "sms_template": format!("{{{{code}}}}{long}") }),
        )
        .await;
    assert_eq!(
        (s, v["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("sms_template"))
    );
    let c = app.challenge(&fid).await;
    let (s, v) = app.verify(c["id"].as_str().unwrap(), &long).await;
    assert_eq!(
        (s, v["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("code"))
    );
    let (s, v) = app.get(&format!("/user_management/users/{long}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(
        app.get("/user_management/users").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

/// Reads until the server closes the connection (EOF or reset); the bound only stops a
/// broken test. Returns how long that took.
async fn closed_by_server(s: &mut tokio::net::TcpStream, bound: Duration) -> Option<Duration> {
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 4096];
    tokio::time::timeout(bound, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue, // a 408 or a GOAWAY may come first
            }
        }
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

fn addr_of(app: &TestApp) -> String {
    app.base.strip_prefix("http://").unwrap().to_owned()
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_one_byte_and_http2_preface_only_connections_are_closed_within_the_header_timeout() {
    let app = TestApp::spawn_configured(Backend::Sqlite, |c| {
        c.header_read_timeout = Duration::from_millis(200)
    })
    .await
    .unwrap();
    let addr = addr_of(&app);
    // "P" is the first byte of the HTTP/2 preface: protocol detection waits for more.
    for (name, sent) in [
        ("silent", &b""[..]),
        ("one byte", &b"P"[..]),
        ("HTTP/2 preface only", H2_PREFACE),
    ] {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(sent).await.unwrap();
        let took = closed_by_server(&mut s, Duration::from_secs(10)).await;
        assert!(
            took.is_some_and(|t| t < Duration::from_secs(3)),
            "{name}: the server kept the connection ({took:?})"
        );
    }
    assert_eq!(
        app.http
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

/// An HTTP/2 connection with prior knowledge, driven by the `h2` client.
async fn h2_client(
    addr: &str,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    (client, tokio::spawn(conn))
}

async fn h2_get(
    client: h2::client::SendRequest<bytes::Bytes>,
    addr: &str,
    extra_headers: usize,
) -> http::StatusCode {
    let mut client = client.ready().await.unwrap();
    let mut req = http::Request::get(format!("http://{addr}/health"))
        .body(())
        .unwrap();
    for i in 0..extra_headers {
        req.headers_mut().insert(
            http::HeaderName::try_from(format!("x-flood-{i}")).unwrap(),
            http::HeaderValue::from_static("x"),
        );
    }
    let (resp, _) = client.send_request(req, true).unwrap();
    resp.await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_gets_431_for_150_headers_like_http1() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let addr = addr_of(&app);
    let (client, _conn) = h2_client(&addr).await;
    assert_eq!(
        h2_get(client.clone(), &addr, 10).await,
        http::StatusCode::OK
    );
    assert_eq!(
        h2_get(client.clone(), &addr, 150).await,
        http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    // A header list over the size limit: h2 itself answers 431 (or refuses the stream).
    let mut ready = client.ready().await.unwrap();
    let mut req = http::Request::get(format!("http://{addr}/health"))
        .body(())
        .unwrap();
    req.headers_mut().insert(
        "x-huge",
        http::HeaderValue::from_str(&"x".repeat(100 * 1024)).unwrap(),
    );
    // The client may refuse it itself, from the limit the server advertised in SETTINGS.
    if let Ok((resp, _)) = ready.send_request(req, true) {
        match resp.await {
            Ok(r) => assert_eq!(
                r.status(),
                http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            ),
            Err(e) => assert!(e.is_reset() || e.is_go_away(), "{e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http1_keep_alive_and_http2_connections_are_closed_after_the_idle_timeout() {
    let app = TestApp::spawn_configured(Backend::Sqlite, |c| {
        c.idle_timeout = Duration::from_millis(300)
    })
    .await
    .unwrap();
    let addr = addr_of(&app);
    // HTTP/1.1 keep-alive: one request answered, then nothing.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let took = closed_by_server(&mut s, Duration::from_secs(10)).await;
    assert!(
        took.is_some_and(|t| t >= Duration::from_millis(250) && t < Duration::from_secs(3)),
        "HTTP/1 keep-alive: closed after the idle timeout, not before ({took:?})"
    );
    // HTTP/2: the client answers the server's PINGs, which must not count as activity.
    let (client, conn) = h2_client(&addr).await;
    assert_eq!(h2_get(client.clone(), &addr, 0).await, http::StatusCode::OK);
    let started = std::time::Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(
        ended.is_ok() && started.elapsed() < Duration::from_secs(3),
        "HTTP/2: the server kept an idle connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_new_connections_are_closed_and_health_answers_again_when_others_end()
{
    let app = TestApp::spawn_configured(Backend::Sqlite, |c| c.max_open_connections = 4)
        .await
        .unwrap();
    let addr = addr_of(&app);
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        // A served request proves the connection holds a slot (not just the kernel's queue).
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let took = closed_by_server(&mut extra, Duration::from_secs(10)).await;
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(3)),
        "a connection past the cap was kept"
    );
    drop(held);
    // The server sees the four close and frees their slots; /health answers again.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(r) = fresh.get(app.url("/health")).send().await {
                return r.status();
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(answered.ok(), Some(StatusCode::OK));
}
