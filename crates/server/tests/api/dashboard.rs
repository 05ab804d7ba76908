//! The admin dashboard over HTTP, on both backends: signed-out redirects, sign-in with TOTP
//! enrolment and later codes, CSRF refusals that change nothing, wrong passwords and codes,
//! throttling, session timeouts on the manual clock, and removed admins losing their session.

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::StatusCode;
use tessera_core::Clock;

use crate::helpers::TestApp;
use crate::on_both_backends;

const PW: &str = "correct horse battery staple";

/// A cookie-keeping client that does not follow redirects.
struct Browser<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookies: Mutex<HashMap<String, String>>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Mutex::default(),
        }
    }

    fn cookie_header(&self) -> String {
        let c = self.cookies.lock().unwrap();
        c.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&self, r: &reqwest::Response) {
        let mut c = self.cookies.lock().unwrap();
        for v in r.headers().get_all("set-cookie") {
            let pair = v.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                c.remove(k);
            } else {
                c.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, String, Option<String>) {
        let r = self
            .http
            .get(self.app.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&r);
        let loc = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        (r.status(), r.text().await.unwrap(), loc)
    }

    /// The CSRF token of the page at `path`.
    async fn token(&self, path: &str) -> String {
        let (_, html, _) = self.get(path).await;
        between(&html, "name=\"csrf\" value=\"", "\"")
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String, Option<String>) {
        let r = self
            .http
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap();
        self.keep(&r);
        let loc = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        (r.status(), r.text().await.unwrap(), loc)
    }
}

fn between(s: &str, a: &str, b: &str) -> String {
    let i = s.find(a).unwrap_or_else(|| panic!("{a} not in {s}")) + a.len();
    let j = s[i..].find(b).unwrap() + i;
    s[i..j].to_owned()
}

async fn add_admin(app: &TestApp, email: &str) {
    tessera_server::services::admins::add(&app.state.store, app.clock.now(), email, PW)
        .await
        .unwrap();
}

/// Signs in with the password; returns the page the code step shows.
async fn password_step(
    b: &Browser<'_>,
    email: &str,
    pw: &str,
) -> (StatusCode, String, Option<String>) {
    let csrf = b.token("/dashboard/login").await;
    b.post(
        "/dashboard/login",
        &[("csrf", &csrf), ("email", email), ("password", pw)],
    )
    .await
}

/// First sign-in of `email`: enrols and returns the secret.
async fn enrol(app: &TestApp, b: &Browser<'_>, email: &str) -> String {
    let (s, _, loc) = password_step(b, email, PW).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(loc.as_deref(), Some("/dashboard/login/code"));
    let (s, html, _) = b.get("/dashboard/login/code").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("<h1>Set up two-factor authentication</h1>"));
    assert!(html.contains("<label for=\"code\">Code</label>"));
    let secret = between(&html, "aria-label=\"Secret key\">", "<").replace(' ', "");
    let qr = between(&html, "class=\"qr\" src=\"", "\"");
    let uri = crate::helpers::decode_qr_data_uri(&qr);
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let csrf = between(&html, "name=\"csrf\" value=\"", "\"");
    let (s, _, loc) = b
        .post(
            "/dashboard/login/code",
            &[("csrf", &csrf), ("code", &app.totp_code(&secret, 0))],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(loc.as_deref(), Some("/dashboard/users"));
    secret
}

async fn signed_out_pages_redirect_to_the_login_page(app: TestApp) {
    let b = Browser::new(&app);
    for path in [
        "/dashboard",
        "/dashboard/users",
        "/dashboard/users/new",
        "/dashboard/authentication",
        "/dashboard/api-keys",
        "/dashboard/events",
        "/dashboard/signing-keys",
        "/dashboard/login/code",
    ] {
        let (s, _, loc) = b.get(path).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(loc.as_deref(), Some("/dashboard/login"), "{path}");
    }
    let (s, html, _) = b.get("/dashboard/no-such-page").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(html.contains("<h1>Page not found</h1>"));
    let (s, html, _) = b.get("/dashboard/login").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("<label for=\"email\">Email</label>"));
    assert!(html.contains("<label for=\"password\">Password</label>"));
    assert!(html.contains(">Sign in</button>"));
}

