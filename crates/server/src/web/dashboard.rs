//! The admin dashboard's pages (`/dashboard/...`): sign-in with mandatory TOTP, the
//! Authentication settings, users, API keys, events and signing keys. Handlers are thin:
//! extract (session, CSRF-checked form), call one service, render.

use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tessera_core::{Error, FactorKind, Timestamp};
use tessera_store::{ListParams, Order, Page};

use super::cookie;
use super::csrf::CsrfToken;
use super::form::Form;
use super::page::{describe, render, render_status, Layout, TotpSetup, WebError};
use crate::extract::Meta;
use crate::services::admins::{self, AdminSession, CodeStep};
use crate::services::dashboard as svc;
use crate::AppState;

/// The dashboard session cookie (a random token; the server stores its SHA-256).
pub const SESSION_COOKIE: &str = "tessera_admin";
const PAGE_SIZE: i64 = 25;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(home))
        .route("/dashboard/login", get(login_page).post(login))
        .route("/dashboard/login/code", get(code_page).post(code))
        .route("/dashboard/logout", post(logout))
        .route(
            "/dashboard/authentication",
            get(authentication_page).post(save_authentication),
        )
        .route("/dashboard/users", get(users_page).post(create_user))
        .route("/dashboard/users/new", get(new_user_page))
        .route("/dashboard/users/{id}", get(user_page))
        .route(
            "/dashboard/users/{id}/reset-mfa",
            get(reset_mfa_confirm).post(reset_mfa),
        )
        .route(
            "/dashboard/users/{id}/delete",
            get(delete_user_confirm).post(delete_user),
        )
        .route(
            "/dashboard/api-keys",
            get(api_keys_page).post(create_api_key),
        )
        .route(
            "/dashboard/api-keys/{id}/revoke",
            get(revoke_confirm).post(revoke_api_key),
        )
        .route("/dashboard/events", get(events_page))
        .route("/dashboard/signing-keys", get(signing_keys_page))
        .route(
            "/dashboard/signing-keys/rotate",
            get(rotate_confirm).post(rotate),
        )
        // A mistyped dashboard address is a page, not the API's JSON 404.
        .route("/dashboard/{*rest}", get(|| async { WebError::NotFound }))
}

// ---- extractors ----------------------------------------------------------------------------

/// A signed-in admin. Signed out (no cookie, expired, ended, or the admin removed): a
/// redirect to the login page, and the handler does not run.
pub struct SignedIn {
    pub s: AdminSession,
    pub token: String,
}

/// An admin between password and code.
pub struct Pending {
    pub s: AdminSession,
    pub token: String,
}

async fn session_in(
    parts: &Parts,
    state: &AppState,
    stage: &str,
) -> Result<(AdminSession, String), Response> {
    let to_login = || Redirect::to("/dashboard/login").into_response();
    let Some(token) = cookie::get(&parts.headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
        return Err(to_login());
    };
    match admins::session(state, token, stage).await {
        Ok(Some(s)) => Ok((s, token.to_owned())),
        Ok(None) => Err(to_login()),
        Err(e) => Err(WebError::from(e).into_response()),
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let (s, token) = session_in(parts, state, "active").await?;
        Ok(SignedIn { s, token })
    }
}

impl FromRequestParts<AppState> for Pending {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let (s, token) = session_in(parts, state, "mfa").await?;
        Ok(Pending { s, token })
    }
}

// ---- helpers ---------------------------------------------------------------------------

/// "2026-11-29 12:00:05" (UTC; the column header says so).
pub fn fmt_time(t: Timestamp) -> String {
    let t = t.to_rfc3339_millis();
    t.get(..19).unwrap_or(&t).replace('T', " ")
}

async fn env_name(state: &AppState) -> Result<String, Error> {
    admins::totp_issuer(state).await
}

