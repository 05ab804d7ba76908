//! The hosted sign-in pages over HTTP, as a browser without JavaScript uses them: refusals
//! that never redirect, the password, code and enrolment steps, the browser session, logout.

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::authkit::{auth, claims, CALLBACK, CHALLENGE, VERIFIER};
use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    bad_authorization_requests_get_an_error_page_and_never_a_redirect,
    a_password_user_signs_in_and_state_comes_back_byte_for_byte,
    a_tampered_redirect_in_the_form_is_refused,
    unknown_email_and_wrong_password_read_the_same_and_are_throttled,
    a_form_without_its_csrf_token_changes_nothing,
    a_totp_user_is_asked_for_a_code_and_its_limits_hold,
    required_mfa_enrols_a_user_and_the_factor_exists_only_after_a_right_code,
    a_signed_in_browser_gets_a_code_at_once_unless_prompt_is_login,
    logout_ends_both_sessions_and_returns_only_to_allowed_urls,
    sign_up_is_off_by_default_and_creates_users_when_on,
    parallel_submissions_of_one_enrolment_make_one_factor,
);

/// A browser without JavaScript: keeps cookies, follows nothing by itself.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Mutex<HashMap<String, String>>,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Page {
    fn location(&self) -> Option<String> {
        self.headers
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
    }
    /// The value of the hidden field (or any input) `name`.
    fn field(&self, name: &str) -> String {
        let at = self
            .html
            .find(&format!("name=\"{name}\""))
            .unwrap_or_else(|| panic!("no {name} in {}", self.html));
        let marker = "value=\"";
        let start = self.html[at..].find(marker).unwrap() + at + marker.len();
        let end = self.html[start..].find('"').unwrap() + start;
        unescape(&self.html[start..end])
    }
    /// The application URL of the "Signed in" page.
    fn continue_url(&self) -> String {
        assert_eq!(self.status, StatusCode::OK, "{}", self.html);
        let marker = "http-equiv=\"refresh\" content=\"0;url=";
        let start = self
            .html
            .find(marker)
            .unwrap_or_else(|| panic!("no refresh: {}", self.html))
            + marker.len();
        let end = self.html[start..].find('"').unwrap() + start;
        unescape(&self.html[start..end])
    }
    fn alert(&self) -> String {
        let start = self.html.find("role=\"alert\">").expect("an alert") + 13;
        let end = self.html[start..].find('<').unwrap() + start;
        unescape(&self.html[start..end])
    }
}

/// Submits a code form (`step`) with the page's hidden fields.
async fn submit(b: &Browser, step: &str, page: &Page, code: impl AsRef<str>) -> Page {
    let mut fields = vec![("code", code.as_ref().to_owned())];
    for name in ["csrf", "authz", "pending", "challenge", "sealed"] {
        if page.html.contains(&format!("name=\"{name}\"")) {
            fields.push((name, page.field(name)));
        }
    }
    let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.post(step, &f).await
}

/// Decodes the HTML entities a template engine writes in attributes and text.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').unwrap();
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") => {
                char::from_u32(u32::from_str_radix(&e[2..], 16).unwrap()).unwrap()
            }
            e if e.starts_with('#') => char::from_u32(e[1..].parse().unwrap()).unwrap(),
            e => panic!("unknown entity {e}"),
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
            cookies: Mutex::default(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn has_cookie(&self, name: &str) -> bool {
        self.cookies.lock().unwrap().contains_key(name)
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Page {
        let r = rb
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.lock().unwrap().remove(k);
            } else {
                self.cookies
                    .lock()
                    .unwrap()
                    .insert(k.to_owned(), val.to_owned());
            }
        }
        Page {
            status: r.status(),
            headers: r.headers().clone(),
            html: r.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(self.http.post(format!("{}{path}", self.base)).form(form))
            .await
    }

    /// Submits the password form of a sign-in page.
    async fn sign_in(&self, page: &Page, email: &str, password: &str) -> Page {
        self.post(
            "/user_management/authorize/password",
            &[
                ("csrf", &page.field("csrf")),
                ("authz", &page.field("authz")),
                ("email", email),
                ("password", password),
            ],
        )
        .await
    }
}