async fn an_admin_enrols_then_signs_in_with_a_code_and_the_secret_is_never_shown_again(
    app: TestApp,
) {
    add_admin(&app, "ada@example.com").await;
    let b = Browser::new(&app);
    let secret = enrol(&app, &b, "ada@example.com").await;
    let (s, html, _) = b.get("/dashboard/users").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("<h1>Users</h1>"));
    // Sign out: the old cookie is worthless afterwards.
    let old = b.cookie_header();
    let csrf = between(&html, "name=\"csrf\" value=\"", "\"");
    let (s, _, loc) = b.post("/dashboard/logout", &[("csrf", &csrf)]).await;
    assert_eq!(
        (s, loc.as_deref()),
        (StatusCode::SEE_OTHER, Some("/dashboard/login"))
    );
    let r = b
        .http
        .get(app.url("/dashboard/users"))
        .header("cookie", old)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // Second sign-in: a code page, no secret.
    app.clock.advance_millis(30_000);
    password_step(&b, "ada@example.com", PW).await;
    let (_, html, _) = b.get("/dashboard/login/code").await;
    assert!(html.contains("<h1>Enter your code</h1>"), "{html}");
    assert!(!html.contains(&secret[..8]) && !html.contains("Secret key"));
    let csrf = between(&html, "name=\"csrf\" value=\"", "\"");
    // A wrong code keeps the step; the right one signs in.
    let (s, html, _) = b
        .post(
            "/dashboard/login/code",
            &[("csrf", &csrf), ("code", "000000")],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("didn&#39;t work") || html.contains("didn't work"),
        "{html}"
    );
    let (s, _, loc) = b
        .post(
            "/dashboard/login/code",
            &[("csrf", &csrf), ("code", &app.totp_code(&secret, 0))],
        )
        .await;
    assert_eq!(
        (s, loc.as_deref()),
        (StatusCode::SEE_OTHER, Some("/dashboard/users"))
    );
}

