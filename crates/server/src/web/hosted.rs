//! The hosted sign-in pages (AuthKit-compatible): `GET /user_management/authorize` (the URL
//! the SDKs build), the password, sign-up, code and enrolment steps, and
//! `GET /user_management/sessions/logout`.
//!
//! Every step calls the same services as the API (`signin::check_password`,
//! `signin::complete_totp`, `users::create`, `mfa::challenge`), so throttling, enumeration
//! resistance, the replay guard and every attempt limit apply unchanged. The authorization
//! request travels through the steps as a hidden field and is checked again at each one, so
//! a tampered field can only ever point at another allow-listed URI. The way back to the
//! application is issued only at the end, with a fresh single-use code.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tessera_core::seal::Sealed;
use tessera_core::totp::{self, TotpSecret};
use tessera_core::{qr, token, Error};

use super::cookie;
use super::csrf::CsrfToken;
use super::form::Form;
use super::page::{self, Layout, TotpSetup, WebError};
use crate::extract::Meta;
use crate::metrics::{Grant, SignInResult};
use crate::services::authkit::{self, AuthorizeQuery, AuthorizeRequest, BROWSER_COOKIE};
use crate::services::events::RequestMeta;
use crate::services::mfa::ChallengeRequest;
use crate::services::signin::{self, PasswordStep};
use crate::services::users::{self, CreateUserRequest};
use crate::AppState;

/// Associated-data purpose of the enrolment secret carried in the page (sealed to the
/// pending token, so it cannot be moved to another sign-in).
const ENROL_SEAL_PURPOSE: &str = "hosted-enrol";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/user_management/authorize", get(authorize))
        .route("/user_management/authorize/password", post(password))
        .route("/user_management/authorize/sign-up", post(sign_up))
        .route("/user_management/authorize/totp", post(totp_code))
        .route("/user_management/authorize/enroll", post(enroll))
        .route("/user_management/sessions/logout", get(logout))
}

type WebResult = Result<Response, WebError>;

#[derive(Template)]
#[template(path = "hosted_sign_in.html")]
struct SignInPage {
    l: Layout,
    authz: String,
    email: String,
    error: Option<String>,
    sign_up: bool,
    sign_up_enabled: bool,
}

#[derive(Template)]
#[template(path = "hosted_code.html")]
struct CodePage {
    l: Layout,
    authz: String,
    email: String,
    pending: String,
    challenge: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "hosted_enroll.html")]
struct EnrolPage {
    l: Layout,
    authz: String,
    pending: String,
    sealed: String,
    setup: TotpSetup,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "hosted_continue.html")]
struct ContinuePage {
    l: Layout,
    url: String,
}

#[derive(Template)]
#[template(path = "hosted_signed_out.html")]
struct SignedOutPage {
    l: Layout,
}

fn layout(state: &AppState, title: &str, csrf: &CsrfToken) -> Layout {
    Layout::new(title, state.config.environment_name.clone(), csrf)
}

/// The authorization request of a step, checked again (`authz` is the original query).
async fn checked(state: &AppState, authz: &str) -> Result<AuthorizeRequest, WebError> {
    Ok(authkit::check_authorize(state, &AuthorizeQuery::from_query(authz)).await?)
}

/// `GET /user_management/authorize`: refusals are a 400 page and never a redirect. A browser
/// signed in here gets a code at once (unless `prompt=login`); otherwise the sign-in page.
async fn authorize(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    Meta(meta): Meta,
    headers: HeaderMap,
    csrf: CsrfToken,
) -> WebResult {
    let authz = raw.unwrap_or_default();
    let req = checked(&state, &authz).await?;
    if !req.force_login {
        if let Some(t) = cookie::get(&headers, BROWSER_COOKIE) {
            if let Some((bid, uid)) = authkit::find_browser_session(&state, t).await? {
                let url = authkit::issue_code(&state, &req, &uid, Some(&bid), &meta).await?;
                return redirect(&url);
            }
        }
    }
    let sign_up_enabled = state.store.is_sign_up_enabled().await?;
    let sign_up = req.sign_up && sign_up_enabled;
    Ok(sign_in_page(
        &state,
        &csrf,
        authz,
        req.login_hint.unwrap_or_default(),
        None,
        sign_up,
        sign_up_enabled,
        StatusCode::OK,
    ))
}