fn with_cookie(mut resp: Response, value: HeaderValue) -> Response {
    resp.headers_mut().append(header::SET_COOKIE, value);
    resp
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The dashboard shell's data: which section is current, who is signed in.
pub struct Shell {
    pub section: &'static str,
    pub admin_email: String,
}

fn shell(section: &'static str, s: &SignedIn) -> Shell {
    Shell {
        section,
        admin_email: s.s.admin.email.clone(),
    }
}

async fn layout(state: &AppState, title: &str, csrf: &CsrfToken) -> Result<Layout, Error> {
    Ok(Layout::new(title, env_name(state).await?, csrf))
}

/// Links to the neighbouring pages of a list, keeping its filters.
pub struct Pager {
    pub newer: Option<String>,
    pub older: Option<String>,
}

fn pager<T>(path: &str, filters: &[(&str, &str)], page: &Page<T>) -> Pager {
    let link = |key: &str, cursor: &Option<String>| {
        cursor.as_ref().map(|c| {
            let mut q: Vec<(&str, &str)> = filters
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .copied()
                .collect();
            q.push((key, c));
            format!(
                "{path}?{}",
                serde_urlencoded::to_string(&q).unwrap_or_default()
            )
        })
    };
    Pager {
        newer: link("before", &page.before),
        older: link("after", &page.after),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Cursor {
    pub before: Option<String>,
    pub after: Option<String>,
}

fn list_params(c: &Cursor) -> ListParams {
    ListParams {
        limit: PAGE_SIZE,
        before: c.before.clone().filter(|s| !s.is_empty()),
        after: c.after.clone().filter(|s| !s.is_empty()),
        order: Order::Desc,
    }
}

// ---- sign-in -----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct LoginPage {
    l: Layout,
    email: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/enroll.html")]
struct EnrollPage {
    l: Layout,
    setup: TotpSetup,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/code.html")]
struct CodePage {
    l: Layout,
    error: Option<String>,
}

async fn home(s: Result<SignedIn, Response>) -> Response {
    match s {
        Ok(_) => see_other("/dashboard/users"),
        Err(r) => r,
    }
}

async fn login_page(State(state): State<AppState>, csrf: CsrfToken) -> Result<Response, WebError> {
    Ok(render(&LoginPage {
        l: layout(&state, "Sign in", &csrf).await?,
        email: String::new(),
        error: None,
    }))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

async fn login(
    State(state): State<AppState>,
    csrf: CsrfToken,
    Meta(meta): Meta,
    Form(f): Form<LoginForm>,
) -> Result<Response, WebError> {
    match admins::sign_in_password(&state, &f.email, &f.password, &meta).await {
        Ok(step) => {
            let secure = cookie::is_secure(&state.config);
            Ok(with_cookie(
                see_other("/dashboard/login/code"),
                cookie::set(SESSION_COOKIE, &step.token, None, secure),
            ))
        }
        Err(e @ (Error::AuthenticationFailed { .. } | Error::RateLimited { .. })) => {
            let (status, _, message) = describe(&e);
            let message = match e {
                Error::AuthenticationFailed { message, .. } => message,
                _ => message,
            };
            let mut r = render_status(
                if status == StatusCode::TOO_MANY_REQUESTS {
                    status
                } else {
                    StatusCode::OK
                },
                &LoginPage {
                    l: layout(&state, "Sign in", &csrf).await?,
                    email: f.email.chars().take(320).collect(),
                    error: Some(message),
                },
            );
            if status == StatusCode::TOO_MANY_REQUESTS {
                *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            }
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

async fn code_page(
    State(state): State<AppState>,
    csrf: CsrfToken,
    p: Pending,
) -> Result<Response, WebError> {
    code_form(&state, &csrf, &p, None, StatusCode::OK).await
}

async fn code_form(
    state: &AppState,
    csrf: &CsrfToken,
    p: &Pending,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    if admins::is_enrolling(&p.s) {
        let setup = admins::enrolment_setup(state, &p.s).await?;
        Ok(render_status(
            status,
            &EnrollPage {
                l: layout(state, "Set up two-factor authentication", csrf).await?,
                setup,
                error,
            },
        ))
    } else {
        Ok(render_status(
            status,
            &CodePage {
                l: layout(state, "Enter your code", csrf).await?,
                error,
            },
        ))
    }
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
}

async fn code(
    State(state): State<AppState>,
    csrf: CsrfToken,
    Meta(meta): Meta,
    p: Pending,
    Form(f): Form<CodeForm>,
) -> Result<Response, WebError> {
    match admins::sign_in_code(&state, &p.s, &p.token, &f.code, &meta).await {
        Ok(CodeStep::SignedIn(token)) => {
            let secure = cookie::is_secure(&state.config);
            Ok(with_cookie(
                see_other("/dashboard/users"),
                cookie::set(SESSION_COOKIE, &token, None, secure),
            ))
        }
        Ok(CodeStep::Wrong) => {
            code_form(
                &state,
                &csrf,
                &p,
                Some(
                    "That code didn't work. Check the time on your phone and try the newest code."
                        .into(),
                ),
                StatusCode::OK,
            )
            .await
        }
        Err(e @ Error::RateLimited { .. }) => {
            let (status, _, message) = describe(&e);
            code_form(&state, &csrf, &p, Some(message), status).await
        }
        Err(e) if admins::refusal_is_restart(&e) => {
            let secure = cookie::is_secure(&state.config);
            let r = render(&LoginPage {
                l: layout(&state, "Sign in", &csrf).await?,
                email: p.s.admin.email.clone(),
                error: Some("Too many codes were tried, or the sign-in took too long. Please sign in again.".into()),
            });
            Ok(with_cookie(r, cookie::clear(SESSION_COOKIE, secure)))
        }
        Err(e) => Err(e.into()),
    }
}

async fn logout(
    State(state): State<AppState>,
    s: SignedIn,
    Form(_): Form<Empty>,
) -> Result<Response, WebError> {
    admins::sign_out(&state, &s.s, &s.token).await?;
    let secure = cookie::is_secure(&state.config);
    Ok(with_cookie(
        see_other("/dashboard/login"),
        cookie::clear(SESSION_COOKIE, secure),
    ))
}

/// A form with nothing but its CSRF token.
#[derive(Deserialize)]
pub struct Empty {}

// ---- authentication ------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "dashboard/authentication.html")]
struct AuthenticationPage {
    l: Layout,
    d: Shell,
    mfa_required: bool,
    totp_issuer: String,
    saved: bool,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Saved {
    saved: Option<String>,
}

async fn authentication_page(
    State(state): State<AppState>,
    csrf: CsrfToken,
    s: SignedIn,
    Query(q): Query<Saved>,
) -> Result<Response, WebError> {
    let env = state.store.find_environment().await?;
    Ok(render(&AuthenticationPage {
        l: layout(&state, "Authentication", &csrf).await?,
        d: shell("authentication", &s),
        mfa_required: env.is_some_and(|e| e.mfa_required),
        totp_issuer: env_name(&state).await?,
        saved: q.saved.is_some(),
        error: None,
    }))
}

#[derive(Deserialize)]
struct AuthenticationForm {
    mfa_required: Option<String>,
    #[serde(default)]
    totp_issuer: String,
}

async fn save_authentication(
    State(state): State<AppState>,
    csrf: CsrfToken,
    s: SignedIn,
    Form(f): Form<AuthenticationForm>,
) -> Result<Response, WebError> {
    let on = f.mfa_required.is_some();
    match svc::save_authentication(&state, &s.s.admin, on, &f.totp_issuer).await {
        Ok(()) => Ok(see_other("/dashboard/authentication?saved=1")),
        // Bad input: the page comes back with what was chosen and typed; nothing was saved.
        Err(e @ Error::Validation(_)) => {
            let (status, _, message) = describe(&e);
            Ok(render_status(
                status,
                &AuthenticationPage {
                    l: layout(&state, "Authentication", &csrf).await?,
                    d: shell("authentication", &s),
                    mfa_required: on,
                    totp_issuer: f.totp_issuer.chars().take(1000).collect(),
                    saved: false,
                    error: Some(message),
                },
            ))
        }
        Err(e) => Err(e.into()),
    }
}

// ---- users -----------------------------------------------------------------------------

pub struct UserItem {
    pub id: String,
    pub email: String,
    pub name: String,
    pub created: String,
    /// Number of authentication factors.
    pub factors: i64,
}

#[derive(Template)]
#[template(path = "dashboard/users.html")]
struct UsersPage {
    l: Layout,
    d: Shell,
    query: String,
    users: Vec<UserItem>,
    pager: Pager,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UsersQuery {
    email: String,
    before: Option<String>,
    after: Option<String>,
}

fn display_name(u: &tessera_store::UserRow) -> String {
    match (&u.first_name, &u.last_name) {
        (Some(f), Some(l)) => format!("{f} {l}"),
        (Some(f), None) => f.clone(),
        (None, Some(l)) => l.clone(),
        (None, None) => u.name.clone().unwrap_or_default(),
    }
}

async fn users_page(
    State(state): State<AppState>,
    csrf: CsrfToken,
    s: SignedIn,
    Query(q): Query<UsersQuery>,
) -> Result<Response, WebError> {
    let query = q.email.trim().chars().take(320).collect::<String>();
    let params = list_params(&Cursor {
        before: q.before,
        after: q.after,
    });
    let page = state
        .store
        .search_users(Some(query.as_str()).filter(|s| !s.is_empty()), &params)
        .await?;
    let ids: Vec<String> = page.data.iter().map(|u| u.id.clone()).collect();
    let counts = state.store.count_user_factors(&ids).await?;
    let users = page
        .data
        .iter()
        .map(|u| UserItem {
            id: u.id.clone(),
            email: u.email.clone(),
            name: display_name(u),
            created: fmt_time(u.created_at),
            factors: counts.get(&u.id).copied().unwrap_or(0),
        })
        .collect();
    Ok(render(&UsersPage {
        l: layout(&state, "Users", &csrf).await?,
        d: shell("users", &s),
        pager: pager("/dashboard/users", &[("email", &query)], &page),
        query,
        users,
    }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NewUserForm {
    email: String,
    first_name: String,
    last_name: String,
    password: String,
}

#[derive(Template)]
#[template(path = "dashboard/user_new.html")]
struct NewUserPage {
    l: Layout,
    d: Shell,
    form: NewUserForm,
    error: Option<String>,
}

async fn new_user_page(
    State(state): State<AppState>,
    csrf: CsrfToken,
    s: SignedIn,
) -> Result<Response, WebError> {
    Ok(render(&NewUserPage {
        l: layout(&state, "Create user", &csrf).await?,
        d: shell("users", &s),
        form: NewUserForm::default(),
        error: None,
    }))
}

async fn create_user(
    State(state): State<AppState>,
    csrf: CsrfToken,
    s: SignedIn,
    Form(f): Form<NewUserForm>,
) -> Result<Response, WebError> {
    let opt = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
    let req = crate::services::users::CreateUserRequest {
        email: Some(f.email.trim().to_owned()),
        password: Some(f.password.clone()).filter(|p| !p.is_empty()),
        first_name: opt(&f.first_name),
        last_name: opt(&f.last_name),
        ..Default::default()
    };
    match svc::create_user(&state, &s.s.admin, req).await {
        Ok(u) => Ok(see_other(&format!("/dashboard/users/{}", u.id))),
        Err(
            e @ (Error::Validation(_)
            | Error::EmailNotAvailable(_)
            | Error::PasswordStrength(_)
            | Error::ExternalIdAlreadyUsed(_)),
        ) => {
            // Bad input: the form comes back with what was typed (but never the password).
            let (status, _, message) = describe(&e);
            Ok(render_status(
                status,
                &NewUserPage {
                    l: layout(&state, "Create user", &csrf).await?,
                    d: shell("users", &s),
                    form: NewUserForm {
                        password: String::new(),
                        ..f
                    },
                    error: Some(message),
                },
            ))
        }
        Err(e) => Err(e.into()),
    }
}

pub struct UserView {
    pub id: String,
    pub email: String,
    pub email_verified: bool,
    pub first_name: String,
    pub last_name: String,
    pub external_id: String,
    pub has_password: bool,
    pub last_sign_in: String,
    pub created: String,
}

pub struct FactorItem {
    pub id: String,
    pub kind: String,
    pub label: String,
    pub created: String,
}

pub struct EventItem {
    pub event: String,
    pub summary: String,
    pub created: String,
}

fn event_item(e: &tessera_store::EventRow) -> EventItem {
    let data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
    let mut parts = vec![];
    for key in [
        "email",
        "user_id",
        "admin_email",
        "name",
        "kid",
        "status",
        "ip_address",
        "id",
    ] {
        if let Some(v) = data.get(key).and_then(|v| v.as_str()) {
            parts.push(format!("{key}: {v}"));
        }
    }
    if let Some(v) = data.get("mfa_required").and_then(|v| v.as_bool()) {
        parts.push(format!("mfa_required: {v}"));
    }
    if let Some(v) = data.get("factors_deleted").and_then(|v| v.as_i64()) {
        parts.push(format!("factors_deleted: {v}"));
    }
    EventItem {
        event: e.event.clone(),
        summary: parts.join(" · "),
        created: fmt_time(e.created_at),
    }
}

#[derive(Template)]
#[template(path = "dashboard/user.html")]
struct UserPage {
    l: Layout,
    d: Shell,
    user: UserView,
    factors: Vec<FactorItem>,
    events: Vec<EventItem>,
    mfa_required: bool,
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Notice {
    reset: Option<usize>,
}

async fn user_page(
    State(state): State<AppState>,
    csrf: CsrfToken,
    s: SignedIn,
    Path(id): Path<String>,
    Query(n): Query<Notice>,
) -> Result<Response, WebError> {
    let u = crate::services::users::get(&state, &id).await?;
    let factors = crate::services::factors::list_user_factors(
        &state,
        &u.id,
        &ListParams {
            limit: 100,
            order: Order::Asc,
            ..Default::default()
        },
    )
    .await?;
    let events = state
        .store
        .list_events_by(
            None,
            Some(&u.id),
            &ListParams {
                limit: 10,
                order: Order::Desc,
                ..Default::default()
            },
        )
        .await?;
    let env = state.store.find_environment().await?;
    Ok(render(&UserPage {
        l: layout(&state, &u.email, &csrf).await?,
        d: shell("users", &s),
        factors: factors
            .data
            .iter()
            .map(|f| FactorItem {
                id: f.id.clone(),
                kind: match f.r#type {
                    FactorKind::Totp => "Authenticator app (TOTP)".into(),
                    FactorKind::Sms => "SMS".into(),
                    FactorKind::GenericOtp => "generic otp".into(),
                },
                label: match (&f.totp_issuer, &f.totp_user, &f.phone_number) {
                    (Some(i), Some(u), _) => format!("{i} / {u}"),
                    (_, _, Some(p)) => p.clone(),
                    _ => String::new(),
                },
                created: fmt_time(f.created_at),
            })
            .collect(),
        events: events.data.iter().map(event_item).collect(),
        mfa_required: env.is_some_and(|e| e.mfa_required),
        notice: n.reset.map(|k| {
            format!(
                "Deleted {k} factor{}. The user will enrol again at their next sign-in.",
                if k == 1 { "" } else { "s" }
            )
        }),
        user: UserView {
            id: u.id.clone(),
            email: u.email.clone(),
            email_verified: u.email_verified,
            first_name: u.first_name.clone().unwrap_or_default(),
            last_name: u.last_name.clone().unwrap_or_default(),
            external_id: u.external_id.clone().unwrap_or_default(),
            has_password: u.password_hash.is_some(),
            last_sign_in: u
                .last_sign_in_at
                .map(fmt_time)
                .unwrap_or_else(|| "never".into()),
            created: fmt_time(u.created_at),
        },
    }))
}

#[derive(Template)]
#[template(path = "dashboard/confirm.html")]
struct ConfirmPage {
    l: Layout,
    d: Shell,
    heading: String,
    message: String,
    action: String,
    button: String,
    cancel: String,
}

// Each argument is one visible part of the page; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
async fn confirm(
    state: &AppState,
    csrf: &CsrfToken,
    s: &SignedIn,
    section: &'static str,
    heading: &str,
    message: String,
    action: String,
    button: &str,
    cancel: String,
) -> Result<Response, WebError> {
    Ok(render(&ConfirmPage {
        l: layout(state, heading, csrf).await?,
        d: shell(section, s),
        heading: heading.into(),
        message,
        action,
        button: button.into(),
        cancel,
    }))
}

async fn reset_mfa_confirm(
    State(state): State<AppState>,
    csrf: CsrfToken,
    s: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let u = crate::services::users::get(&state, &id).await?;
    let n = crate::services::factors::list_user_factors(
        &state,
        &u.id,
        &ListParams {
            limit: 100,
            order: Order::Asc,
            ..Default::default()
        },
    )
    .await?
    .data
    .len();
    let message = format!(
        "Delete {n} factor{} of {}? They will have to enrol again at their next sign-in.",
        if n == 1 { "" } else { "s" },
        u.email
    );
    confirm(
        &state,
        &csrf,
        &s,
        "users",
        "Reset MFA",
        message,
        format!("/dashboard/users/{}/reset-mfa", u.id),
        "Reset MFA",
        format!("/dashboard/users/{}", u.id),
    )
    .await
}

async fn reset_mfa(
    State(state): State<AppState>,
    s: SignedIn,
    Path(id): Path<String>,
    Form(_): Form<Empty>,
) -> Result<Response, WebError> {
    let n = svc::reset_user_mfa(&state, &s.s.admin, &id).await?;
    Ok(see_other(&format!("/dashboard/users/{id}?reset={n}")))
}

async fn delete_user_confirm(
    State(state): State<AppState>,
    csrf: CsrfToken,
    s: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let u = crate::services::users::get(&state, &id).await?;
    let message = format!(
        "Delete the user {}? Their factors and sessions are deleted too. This cannot be undone.",
        u.email
    );
    confirm(
        &state,
        &csrf,
        &s,
        "users",
        "Delete user",
        message,
        format!("/dashboard/users/{}/delete", u.id),
        "Delete user",
        format!("/dashboard/users/{}", u.id),
    )
    .await
}

async fn delete_user(
    State(state): State<AppState>,
    s: SignedIn,
    Path(id): Path<String>,
    Form(_): Form<Empty>,
) -> Result<Response, WebError> {
    svc::delete_user(&state, &s.s.admin, &id).await?;
    Ok(see_other("/dashboard/users"))
}

// ---- API keys ----------------------------------------------------------------------------

pub struct KeyItem {
    pub id: String,
    pub name: String,
    pub masked: String,
    pub created: String,
    pub revoked: Option<String>,
}

pub struct CreatedKey {
    pub name: String,
    pub secret: String,
}

#[derive(Template)]
#[template(path = "dashboard/api_keys.html")]
struct ApiKeysPage {
    l: Layout,
    d: Shell,
    keys: Vec<KeyItem>,
    created: Option<CreatedKey>,
    notice: Option<String>,
    error: Option<String>,
}

async fn api_keys_render(
    state: &AppState,
    csrf: &CsrfToken,
    s: &SignedIn,
    created: Option<CreatedKey>,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, WebError> {
    let mut rows = state.store.list_api_keys().await?;
    rows.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(render(&ApiKeysPage {
        l: layout(state, "API keys", csrf).await?,
        d: shell("api-keys", s),
        keys: rows
            .iter()
            .map(|k| KeyItem {
                id: k.id.clone(),
                name: k.name.clone(),
                masked: format!("sk_{}_…", k.lookup),
                created: fmt_time(k.created_at),
                revoked: k.revoked_at.map(fmt_time),
            })
            .collect(),
        created,
        notice,
        error,
    }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KeysQuery {
    revoked: Option<String>,
}

async fn api_keys_page(
    State(state): State<AppState>,
    csrf: CsrfToken,
    s: SignedIn,
    Query(q): Query<KeysQuery>,
) -> Result<Response, WebError> {
    let notice = q
        .revoked
        .map(|_| "The key is revoked. Calls with it are refused.".to_owned());
    api_keys_render(&state, &csrf, &s, None, notice, None).await
}

#[derive(Deserialize)]
struct NewKeyForm {
    #[serde(default)]
    name: String,
}

async fn create_api_key(
    State(state): State<AppState>,
    csrf: CsrfToken,
    s: SignedIn,
    Form(f): Form<NewKeyForm>,
) -> Result<Response, WebError> {
    match svc::create_api_key(&state, &s.s.admin, &f.name).await {
        // Shown in this response only (no redirect that could show it again); the page is
        // no-store like every page.
        Ok((row, secret)) => {
            api_keys_render(
                &state,
                &csrf,
                &s,
                Some(CreatedKey {
                    name: row.name,
                    secret,
                }),
                None,
                None,
            )
            .await
        }
        Err(Error::Validation(_)) => {
            api_keys_render(
                &state,
                &csrf,
                &s,
                None,
                None,
                Some("Give the key a name (at most 256 characters).".into()),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn revoke_confirm(
    State(state): State<AppState>,
    csrf: CsrfToken,
    s: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let keys = state.store.list_api_keys().await?;
    let k = keys
        .iter()
        .find(|k| k.id == id && k.revoked_at.is_none())
        .ok_or_else(|| Error::not_found(tessera_core::error::Entity::ApiKey, &id))?;
    let message = format!(
        "Revoke the API key “{}” (sk_{}_…)? Every call with it will be refused from now on. This cannot be undone.",
        k.name, k.lookup
    );
    confirm(
        &state,
        &csrf,
        &s,
        "api-keys",
        "Revoke API key",
        message,
        format!("/dashboard/api-keys/{}/revoke", k.id),
        "Revoke key",
        "/dashboard/api-keys".into(),
    )
    .await
}

async fn revoke_api_key(
    State(state): State<AppState>,
    s: SignedIn,
    Path(id): Path<String>,
    Form(_): Form<Empty>,
) -> Result<Response, WebError> {
    svc::revoke_api_key(&state, &s.s.admin, &id).await?;
    Ok(see_other("/dashboard/api-keys?revoked=1"))
}

// ---- events ------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "dashboard/events.html")]
struct EventsPage {
    l: Layout,
    d: Shell,
    types: Vec<String>,
    filter_type: String,
    filter_user: String,
    events: Vec<EventItem>,
    pager: Pager,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EventsQuery {
    r#type: String,
    user: String,
    before: Option<String>,
    after: Option<String>,
}

async fn events_page(
    State(state): State<AppState>,
    csrf: CsrfToken,
    s: SignedIn,
    Query(q): Query<EventsQuery>,
) -> Result<Response, WebError> {
    let t = q.r#type.trim().chars().take(100).collect::<String>();
    let u = q.user.trim().chars().take(100).collect::<String>();
    let params = list_params(&Cursor {
        before: q.before,
        after: q.after,
    });
    // A user can be named by email too; an unknown email matches no event.
    let user_id = if u.contains('@') {
        Some(
            state
                .store
                .find_user_by_email(&u.to_lowercase())
                .await?
                .map(|user| user.id)
                .unwrap_or_else(|| "-".into()),
        )
    } else {
        Some(u.clone()).filter(|s| !s.is_empty())
    };
    let page = state
        .store
        .list_events_by(
            Some(t.as_str()).filter(|s| !s.is_empty()),
            user_id.as_deref(),
            &params,
        )
        .await?;
    Ok(render(&EventsPage {
        l: layout(&state, "Events", &csrf).await?,
        d: shell("events", &s),
        types: state.store.event_types().await?,
        events: page.data.iter().map(event_item).collect(),
        pager: pager("/dashboard/events", &[("type", &t), ("user", &u)], &page),
        filter_type: t,
        filter_user: u,
    }))
}

// ---- signing keys ------------------------------------------------------------------------

pub struct SigningKeyItem {
    pub kid: String,
    pub status: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "dashboard/signing_keys.html")]
struct SigningKeysPage {
    l: Layout,
    d: Shell,
    current: String,
    keys: Vec<SigningKeyItem>,
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RotatedQuery {
    rotated: Option<String>,
}

async fn signing_keys_page(
    State(state): State<AppState>,
    csrf: CsrfToken,
    s: SignedIn,
    Query(q): Query<RotatedQuery>,
) -> Result<Response, WebError> {
    let current = state
        .store
        .find_active_signing_key()
        .await?
        .map(|k| k.kid)
        .unwrap_or_default();
    let since = state.now().minus_millis(state.config.access_token_ttl_ms);
    let keys = state.store.published_signing_keys(since).await?;
    Ok(render(&SigningKeysPage {
        l: layout(&state, "Signing keys", &csrf).await?,
        d: shell("signing-keys", &s),
        keys: keys
            .iter()
            .map(|k| SigningKeyItem {
                kid: k.kid.clone(),
                status: match k.retired_at {
                    None => "current".into(),
                    Some(t) => format!(
                        "retired {} (published until its tokens expire)",
                        fmt_time(t)
                    ),
                },
                created: fmt_time(k.created_at),
            })
            .collect(),
        notice: q
            .rotated
            .map(|k| format!("Rotated. New tokens are signed with {k}.")),
        current,
    }))
}

async fn rotate_confirm(
    State(state): State<AppState>,
    csrf: CsrfToken,
    s: SignedIn,
) -> Result<Response, WebError> {
    let message = "Make a new signing key? New access tokens are signed with it at once; tokens signed with the current key stay valid until they expire.".to_owned();
    confirm(
        &state,
        &csrf,
        &s,
        "signing-keys",
        "Rotate signing key",
        message,
        "/dashboard/signing-keys/rotate".into(),
        "Rotate signing key",
        "/dashboard/signing-keys".into(),
    )
    .await
}

async fn rotate(
    State(state): State<AppState>,
    s: SignedIn,
    Form(_): Form<Empty>,
) -> Result<Response, WebError> {
    let kid = svc::rotate_signing_key(&state, &s.s.admin).await?;
    Ok(see_other(&format!(
        "/dashboard/signing-keys?{}",
        serde_urlencoded::to_string([("rotated", kid.as_str())]).unwrap_or_default()
    )))
}