async fn a_replayed_code_is_refused_at_the_next_sign_in(app: TestApp) {
    add_admin(&app, "ada@example.com").await;
    let b = Browser::new(&app);
    let secret = enrol(&app, &b, "ada@example.com").await;
    let b2 = Browser::new(&app);
    password_step(&b2, "ada@example.com", PW).await;
    let csrf = b2.token("/dashboard/login/code").await;
    let (s, html, loc) = b2
        .post(
            "/dashboard/login/code",
            &[("csrf", &csrf), ("code", &app.totp_code(&secret, 0))],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{loc:?}");
    assert!(html.contains("<h1>Enter your code</h1>"));
}

async fn wrong_passwords_and_unknown_emails_get_the_same_answer_and_are_throttled(app: TestApp) {
    add_admin(&app, "ada@example.com").await;
    let b = Browser::new(&app);
    let (s1, wrong, _) = password_step(&b, "ada@example.com", "not the password").await;
    let (s2, unknown, _) = password_step(&b, "nobody@example.com", "not the password").await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    let msg = |h: &str| between(h, "role=\"alert\">", "<");
    assert_eq!(msg(&wrong), msg(&unknown));
    assert!(b.cookies.lock().unwrap().get("tessera_admin").is_none());
    for _ in 0..9 {
        password_step(&b, "ada@example.com", "not the password").await;
    }
    // Past the limit even the right password is refused, with a 429.
    let (s, html, _) = password_step(&b, "ada@example.com", PW).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{html}");
    assert!(b.cookies.lock().unwrap().get("tessera_admin").is_none());
}

async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing(app: TestApp) {
    add_admin(&app, "ada@example.com").await;
    let b = Browser::new(&app);
    enrol(&app, &b, "ada@example.com").await;
    for token in ["", "00ff"] {
        let (s, _, _) = b
            .post(
                "/dashboard/authentication",
                &[
                    ("csrf", token),
                    ("mfa_required", "on"),
                    ("totp_issuer", "X"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let env = app.state.store.find_environment().await.unwrap().unwrap();
    assert!(!env.mfa_required, "nothing changed");
    assert_eq!(
        app.state.store.find_totp_issuer().await.unwrap().as_deref(),
        Some("Tessera Test")
    );
    let csrf = b.token("/dashboard/authentication").await;
    // An empty issuer is refused on the page itself, with the choices kept; nothing saved.
    let (s, html, _) = b
        .post(
            "/dashboard/authentication",
            &[
                ("csrf", &csrf),
                ("mfa_required", "on"),
                ("totp_issuer", "  "),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("Nothing was saved") && html.contains(" checked"),
        "{html}"
    );
    assert!(
        !app.state
            .store
            .find_environment()
            .await
            .unwrap()
            .unwrap()
            .mfa_required
    );
    let (s, _, _) = b
        .post(
            "/dashboard/authentication",
            &[
                ("csrf", &csrf),
                ("mfa_required", "on"),
                ("totp_issuer", "Acme"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(
        app.state
            .store
            .find_environment()
            .await
            .unwrap()
            .unwrap()
            .mfa_required
    );
    // The API's enrolment now uses the stored issuer.
    let u = app.create_user("grace@example.com").await;
    let f = app
        .enroll_totp(
            u["id"].as_str().unwrap(),
            serde_json::json!({"type": "totp"}),
        )
        .await;
    assert_eq!(f["authentication_factor"]["totp"]["issuer"], "Acme");
    // A CLI-style change shows on the page.
    app.state.store.set_mfa_required(false).await.unwrap();
    let (_, html, _) = b.get("/dashboard/authentication").await;
    assert!(
        !html.contains(" checked"),
        "the page shows the stored setting"
    );
}

async fn sessions_end_after_30_idle_minutes_and_after_12_hours(app: TestApp) {
    add_admin(&app, "ada@example.com").await;
    let b = Browser::new(&app);
    enrol(&app, &b, "ada@example.com").await;
    // Activity every 29 minutes keeps it alive ...
    for _ in 0..3 {
        app.clock.advance_millis(29 * 60 * 1000);
        assert_eq!(b.get("/dashboard/users").await.0, StatusCode::OK);
    }
    // ... 31 idle minutes end it.
    app.clock.advance_millis(31 * 60 * 1000);
    assert_eq!(b.get("/dashboard/users").await.0, StatusCode::SEE_OTHER);
    // Absolute: 12 hours however active.
    let b = Browser::new(&app);
    app.clock.advance_millis(60_000);
    let secret_less = enrol_again(&app, &b).await;
    assert!(secret_less);
    for _ in 0..26 {
        app.clock.advance_millis(29 * 60 * 1000);
        let _ = b.get("/dashboard/users").await; // 26 x 29 min > 12 h
    }
    assert_eq!(b.get("/dashboard/users").await.0, StatusCode::SEE_OTHER);
}

/// A second sign-in with a code (the factor exists); true when it worked.
async fn enrol_again(app: &TestApp, b: &Browser<'_>) -> bool {
    // Reset the factor so the test can read a fresh secret.
    tessera_server::services::admins::reset_mfa(
        &app.state.store,
        app.clock.now(),
        "ada@example.com",
    )
    .await
    .unwrap();
    enrol(app, b, "ada@example.com").await;
    b.get("/dashboard/users").await.0 == StatusCode::OK
}

async fn a_removed_admin_loses_the_session_at_once(app: TestApp) {
    add_admin(&app, "ada@example.com").await;
    let b = Browser::new(&app);
    enrol(&app, &b, "ada@example.com").await;
    assert_eq!(b.get("/dashboard/users").await.0, StatusCode::OK);
    tessera_server::services::admins::remove(&app.state.store, app.clock.now(), "ada@example.com")
        .await
        .unwrap();
    assert_eq!(b.get("/dashboard/users").await.0, StatusCode::SEE_OTHER);
}

async fn admin_actions_are_events_with_the_admin_id(app: TestApp) {
    add_admin(&app, "ada@example.com").await;
    let b = Browser::new(&app);
    enrol(&app, &b, "ada@example.com").await;
    let csrf = b.token("/dashboard/api-keys").await;
    let (s, html, _) = b
        .post(
            "/dashboard/api-keys",
            &[("csrf", &csrf), ("name", "backend")],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let key = between(&html, "aria-label=\"New API key\">", "<");
    assert_eq!(
        app.http
            .get(app.url("/user_management/users"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // The list never shows the secret again.
    let (_, html, _) = b.get("/dashboard/api-keys").await;
    assert!(!html.contains(&key));
    let page = app
        .state
        .store
        .list_events_by(
            Some("admin.api_key_created"),
            None,
            &tessera_store::ListParams {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.data.len(), 1);
    let data: serde_json::Value = serde_json::from_str(&page.data[0].data).unwrap();
    assert!(data["admin_id"].as_str().unwrap().starts_with("admin_"));
}

on_both_backends!(
    signed_out_pages_redirect_to_the_login_page,
    an_admin_enrols_then_signs_in_with_a_code_and_the_secret_is_never_shown_again,
    a_replayed_code_is_refused_at_the_next_sign_in,
    wrong_passwords_and_unknown_emails_get_the_same_answer_and_are_throttled,
    a_form_without_its_csrf_token_is_refused_and_changes_nothing,
    sessions_end_after_30_idle_minutes_and_after_12_hours,
    a_removed_admin_loses_the_session_at_once,
    admin_actions_are_events_with_the_admin_id,
);

async fn a_pending_sign_in_is_finished_once_by_parallel_right_codes(app: TestApp) {
    add_admin(&app, "ada@example.com").await;
    let b = Browser::new(&app);
    let secret = enrol(&app, &b, "ada@example.com").await;
    app.clock.advance_millis(30_000);
    let b = Browser::new(&app);
    password_step(&b, "ada@example.com", PW).await;
    let csrf = b.token("/dashboard/login/code").await;
    let code = app.totp_code(&secret, 0);
    let cookie = b.cookie_header();
    let mut tasks = vec![];
    for _ in 0..10 {
        let http = b.http.clone();
        let url = app.url("/dashboard/login/code");
        let body = serde_urlencoded::to_string([("csrf", csrf.as_str()), ("code", code.as_str())])
            .unwrap();
        let cookie = cookie.clone();
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .header("cookie", cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            let signed_in = r.status() == StatusCode::SEE_OTHER
                && r.headers().get("location").unwrap().to_str().unwrap() == "/dashboard/users";
            signed_in
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "exactly one request signs in");
}

async fn users_can_be_created_reset_and_deleted_and_refused_forms_change_nothing(app: TestApp) {
    add_admin(&app, "ada@example.com").await;
    let b = Browser::new(&app);
    enrol(&app, &b, "ada@example.com").await;
    let csrf = b.token("/dashboard/users/new").await;
    let (s, _, loc) = b
        .post(
            "/dashboard/users",
            &[
                ("csrf", &csrf),
                ("email", "Grace@Example.com"),
                ("first_name", "Grace"),
                ("last_name", ""),
                ("password", ""),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let user_path = loc.unwrap();
    let user_id = user_path.rsplit('/').next().unwrap().to_owned();
    // The same email again: the form comes back with what was typed and a clear message.
    let (s, html, _) = b
        .post(
            "/dashboard/users",
            &[
                ("csrf", &csrf),
                ("email", "grace@example.com"),
                ("first_name", "G2"),
                ("last_name", ""),
                ("password", ""),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        html.contains("already exists") && html.contains("value=\"G2\""),
        "{html}"
    );
    // Search is a prefix of the email.
    let (_, html, _) = b.get("/dashboard/users?email=GRA").await;
    assert!(html.contains("grace@example.com"));
    assert!(
        html.contains("<span class=\"badge\">none</span>"),
        "no factor yet: {html}"
    );
    let (_, html, _) = b.get("/dashboard/users?email=race").await;
    assert!(!html.contains("grace@example.com"));
    // Two factors, then Reset MFA: refused without the token, done with it.
    app.enroll_totp(&user_id, serde_json::json!({"type": "totp"}))
        .await;
    app.enroll_totp(&user_id, serde_json::json!({"type": "totp"}))
        .await;
    let (_, html, _) = b.get("/dashboard/users").await;
    assert!(html.contains("2 factors"), "{html}");
    let (_, html, _) = b.get(&format!("{user_path}/reset-mfa")).await;
    assert!(
        html.contains("Delete 2 factors of grace@example.com?"),
        "{html}"
    );
    let (s, _, _) = b
        .post(&format!("{user_path}/reset-mfa"), &[("csrf", "")])
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, f) = app
        .get(&format!("/user_management/users/{user_id}/auth_factors"))
        .await;
    assert_eq!(f["data"].as_array().unwrap().len(), 2, "nothing changed");
    let (s, _, loc) = b
        .post(&format!("{user_path}/reset-mfa"), &[("csrf", &csrf)])
        .await;
    assert_eq!(
        (s, loc),
        (StatusCode::SEE_OTHER, Some(format!("{user_path}?reset=2")))
    );
    let (_, f) = app
        .get(&format!("/user_management/users/{user_id}/auth_factors"))
        .await;
    assert_eq!(f["data"].as_array().unwrap().len(), 0);
    let (_, html, _) = b.get(&user_path).await;
    assert!(
        html.contains("admin.user_mfa_reset") && html.contains("authentication_factor.deleted")
    );
    // The user page never shows a secret or a hash.
    assert!(!html.contains("$argon2") && !html.contains("secret"));
    // Delete, refused without the token, then done.
    let (s, _, _) = b
        .post(&format!("{user_path}/delete"), &[("csrf", "x")])
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(&format!("/user_management/users/{user_id}"))
            .await
            .0,
        StatusCode::OK
    );
    let (s, _, _) = b
        .post(&format!("{user_path}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get(&format!("/user_management/users/{user_id}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(b.get(&user_path).await.0, StatusCode::NOT_FOUND);
}

async fn api_keys_are_revoked_only_with_the_token_and_signing_keys_rotate(app: TestApp) {
    // Two users with events, for the event filters at the end.
    let grace = app.create_user("grace@example.com").await;
    let gid = grace["id"].as_str().unwrap();
    app.enroll_totp(gid, serde_json::json!({"type": "totp"}))
        .await;
    let alan = app.create_user("alan@example.com").await;
    app.enroll_totp(
        alan["id"].as_str().unwrap(),
        serde_json::json!({"type": "totp"}),
    )
    .await;
    add_admin(&app, "ada@example.com").await;
    let b = Browser::new(&app);
    enrol(&app, &b, "ada@example.com").await;
    let keys = app.state.store.list_api_keys().await.unwrap();
    let id = keys[0].id.clone();
    assert_eq!(
        keys[0].name, "bootstrap",
        "the key the test's API calls use"
    );
    // The key is in this node's cache (the clock stands still, so the entry never ages).
    assert_eq!(app.get("/user_management/users").await.0, StatusCode::OK);
    let csrf = b.token("/dashboard/api-keys").await;
    let (s, _, _) = b
        .post(&format!("/dashboard/api-keys/{id}/revoke"), &[("csrf", "")])
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(app.state.store.list_api_keys().await.unwrap()[0]
        .revoked_at
        .is_none());
    let (s, _, _) = b
        .post(
            &format!("/dashboard/api-keys/{id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(app.state.store.list_api_keys().await.unwrap()[0]
        .revoked_at
        .is_some());
    // Revoked through this node: refused here at once, cached or not.
    assert_eq!(
        app.get("/user_management/users").await.0,
        StatusCode::UNAUTHORIZED
    );
    let before = app
        .state
        .store
        .find_active_signing_key()
        .await
        .unwrap()
        .unwrap()
        .kid;
    let (s, _, _) = b
        .post("/dashboard/signing-keys/rotate", &[("csrf", "")])
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        app.state
            .store
            .find_active_signing_key()
            .await
            .unwrap()
            .unwrap()
            .kid,
        before
    );
    let (s, _, _) = b
        .post("/dashboard/signing-keys/rotate", &[("csrf", &csrf)])
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let after = app
        .state
        .store
        .find_active_signing_key()
        .await
        .unwrap()
        .unwrap()
        .kid;
    assert_ne!(after, before);
    let (_, html, _) = b.get("/dashboard/signing-keys").await;
    assert!(html.contains(&after) && html.contains(&before));
    // Events filter by type and by user.
    let (_, html, _) = b
        .get("/dashboard/events?type=admin.signing_key_rotated")
        .await;
    assert!(html.contains(&after) && !html.contains("admin.api_key_revoked</span>"));
    for who in [gid, "Grace@example.com"] {
        let (_, html, _) = b
            .get(&format!(
                "/dashboard/events?user={}",
                who.replace('@', "%40")
            ))
            .await;
        assert!(html.contains(gid), "{who}");
        assert!(!html.contains(alan["id"].as_str().unwrap()), "{who}");
        assert!(!html.contains("admin.signing_key_rotated</span>"), "{who}");
    }
    let (_, html, _) = b.get("/dashboard/events?user=nobody%40example.com").await;
    assert!(html.contains("No events match."));
}

on_both_backends!(
    a_pending_sign_in_is_finished_once_by_parallel_right_codes,
    users_can_be_created_reset_and_deleted_and_refused_forms_change_nothing,
    api_keys_are_revoked_only_with_the_token_and_signing_keys_rotate,
);

fn tessera_cli(dir: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(dir)
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_MASTER_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn admins_are_added_from_stdin_listed_reset_and_removed_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let init = tessera_cli(dir.path(), &["init"], "");
    assert!(init.status.success(), "{:?}", init);
    let short = tessera_cli(
        dir.path(),
        &["admins", "add", "ada@example.com"],
        "eleven char\n",
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
    let add = tessera_cli(
        dir.path(),
        &["admins", "add", "Ada@Example.com"],
        "twelve chars\n",
    );
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let id = String::from_utf8(add.stdout).unwrap();
    assert!(
        id.trim().starts_with("admin_") && id.lines().count() == 1,
        "{id}"
    );
    let again = tessera_cli(
        dir.path(),
        &["admins", "add", "ada@example.com"],
        "twelve chars\n",
    );
    assert!(!again.status.success());
    let list = String::from_utf8(tessera_cli(dir.path(), &["admins", "list"], "").stdout).unwrap();
    assert!(
        list.contains("ada@example.com")
            && list.contains(id.trim())
            && list.contains("no totp yet"),
        "{list}"
    );
    assert!(!list.contains("argon2"));
    assert!(
        tessera_cli(dir.path(), &["admins", "reset-mfa", "ada@example.com"], "")
            .status
            .success()
    );
    assert!(
        tessera_cli(dir.path(), &["admins", "remove", "ada@example.com"], "")
            .status
            .success()
    );
    assert!(
        !tessera_cli(dir.path(), &["admins", "remove", "ada@example.com"], "")
            .status
            .success()
    );
    let list = String::from_utf8(tessera_cli(dir.path(), &["admins", "list"], "").stdout).unwrap();
    assert!(list.is_empty(), "{list}");
}

/// The dashboard's user search (email prefix) and per-user event filter run on indexes, not
/// full scans, on both databases (the statements' shapes as `Store::search_users` and
/// `Store::list_events_by` build them).
async fn user_search_and_the_per_user_event_filter_use_indexes(app: TestApp) {
    let search =
        "SELECT id FROM users WHERE 1 = 1 AND email LIKE $1 ESCAPE '\\' ORDER BY id DESC LIMIT $2";
    let by_user = "SELECT id FROM events WHERE 1 = 1 AND user_id = $1 ORDER BY id DESC LIMIT $2";
    let url = app.db.url.expose().to_owned();
    let plans: Vec<String> = if app.db.is_postgres() {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        // With a handful of rows a sequential scan is cheapest; forbid it to see whether
        // an index can serve the statement at all.
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut c)
            .await
            .unwrap();
        let mut out = vec![];
        for (sql, arg) in [(search, "gra%"), (by_user, "user_x")] {
            let rows: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN {sql}"))
                .bind(arg)
                .bind(26i64)
                .fetch_all(&mut c)
                .await
                .unwrap();
            out.push(rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n"));
        }
        out
    } else {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{url}"))
            .await
            .unwrap();
        let mut out = vec![];
        for (sql, arg) in [(search, "gra%"), (by_user, "user_x")] {
            let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!(
                "EXPLAIN QUERY PLAN {}",
                sql.replace("$1", "?1").replace("$2", "?2")
            ))
            .bind(arg)
            .bind(26i64)
            .fetch_all(&mut c)
            .await
            .unwrap();
            out.push(rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n"));
        }
        out
    };
    assert!(plans[0].contains("users_by_email_prefix"), "{}", plans[0]);
    assert!(plans[1].contains("events_by_user"), "{}", plans[1]);
}

on_both_backends!(user_search_and_the_per_user_event_filter_use_indexes);

async fn five_wrong_codes_end_the_sign_in_and_the_factor_failure_limit_applies(app: TestApp) {
    add_admin(&app, "ada@example.com").await;
    let b = Browser::new(&app);
    let secret = enrol(&app, &b, "ada@example.com").await;
    app.clock.advance_millis(30_000);
    let b = Browser::new(&app);
    password_step(&b, "ada@example.com", PW).await;
    let csrf = b.token("/dashboard/login/code").await;
    for _ in 0..5 {
        let (s, html, _) = b
            .post(
                "/dashboard/login/code",
                &[("csrf", &csrf), ("code", "000000")],
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("<h1>Enter your code</h1>"));
    }
    // The challenge has had its 5 codes: even the right one now ends the pending sign-in.
    let (s, html, _) = b
        .post(
            "/dashboard/login/code",
            &[("csrf", &csrf), ("code", &app.totp_code(&secret, 0))],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("<h1>Sign in to the dashboard</h1>") && html.contains("Too many codes"),
        "{html}"
    );
    assert_eq!(
        b.get("/dashboard/login/code").await.0,
        StatusCode::SEE_OTHER
    );
    // Five more failures on a new sign-in reach the factor's limit (10 per 15 minutes):
    // the right code is refused with a 429 page.
    password_step(&b, "ada@example.com", PW).await;
    let csrf = b.token("/dashboard/login/code").await;
    for _ in 0..5 {
        b.post(
            "/dashboard/login/code",
            &[("csrf", &csrf), ("code", "000000")],
        )
        .await;
    }
    password_step(&b, "ada@example.com", PW).await;
    let csrf = b.token("/dashboard/login/code").await;
    let (s, html, _) = b
        .post(
            "/dashboard/login/code",
            &[("csrf", &csrf), ("code", &app.totp_code(&secret, 0))],
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{html}");
    assert!(b.get("/dashboard/users").await.0 == StatusCode::SEE_OTHER);
}

on_both_backends!(five_wrong_codes_end_the_sign_in_and_the_factor_failure_limit_applies);

/// Rows matching `sql` (a `SELECT COUNT(*)`), read straight from the test database.
async fn count(app: &TestApp, sql: &str) -> i64 {
    use sqlx::Connection;
    let url = app.db.url.expose().to_owned();
    if app.db.is_postgres() {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{url}"))
            .await
            .unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    }
}

async fn abandoned_enrolments_and_expired_sessions_are_cleaned_up_at_the_next_sign_in(
    app: TestApp,
) {
    add_admin(&app, "ada@example.com").await;
    let b = Browser::new(&app);
    // Abandoned enrolments, each left to expire: every new sign-in removes the expired
    // one's unconfirmed factor (without the purge there would be one more each time).
    let unconfirmed = "SELECT COUNT(*) FROM auth_factors WHERE user_id IS NULL";
    for _ in 0..3 {
        password_step(&b, "ada@example.com", PW).await;
        assert_eq!(count(&app, unconfirmed).await, 1);
        app.clock.advance_millis(31 * 60 * 1000);
    }
    let secret = enrol(&app, &b, "ada@example.com").await;
    assert_eq!(
        count(&app, unconfirmed).await,
        1,
        "only the confirmed factor is left"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM admin_sessions").await, 1);
    // The confirmed factor survives its own expired sessions.
    app.clock.advance_millis(13 * 60 * 60 * 1000);
    password_step(&b, "ada@example.com", PW).await;
    let csrf = b.token("/dashboard/login/code").await;
    let (s, _, _) = b
        .post(
            "/dashboard/login/code",
            &[("csrf", &csrf), ("code", &app.totp_code(&secret, 0))],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(count(&app, unconfirmed).await, 1);
}

on_both_backends!(abandoned_enrolments_and_expired_sessions_are_cleaned_up_at_the_next_sign_in);

/// Posts the current code for `secret` on the browser's code page.
async fn code_step(
    app: &TestApp,
    br: &Browser<'_>,
    secret: &str,
) -> (StatusCode, String, Option<String>) {
    let csrf = br.token("/dashboard/login/code").await;
    let code = app.totp_code(secret, 0);
    br.post("/dashboard/login/code", &[("csrf", &csrf), ("code", &code)])
        .await
}

async fn of_two_enrolments_in_parallel_only_the_first_confirmed_counts(app: TestApp) {
    add_admin(&app, "ada@example.com").await;
    let (a, b) = (Browser::new(&app), Browser::new(&app));
    let mut secrets = vec![];
    for br in [&a, &b] {
        password_step(br, "ada@example.com", PW).await;
        let (_, html, _) = br.get("/dashboard/login/code").await;
        secrets.push(between(&html, "aria-label=\"Secret key\">", "<").replace(' ', ""));
    }
    let (s, _, loc) = code_step(&app, &a, &secrets[0]).await;
    assert_eq!(
        (s, loc.as_deref()),
        (StatusCode::SEE_OTHER, Some("/dashboard/users"))
    );
    let (s, html, _) = code_step(&app, &b, &secrets[1]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{html}");
    assert_eq!(b.get("/dashboard/users").await.0, StatusCode::SEE_OTHER);
    // The first secret is the admin's: the next sign-in takes its code.
    app.clock.advance_millis(30_000);
    let c = Browser::new(&app);
    password_step(&c, "ada@example.com", PW).await;
    let (s, _, _) = code_step(&app, &c, &secrets[0]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
}

on_both_backends!(of_two_enrolments_in_parallel_only_the_first_confirmed_counts);