#[allow(clippy::too_many_arguments)]
fn sign_in_page(
    state: &AppState,
    csrf: &CsrfToken,
    authz: String,
    email: String,
    error: Option<String>,
    sign_up: bool,
    sign_up_enabled: bool,
    status: StatusCode,
) -> Response {
    let title = if sign_up {
        "Create an account"
    } else {
        "Sign in"
    };
    page::render_status(
        status,
        &SignInPage {
            l: layout(state, title, csrf),
            authz,
            email,
            error,
            sign_up,
            sign_up_enabled,
        },
    )
}

fn redirect(url: &str) -> WebResult {
    let location = HeaderValue::from_bytes(url.as_bytes()).map_err(WebError::internal)?;
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PasswordForm {
    authz: String,
    email: String,
    password: String,
}

/// Words for a refused password step. Unknown email and wrong password read the same (the
/// service gives both the same error), so the page reveals no accounts.
fn password_refusal(e: Error) -> Result<(String, StatusCode), WebError> {
    match e {
        Error::AuthenticationFailed { .. } | Error::Validation(_) => Ok((
            "Incorrect email or password.".to_owned(),
            StatusCode::BAD_REQUEST,
        )),
        Error::RateLimited {
            retry_after_secs, ..
        } => Ok((
            format!(
                "Too many failed attempts. Please wait {} and try again.",
                page::wait_words(retry_after_secs)
            ),
            StatusCode::TOO_MANY_REQUESTS,
        )),
        other => Err(other.into()),
    }
}

async fn password(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    csrf: CsrfToken,
    Form(f): Form<PasswordForm>,
) -> WebResult {
    let req = checked(&state, &f.authz).await?;
    // The connection's address is the end user's here (the browser talks to us directly), so
    // the per-IP limit applies.
    let ip = meta.ip_address.clone();
    match signin::check_password(&state, &f.email, &f.password, ip.as_deref(), &meta).await {
        Ok((user, step)) => {
            after_password(&state, &req, f.authz, user, step, &csrf, &meta, &headers).await
        }
        Err(e) => {
            let (message, status) = password_refusal(e)?;
            let enabled = state.store.is_sign_up_enabled().await?;
            Ok(sign_in_page(
                &state,
                &csrf,
                f.authz,
                f.email,
                Some(message),
                false,
                enabled,
                status,
            ))
        }
    }
}

async fn sign_up(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    csrf: CsrfToken,
    Form(f): Form<PasswordForm>,
) -> WebResult {
    if !state.store.is_sign_up_enabled().await? {
        return Err(WebError::NotFound);
    }
    let req = checked(&state, &f.authz).await?;
    let created = users::create(
        &state,
        CreateUserRequest {
            email: Some(f.email.clone()),
            password: Some(f.password.clone()),
            ..Default::default()
        },
    )
    .await;
    if let Err(e) = created {
        let message = match &e {
            Error::Validation(_) | Error::PasswordStrength(_) | Error::EmailNotAvailable(_) => {
                page::describe(&e).2
            }
            _ => return Err(e.into()),
        };
        return Ok(sign_in_page(
            &state,
            &csrf,
            f.authz,
            f.email,
            Some(message),
            true,
            true,
            StatusCode::BAD_REQUEST,
        ));
    }
    // Then the ordinary password step: the same events, and MFA enrolment when required.
    let ip = meta.ip_address.clone();
    let (user, step) =
        signin::check_password(&state, &f.email, &f.password, ip.as_deref(), &meta).await?;
    after_password(&state, &req, f.authz, user, step, &csrf, &meta, &headers).await
}

#[allow(clippy::too_many_arguments)]
async fn after_password(
    state: &AppState,
    req: &AuthorizeRequest,
    authz: String,
    user: tessera_store::UserRow,
    step: PasswordStep,
    csrf: &CsrfToken,
    meta: &RequestMeta,
    headers: &HeaderMap,
) -> WebResult {
    match step {
        PasswordStep::Done => finish(state, req, &user.id, meta, headers).await,
        PasswordStep::Challenge(factor_ids) => {
            let pending = signin::new_pending_token(state, &user.id).await?;
            let factor = factor_ids
                .first()
                .ok_or_else(|| WebError::internal("challenge step without a factor"))?;
            let challenge =
                crate::services::mfa::challenge(state, factor, ChallengeRequest::default()).await?;
            Ok(code_page(
                state,
                csrf,
                authz,
                user.email,
                pending,
                challenge.id,
                None,
            ))
        }
        PasswordStep::Enrol => {
            let pending = signin::new_pending_token(state, &user.id).await?;
            let secret = TotpSecret::generate();
            let sealed = seal_enrolment(state, &pending, &secret)?;
            enrol_page(
                state,
                csrf,
                authz,
                pending,
                sealed,
                &user.email,
                &secret,
                None,
            )
        }
    }
}

fn code_page(
    state: &AppState,
    csrf: &CsrfToken,
    authz: String,
    email: String,
    pending: String,
    challenge: String,
    error: Option<String>,
) -> Response {
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page::render_status(
        status,
        &CodePage {
            l: layout(state, "Enter your code", csrf),
            authz,
            email,
            pending,
            challenge,
            error,
        },
    )
}

fn seal_enrolment(
    state: &AppState,
    pending: &str,
    secret: &TotpSecret,
) -> Result<String, WebError> {
    use base64::Engine;
    let aad = hex_hash(pending);
    let s = state
        .keys
        .seal(ENROL_SEAL_PURPOSE, &aad, secret.as_bytes())
        .map_err(WebError::internal)?;
    Ok(format!(
        "{}.{}",
        s.key_id,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s.blob)
    ))
}

