//! The shared page stack (`crates/server/src/web/`): security headers, the CSRF cookie and
//! token check, the form extractor's error pages, and the hashed, long-cached stylesheet.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::response::IntoResponse;
use axum::routing::get;
use reqwest::StatusCode;
use tessera_server::web::{self, csrf::CsrfToken, form::Form};

use crate::helpers::{Backend, TestApp};

#[derive(serde::Deserialize)]
struct NameForm {
    name: String,
}

/// Serves the app plus two test pages: GET /t/form (shows the CSRF token) and POST /t/form
/// (counts the changes it makes).
async fn with_test_pages(app: &TestApp) -> (String, Arc<AtomicUsize>) {
    let changes = Arc::new(AtomicUsize::new(0));
    let c = changes.clone();
    let pages = axum::Router::new().route(
        "/t/form",
        get(|t: CsrfToken| async move { t.0 }).post(move |Form(f): Form<NameForm>| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                format!("saved {}", f.name).into_response()
            }
        }),
    );
    let routes = web::with_web_layers(pages, &app.state).merge(web::router(&app.state));
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
    (format!("http://{addr}"), changes)
}

fn cookie_pair(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_the_security_headers_and_a_strict_http_only_csrf_cookie() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let (base, _) = with_test_pages(&app).await;
    let r = app.http.get(format!("{base}/t/form")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    assert_eq!(h["cache-control"], "no-store");
    let set = h
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("tessera_csrf="))
        .expect("a CSRF cookie is set");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain http: no Secure flag: {set}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_when_the_public_url_is_https() {
    let app = TestApp::spawn_configured(Backend::Sqlite, |c| {
        c.public_url = "https://auth.example.com".into();
    })
    .await
    .unwrap();
    let (base, _) = with_test_pages(&app).await;
    let r = app.http.get(format!("{base}/t/form")).send().await.unwrap();
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.ends_with("; Secure"), "{set}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_the_right_csrf_token_is_refused_with_a_403_page_and_changes_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let (base, changes) = with_test_pages(&app).await;
    let r = app.http.get(format!("{base}/t/form")).send().await.unwrap();
    let cookie = cookie_pair(&r, "tessera_csrf").unwrap();
    let token = r.text().await.unwrap();
    let post = |body: String, cookie: Option<String>| {
        let mut rb = app
            .http
            .post(format!("{base}/t/form"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = cookie {
            rb = rb.header("cookie", c);
        }
        rb.send()
    };
    // No token, a wrong token, the right token without its cookie, another browser's token.
    let other = app.http.get(format!("{base}/t/form")).send().await.unwrap();
    let other_cookie = cookie_pair(&other, "tessera_csrf").unwrap();
    let mut wrong = token.clone();
    wrong.replace_range(0..2, if &token[0..2] == "00" { "11" } else { "00" });
    for (body, c) in [
        ("name=x".to_owned(), Some(cookie.clone())),
        (format!("name=x&csrf={wrong}"), Some(cookie.clone())),
        (format!("name=x&csrf={token}"), None),
        (format!("name=x&csrf={token}"), Some(other_cookie)),
        ("name=x&csrf=zz".to_owned(), Some(cookie.clone())),
    ] {
        let r = post(body.clone(), c).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{body}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let page = r.text().await.unwrap();
        assert!(page.contains("<h1>This form has expired</h1>"), "{page}");
    }
    assert_eq!(
        changes.load(Ordering::SeqCst),
        0,
        "no refused form ran its handler"
    );
    let r = post(format!("name=ada&csrf={token}"), Some(cookie.clone()))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "saved ada");
    assert_eq!(changes.load(Ordering::SeqCst), 1);
    // A form missing a field is a 400 page, not a framework's plain text.
    let r = post(format!("csrf={token}"), Some(cookie)).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<h1>Please try again</h1>"));
    assert_eq!(changes.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stylesheet_is_served_under_its_content_hash_with_a_year_of_caching() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let url = web::assets::css_url();
    assert!(
        url.starts_with("/static/style.") && url.ends_with(".css"),
        "{url}"
    );
    let r = app.http.get(app.url(url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let css = r.text().await.unwrap();
    assert!(css.contains("prefers-color-scheme: dark"));
    let js = app
        .http
        .get(app.url(web::assets::js_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    // Another hash is not this content: never served (a stale name must not get new bytes).
    let r = app
        .http
        .get(app.url("/static/style.000000000000.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