fn authorize_path(app: &TestApp, extra: &[(&str, &str)]) -> String {
    let mut q = vec![
        ("client_id", app.client_id.as_str()),
        ("redirect_uri", CALLBACK),
        ("response_type", "code"),
        ("provider", "authkit"),
    ];
    q.extend_from_slice(extra);
    format!(
        "/user_management/authorize?{}",
        serde_urlencoded::to_string(&q).unwrap()
    )
}

async fn allow_callback(app: &TestApp) {
    app.state
        .store
        .add_redirect_uri(CALLBACK, tessera_core::Timestamp(0))
        .await
        .unwrap();
}

/// `(code, state)` of a URL back at the callback.
fn callback_params(url: &str) -> (String, Option<String>) {
    let q = url
        .strip_prefix(&format!("{CALLBACK}?"))
        .unwrap_or_else(|| panic!("not the callback: {url}"));
    let pairs: HashMap<String, String> = serde_urlencoded::from_str(q).unwrap();
    (pairs["code"].clone(), pairs.get("state").cloned())
}

async fn exchange(app: &TestApp, code: &str) -> (StatusCode, Value) {
    auth(
        app,
        json!({ "grant_type": "authorization_code", "client_id": app.client_id, "client_secret": app.key, "code": code }),
    )
    .await
}