fn open_enrolment(state: &AppState, pending: &str, sealed: &str) -> Option<TotpSecret> {
    use base64::Engine;
    let (key_id, blob) = sealed.rsplit_once('.')?;
    let blob = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(blob)
        .ok()?;
    let bytes = state
        .keys
        .open(
            ENROL_SEAL_PURPOSE,
            &hex_hash(pending),
            &Sealed {
                key_id: key_id.to_owned(),
                blob,
            },
        )
        .ok()?;
    Some(TotpSecret::from_bytes(bytes.to_vec()))
}

fn hex_hash(s: &str) -> String {
    token::hash(s).iter().map(|b| format!("{b:02x}")).collect()
}

#[allow(clippy::too_many_arguments)]
fn enrol_page(
    state: &AppState,
    csrf: &CsrfToken,
    authz: String,
    pending: String,
    sealed: String,
    email: &str,
    secret: &TotpSecret,
    error: Option<String>,
) -> WebResult {
    let b32 = secret.to_base32();
    let issuer = &state.config.environment_name;
    let qr_code =
        qr::png_data_uri(&totp::otpauth_uri(issuer, email, &b32)).map_err(WebError::internal)?;
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(page::render_status(
        status,
        &EnrolPage {
            l: layout(state, "Set up two-step verification", csrf),
            authz,
            pending,
            sealed,
            setup: TotpSetup::new(qr_code, email.to_owned(), &b32),
            error,
        },
    ))
}

const WRONG_CODE: &str =
    "That code didn't work. Check the time on your phone and try the newest code.";

/// Digits only: people type codes with spaces ("123 456").
fn digits(code: &str) -> String {
    code.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The user of a pending token still usable (without using it up).
async fn pending_user(state: &AppState, pending: &str) -> Result<tessera_store::UserRow, WebError> {
    let uid = state
        .store
        .find_pending_user(&token::hash(pending), state.now())
        .await?
        .ok_or(WebError::Domain(Error::AuthenticationFailed {
            code: "invalid_pending_authentication_token",
            message: "The sign-in took too long.".into(),
        }))?;
    Ok(state.store.get_user(&uid).await?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CodeForm {
    authz: String,
    pending: String,
    challenge: String,
    sealed: String,
    code: String,
}

async fn totp_code(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    csrf: CsrfToken,
    Form(f): Form<CodeForm>,
) -> WebResult {
    let req = checked(&state, &f.authz).await?;
    let code = digits(&f.code);
    let completed = signin::complete_totp(&state, &f.pending, &f.challenge, &code, &meta).await;
    state
        .metrics
        .sign_in(Grant::HostedTotp, SignInResult::of(&completed));
    match completed {
        Ok(user) => finish(&state, &req, &user.id, &meta, &headers).await,
        Err(Error::AuthenticationFailed {
            code: "invalid_one_time_code",
            ..
        }) => {
            let user = pending_user(&state, &f.pending).await?;
            Ok(code_page(
                &state,
                &csrf,
                f.authz,
                user.email,
                f.pending,
                f.challenge,
                Some(WRONG_CODE.to_owned()),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Enrolment during sign-in: the factor is created only when a correct code for the secret
/// shown comes back, with that code's step as its replay guard (the code cannot be used
/// again). Guessing here gains nothing: the page already shows the secret to whoever passed
/// the password step.
async fn enroll(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    csrf: CsrfToken,
    Form(f): Form<CodeForm>,
) -> WebResult {
    let req = checked(&state, &f.authz).await?;
    let user = pending_user(&state, &f.pending).await?;
    let secret = open_enrolment(&state, &f.pending, &f.sealed).ok_or_else(|| {
        WebError::BadRequest("The set-up form was altered. Please sign in again.".into())
    })?;
    let now = state.now();
    let Some(step) = totp::verify(
        &secret,
        &digits(&f.code),
        now.unix_seconds(),
        state.config.totp_window,
    ) else {
        return enrol_page(
            &state,
            &csrf,
            f.authz,
            f.pending,
            f.sealed,
            &user.email,
            &secret,
            Some(WRONG_CODE.to_owned()),
        );
    };
    // The pending token first (single use): of two parallel submissions, one enrols.
    if !state
        .store
        .consume_pending_token(&token::hash(&f.pending), &user.id, now)
        .await?
    {
        return Err(WebError::Domain(Error::AuthenticationFailed {
            code: "invalid_pending_authentication_token",
            message: "The sign-in took too long.".into(),
        }));
    }
    let (mut factor, _) = crate::services::factors::new_totp_factor(
        &state,
        now,
        Some(user.id.clone()),
        state.config.environment_name.clone(),
        user.email.clone(),
        secret,
    )?;
    factor.last_totp_step = step;
    use crate::services::events::{new_event, FACTOR_CREATED};
    let event =
        serde_json::json!({ "id": factor.id, "type": factor.r#type, "user_id": factor.user_id });
    state
        .store
        .insert_factor(&factor, None, &[new_event(now, FACTOR_CREATED, event)])
        .await?;
    finish(&state, &req, &user.id, &meta, &headers).await
}

/// Signed in at the hosted pages: a browser session (cookie), a code, and the way back.
async fn finish(
    state: &AppState,
    req: &AuthorizeRequest,
    user_id: &str,
    meta: &RequestMeta,
    headers: &HeaderMap,
) -> WebResult {
    // A browser that signs in again (prompt=login, another account) leaves its old session.
    if let Some(t) = cookie::get(headers, BROWSER_COOKIE) {
        if let Some((old, _)) = authkit::find_browser_session(state, t).await? {
            state.store.end_browser_session(&old, state.now()).await?;
        }
    }
    let (bid, secret) = authkit::start_browser_session(state, user_id).await?;
    let url = authkit::issue_code(state, req, user_id, Some(&bid), meta).await?;
    let max_age = state
        .config
        .session_max_age_ms
        .min(state.config.session_inactivity_ms)
        / 1000;
    let mut resp = page::render(&ContinuePage {
        l: layout(state, "Signed in", &CsrfToken(String::new())),
        url,
    });
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookie::set_lax(
            BROWSER_COOKIE,
            &secret,
            Some(max_age),
            cookie::is_secure(&state.config),
        ),
    );
    Ok(resp)
}

/// `GET /user_management/sessions/logout`: ends the session and this browser's session at
/// the hosted pages, then returns to `return_to` only when it is on the allow-list.
async fn logout(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> WebResult {
    // Read leniently (last value wins): a malformed query still signs the browser out.
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or_default()).unwrap_or_default();
    let param = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let target = authkit::logout(
        &state,
        param("session_id"),
        param("return_to"),
        cookie::get(&headers, BROWSER_COOKIE),
    )
    .await?;
    let mut resp = match target {
        Some(url) => redirect(&url)?,
        None => page::render(&SignedOutPage {
            l: layout(&state, "Signed out", &CsrfToken(String::new())),
        }),
    };
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookie::clear(BROWSER_COOKIE, cookie::is_secure(&state.config)),
    );
    Ok(resp)
}