async fn bad_authorization_requests_get_an_error_page_and_never_a_redirect(app: TestApp) {
    allow_callback(&app).await;
    let b = Browser::new(&app);
    let cid = app.client_id.clone();
    let with = |changes: &[(&str, Option<&str>)]| {
        let mut q: Vec<(String, String)> = [
            ("client_id", cid.as_str()),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("provider", "authkit"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in changes {
            q.retain(|(qk, _)| qk != k);
            if let Some(v) = v {
                q.push((k.to_string(), v.to_string()));
            }
        }
        format!(
            "/user_management/authorize?{}",
            serde_urlencoded::to_string(&q).unwrap()
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (
            with(&[("client_id", Some("client_01UNKNOWN00000000000000000"))]),
            "client_id",
        ),
        (with(&[("client_id", None)]), "client_id"),
        (
            with(&[("redirect_uri", Some("https://evil.example/callback"))]),
            "allow-list",
        ),
        (
            with(&[(
                "redirect_uri",
                Some("https://app.example.com/callback/../x"),
            )]),
            "allow-list",
        ),
        (
            with(&[(
                "redirect_uri",
                Some("https://app.example.com/callback?next=https://evil.example"),
            )]),
            "allow-list",
        ),
        (
            with(&[(
                "redirect_uri",
                Some("https://app.example.com.evil.example/callback"),
            )]),
            "allow-list",
        ),
        (
            with(&[("redirect_uri", Some("//evil.example/callback"))]),
            "allow-list",
        ),
        (with(&[("redirect_uri", None)]), "redirect_uri"),
        (with(&[("response_type", Some("token"))]), "response_type"),
        (with(&[("provider", Some("GoogleOAuth"))]), "not supported"),
        (
            with(&[("provider", None), ("connection_id", Some("conn_1"))]),
            "not supported",
        ),
        (with(&[("organization_id", Some("org_1"))]), "not supported"),
        (
            with(&[
                ("code_challenge", Some(CHALLENGE)),
                ("code_challenge_method", Some("plain")),
            ]),
            "S256",
        ),
        (
            with(&[
                ("code_challenge", Some("short")),
                ("code_challenge_method", Some("S256")),
            ]),
            "43",
        ),
    ];
    for (path, says) in cases {
        let p = b.get(&path).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{path}: {}", p.html);
        assert_eq!(p.location(), None, "never a redirect: {path}");
        assert!(p.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(
            p.html.contains("<h1>This sign-in link is not valid</h1>"),
            "{}",
            p.html
        );
        assert!(p.html.contains(says), "{path} says {says}: {}", p.html);
        assert!(
            !p.html.contains("evil.example"),
            "the bad URI is not echoed as a link"
        );
    }
}

async fn a_password_user_signs_in_and_state_comes_back_byte_for_byte(app: TestApp) {
    allow_callback(&app).await;
    let uid = app.create_user("page@example.com").await["id"].clone();
    // Like authkit-nextjs's sealed states: long, with `*` and `~`, plus what needs encoding.
    let state = format!("{}*~ &=+%/é?#\"<", "Fe26.2**abc~".repeat(34));
    let b = Browser::new(&app);
    let path = authorize_path(
        &app,
        &[
            ("state", &state),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("screen_hint", "sign-in"),
            ("login_hint", "page@example.com"),
        ],
    );
    let p = b.get(&path).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.html);
    assert_eq!(p.headers["cache-control"], "no-store");
    let csp = p.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(p.html.contains("<h1>Sign in</h1>"));
    assert!(p.html.contains("<label for=\"email\">Email</label>"));
    assert!(p.html.contains("<label for=\"password\">Password</label>"));
    assert!(
        p.html.contains("Tessera Test"),
        "the environment's name is the brand"
    );
    assert!(
        !p.html.contains("<script>") && !p.html.contains("style=\""),
        "no inline script or style"
    );
    assert_eq!(
        p.field("email"),
        "page@example.com",
        "login_hint pre-fills the email"
    );
    let done = b
        .sign_in(&p, "page@example.com", "correct horse battery")
        .await;
    let url = done.continue_url();
    let (code, back) = callback_params(&url);
    assert_eq!(back.as_deref(), Some(state.as_str()), "state byte for byte");
    let set = done
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("tessera_browser_session="))
        .expect("browser session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    let (s, v) = auth(
        &app,
        json!({ "grant_type": "authorization_code", "client_id": app.client_id, "code": code, "code_verifier": VERIFIER }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["id"], uid);
    assert_eq!(v["authentication_method"], "Password");
    assert!(claims(v["access_token"].as_str().unwrap())["sid"].is_string());
}

async fn a_tampered_redirect_in_the_form_is_refused(app: TestApp) {
    allow_callback(&app).await;
    app.create_user("tamper@example.com").await;
    let b = Browser::new(&app);
    let p = b.get(&authorize_path(&app, &[("state", "s1")])).await;
    let evil = p.field("authz").replace("app.example.com", "evil.example");
    let r = b
        .post(
            "/user_management/authorize/password",
            &[
                ("csrf", &p.field("csrf")),
                ("authz", &evil),
                ("email", "tamper@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.html);
    assert!(!r.html.contains("evil.example") && r.location().is_none());
    assert!(!b.has_cookie("tessera_browser_session"), "not signed in");
}

async fn unknown_email_and_wrong_password_read_the_same_and_are_throttled(app: TestApp) {
    allow_callback(&app).await;
    app.create_user("known@example.com").await;
    let b = Browser::new(&app);
    let p = b.get(&authorize_path(&app, &[])).await;
    let wrong = b.sign_in(&p, "known@example.com", "wrong password").await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.html);
    let unknown = b.sign_in(&p, "nobody@example.com", "wrong password").await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong.alert(), "Incorrect email or password.");
    assert_eq!(unknown.alert(), wrong.alert());
    assert_eq!(
        wrong.html.replace("known@example.com", "X"),
        unknown.html.replace("nobody@example.com", "X"),
        "the two pages differ only by the email typed"
    );
    // 10 failures per email (the API's limit): the 11th attempt is refused, right or not.
    for _ in 0..9 {
        b.sign_in(&p, "known@example.com", "wrong password").await;
    }
    let limited = b
        .sign_in(&p, "known@example.com", "correct horse battery")
        .await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.html
    );
    assert!(limited.alert().starts_with("Too many failed attempts"));
}

async fn a_form_without_its_csrf_token_changes_nothing(app: TestApp) {
    allow_callback(&app).await;
    let uid = app.create_user("csrf@example.com").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = Browser::new(&app);
    let p = b.get(&authorize_path(&app, &[])).await;
    for token in ["", "forged"] {
        let r = b
            .post(
                "/user_management/authorize/password",
                &[
                    ("csrf", token),
                    ("authz", &p.field("authz")),
                    ("email", "csrf@example.com"),
                    ("password", "correct horse battery"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    let (_, ev) = app
        .get("/events?events=authentication.password_succeeded")
        .await;
    assert_eq!(
        ev["data"].as_array().unwrap().len(),
        0,
        "the password was never checked"
    );
    let (_, list) = app
        .get(&format!("/user_management/users/{uid}/sessions"))
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

async fn a_totp_user_is_asked_for_a_code_and_its_limits_hold(app: TestApp) {
    allow_callback(&app).await;
    let uid = app.create_user("code@example.com").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let enrolled = app.enroll_totp(&uid, json!({ "type": "totp" })).await;
    let secret = enrolled["authentication_factor"]["totp"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = Browser::new(&app);
    let p = b.get(&authorize_path(&app, &[("state", "xyz")])).await;
    let code_page = b
        .sign_in(&p, "code@example.com", "correct horse battery")
        .await;
    assert_eq!(code_page.status, StatusCode::OK, "{}", code_page.html);
    assert!(code_page.html.contains("<label for=\"code\">Code</label>"));
    assert!(
        !b.has_cookie("tessera_browser_session"),
        "not signed in before the code"
    );
    let step = "/user_management/authorize/totp";
    let wrong = submit(&b, step, &code_page, "000000").await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong.alert().starts_with("That code didn't work"),
        "{}",
        wrong.html
    );
    let right = app.totp_code(&secret, 0);
    let spaced = format!("{} {}", &right[..3], &right[3..]);
    let done = submit(&b, step, &wrong, spaced).await;
    let (code, state) = callback_params(&done.continue_url());
    assert_eq!(state.as_deref(), Some("xyz"));
    let (s, v) = exchange(&app, &code).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // The challenge's 5 evaluated codes: the right one after them is refused too.
    b.cookies.lock().unwrap().clear();
    app.clock.advance_millis(30_000);
    let p = b.get(&authorize_path(&app, &[])).await;
    let mut page = b
        .sign_in(&p, "code@example.com", "correct horse battery")
        .await;
    for _ in 0..5 {
        page = submit(&b, step, &page, "000000").await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
    }
    let refused = submit(&b, step, &page, app.totp_code(&secret, 0)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.html);
    assert!(
        refused.html.contains("Too many attempts"),
        "{}",
        refused.html
    );
    assert!(!refused.html.contains("http-equiv=\"refresh\""));

    // The pages' steps are counted as sign-ins (each password step led to a code page).
    let metrics = crate::metrics::Scrape::of_state(&app.state);
    let sign_ins = |grant: &str, result: &str| {
        metrics.count(
            "tessera_sign_ins_total",
            &[("grant", grant), ("result", result)],
        )
    };
    assert_eq!(sign_ins("hosted_password", "mfa_required"), 2.0);
    assert_eq!(sign_ins("hosted_totp", "failed"), 7.0);
    assert_eq!(sign_ins("hosted_totp", "success"), 1.0);
    assert_eq!(sign_ins("authorization_code", "success"), 1.0);
}

async fn required_mfa_enrols_a_user_and_the_factor_exists_only_after_a_right_code(app: TestApp) {
    allow_callback(&app).await;
    app.state.store.set_mfa_required(true).await.unwrap();
    let uid = app.create_user("enrol@example.com").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = Browser::new(&app);
    let p = b.get(&authorize_path(&app, &[("state", "e1")])).await;
    let enrol = b
        .sign_in(&p, "enrol@example.com", "correct horse battery")
        .await;
    assert_eq!(enrol.status, StatusCode::OK, "{}", enrol.html);
    assert!(enrol
        .html
        .contains("<img class=\"qr\" src=\"data:image/png;base64,"));
    let start = enrol.html.find("id=\"totp-secret\"").unwrap();
    let start = enrol.html[start..].find('>').unwrap() + start + 1;
    let end = enrol.html[start..].find('<').unwrap() + start;
    let secret: String = enrol.html[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert_eq!(secret.len(), 32, "the secret as text: {secret}");
    let qr = enrol
        .html
        .split("src=\"")
        .nth(2)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(crate::helpers::decode_qr_data_uri(qr).contains(&format!("secret={secret}")));
    let factors = || async {
        app.get(&format!("/user_management/users/{uid}/auth_factors"))
            .await
            .1["data"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(factors().await, 0, "no factor before a right code");
    let step = "/user_management/authorize/enroll";
    let wrong = submit(&b, step, &enrol, "123456").await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(wrong.alert().starts_with("That code didn't work"));
    assert_eq!(factors().await, 0);
    let done = submit(&b, step, &wrong, app.totp_code(&secret, 0)).await;
    let (code, _) = callback_params(&done.continue_url());
    assert_eq!(factors().await, 1, "the factor exists now");
    let (s, v) = exchange(&app, &code).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The enrolment code was used: the factor refuses it again.
    let (_, step) = auth(
        &app,
        json!({ "grant_type": "password", "client_id": app.client_id, "client_secret": app.key, "email": "enrol@example.com", "password": "correct horse battery" }),
    )
    .await;
    assert_eq!(step["code"], "mfa_challenge", "{step}");
}

async fn a_signed_in_browser_gets_a_code_at_once_unless_prompt_is_login(app: TestApp) {
    allow_callback(&app).await;
    app.create_user("sso@example.com").await;
    let b = Browser::new(&app);
    let p = b.get(&authorize_path(&app, &[("state", "one")])).await;
    let first = b
        .sign_in(&p, "sso@example.com", "correct horse battery")
        .await;
    let (code1, _) = callback_params(&first.continue_url());
    let again = b.get(&authorize_path(&app, &[("state", "two")])).await;
    assert_eq!(again.status, StatusCode::FOUND, "{}", again.html);
    let (code2, state) = callback_params(&again.location().unwrap());
    assert_eq!(state.as_deref(), Some("two"));
    assert_ne!(code1, code2);
    assert_eq!(exchange(&app, &code1).await.0, StatusCode::OK);
    assert_eq!(exchange(&app, &code2).await.0, StatusCode::OK);
    let login = b.get(&authorize_path(&app, &[("prompt", "login")])).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.html.contains("<h1>Sign in</h1>"));
    // Another browser is not signed in.
    let other = Browser::new(&app);
    assert_eq!(
        other.get(&authorize_path(&app, &[])).await.status,
        StatusCode::OK
    );
    // The browser session ends with the password.
    let uid = app
        .get("/user_management/users?email=sso@example.com")
        .await
        .1["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.put(
        &format!("/user_management/users/{uid}"),
        json!({ "password": "another fine passphrase" }),
    )
    .await;
    assert_eq!(
        b.get(&authorize_path(&app, &[])).await.status,
        StatusCode::OK
    );
}

async fn logout_ends_both_sessions_and_returns_only_to_allowed_urls(app: TestApp) {
    allow_callback(&app).await;
    app.state
        .store
        .add_redirect_uri("https://app.example.com/bye", tessera_core::Timestamp(0))
        .await
        .unwrap();
    let uid = app.create_user("bye@example.com").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = Browser::new(&app);
    let p = b.get(&authorize_path(&app, &[])).await;
    let done = b
        .sign_in(&p, "bye@example.com", "correct horse battery")
        .await;
    let (code, _) = callback_params(&done.continue_url());
    let (_, tokens) = exchange(&app, &code).await;
    let sid = claims(tokens["access_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = b
        .get(&format!(
            "/user_management/sessions/logout?{}",
            serde_urlencoded::to_string([
                ("session_id", sid.as_str()),
                ("return_to", "https://app.example.com/bye")
            ])
            .unwrap()
        ))
        .await;
    assert_eq!(out.status, StatusCode::FOUND);
    assert_eq!(
        out.location().as_deref(),
        Some("https://app.example.com/bye")
    );
    assert!(
        !b.has_cookie("tessera_browser_session"),
        "the cookie is cleared"
    );
    let (_, list) = app
        .get(&format!("/user_management/users/{uid}/sessions"))
        .await;
    assert_eq!(list["data"][0]["status"], "revoked");
    let (s, _) = auth(
        &app,
        json!({ "grant_type": "refresh_token", "client_id": app.client_id, "client_secret": app.key, "refresh_token": tokens["refresh_token"] }),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // A second sign-in; logging out with a return_to that is not allowed shows a page.
    let p = b.get(&authorize_path(&app, &[])).await;
    assert_eq!(
        p.status,
        StatusCode::OK,
        "the browser session ended: the sign-in page again"
    );
    let done = b
        .sign_in(&p, "bye@example.com", "correct horse battery")
        .await;
    let (code, _) = callback_params(&done.continue_url());
    let (_, tokens) = exchange(&app, &code).await;
    let sid = claims(tokens["access_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    for bad in [
        "https://evil.example/",
        "https://app.example.com/bye/x",
        "javascript:alert(1)",
    ] {
        let q = serde_urlencoded::to_string([("session_id", sid.as_str()), ("return_to", bad)])
            .unwrap();
        let out = b
            .get(&format!("/user_management/sessions/logout?{q}"))
            .await;
        assert_eq!(out.status, StatusCode::OK, "{bad}");
        assert_eq!(out.location(), None, "{bad}");
        assert!(out.html.contains("<h1>You are signed out</h1>"));
    }
    let p = b.get(&authorize_path(&app, &[])).await;
    assert_eq!(p.status, StatusCode::OK, "signed out here too");
    let out = b.get("/user_management/sessions/logout").await;
    assert_eq!(out.status, StatusCode::OK, "without parameters: the page");
}

async fn sign_up_is_off_by_default_and_creates_users_when_on(app: TestApp) {
    allow_callback(&app).await;
    let b = Browser::new(&app);
    let p = b
        .get(&authorize_path(&app, &[("screen_hint", "sign-up")]))
        .await;
    assert!(p.html.contains("<h1>Sign in</h1>") && !p.html.contains("Create one"));
    let r = b
        .post(
            "/user_management/authorize/sign-up",
            &[
                ("csrf", &p.field("csrf")),
                ("authz", &p.field("authz")),
                ("email", "new@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/user_management/users?email=new@example.com")
            .await
            .1["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    app.state.store.set_sign_up_enabled(true).await.unwrap();
    let p = b
        .get(&authorize_path(&app, &[("screen_hint", "sign-up")]))
        .await;
    assert!(p.html.contains("<h1>Create an account</h1>"), "{}", p.html);
    let weak = b
        .post(
            "/user_management/authorize/sign-up",
            &[
                ("csrf", &p.field("csrf")),
                ("authz", &p.field("authz")),
                ("email", "new@example.com"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    let done = b
        .post(
            "/user_management/authorize/sign-up",
            &[
                ("csrf", &p.field("csrf")),
                ("authz", &p.field("authz")),
                ("email", "new@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    let (code, _) = callback_params(&done.continue_url());
    let (s, v) = exchange(&app, &code).await;
    assert_eq!(
        (s, v["user"]["email"].clone()),
        (StatusCode::OK, json!("new@example.com"))
    );
}

async fn parallel_submissions_of_one_enrolment_make_one_factor(app: TestApp) {
    allow_callback(&app).await;
    app.state.store.set_mfa_required(true).await.unwrap();
    let uid = app.create_user("twice@example.com").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = std::sync::Arc::new(Browser::new(&app));
    let p = b.get(&authorize_path(&app, &[])).await;
    let enrol = b
        .sign_in(&p, "twice@example.com", "correct horse battery")
        .await;
    let start = enrol.html.find("id=\"totp-secret\"").unwrap();
    let start = enrol.html[start..].find('>').unwrap() + start + 1;
    let end = enrol.html[start..].find('<').unwrap() + start;
    let secret: String = enrol.html[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let form: Vec<(String, String)> = ["csrf", "authz", "pending", "sealed"]
        .iter()
        .map(|n| (n.to_string(), enrol.field(n)))
        .chain([("code".to_owned(), app.totp_code(&secret, 0))])
        .collect();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (b, form) = (b.clone(), form.clone());
            tokio::spawn(async move {
                let f: Vec<(&str, &str)> =
                    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                b.post("/user_management/authorize/enroll", &f).await.status
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "one submission enrols");
    let (_, factors) = app
        .get(&format!("/user_management/users/{uid}/auth_factors"))
        .await;
    assert_eq!(factors["data"].as_array().unwrap().len(), 1, "{factors}");
}
