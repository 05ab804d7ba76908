//! Rendering: the [`Layout`] every template gets (title, environment name, static URLs,
//! CSRF token), [`render`] from a template to a response, [`WebError`] (failures shown as
//! pages, never as JSON or a framework's plain text), and [`TotpSetup`] for the QR-code
//! partial.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use tessera_core::Error;

use super::assets;
use super::csrf::CsrfToken;

/// What the base layout needs. `l` in every template.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    pub env_name: String,
    pub css: &'static str,
    pub js: &'static str,
    /// The CSRF token for this browser; forms include `partials/csrf.html`.
    pub csrf: String,
}

impl Layout {
    pub fn new(title: impl Into<String>, env_name: impl Into<String>, csrf: &CsrfToken) -> Self {
        Layout {
            title: title.into(),
            env_name: env_name.into(),
            css: assets::css_url(),
            js: assets::js_url(),
            csrf: csrf.0.clone(),
        }
    }
}

/// Renders a template as an HTML page with `status`.
pub fn render_status(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => WebError::internal(e).into_response(),
    }
}

/// Renders a template as a 200 HTML page.
pub fn render(t: &impl Template) -> Response {
    render_status(StatusCode::OK, t)
}

/// A TOTP secret as set-up pages show it: the QR code (a `data:` PNG, the API's own) and the
/// base32 secret in groups of four for manual entry.
#[derive(Debug, Clone)]
pub struct TotpSetup {
    pub qr_code: String,
    pub account: String,
    pub grouped_secret: String,
}

impl TotpSetup {
    pub fn new(qr_code: String, account: String, secret_b32: &str) -> Self {
        let grouped_secret = secret_b32
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        TotpSetup {
            qr_code,
            account,
            grouped_secret,
        }
    }
}

/// A failure shown to a browser as a page.
#[derive(Debug)]
pub enum WebError {
    /// 403: the form's CSRF token is missing or wrong. Nothing was changed.
    Csrf,
    /// 400: the form could not be read.
    BadRequest(String),
    /// 404: no such page or object.
    NotFound,
    /// A domain error from a service.
    Domain(Error),
}

impl WebError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        WebError::Domain(Error::internal(e))
    }
}

impl From<Error> for WebError {
    fn from(e: Error) -> Self {
        WebError::Domain(e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    l: Layout,
    heading: &'a str,
    message: String,
}

/// Status, heading and message of a domain error, in words a person understands. Exhaustive
/// (no `_ =>`): a new variant needs a decision here too. Internal details are logged only.
pub fn describe(e: &Error) -> (StatusCode, &'static str, String) {
    use StatusCode as S;
    match e {
        Error::NotFound { entity, .. } => (
            S::NOT_FOUND,
            "Not found",
            format!(
                "That {} does not exist (any more).",
                entity.display_name().to_lowercase()
            ),
        ),
        Error::Validation(problems) => (
            S::UNPROCESSABLE_ENTITY,
            "Please check the form",
            problems
                .iter()
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Error::MalformedJson(_) => (
            S::BAD_REQUEST,
            "Bad request",
            "The request could not be read.".into(),
        ),
        Error::EmailNotAvailable(email) => (
            S::BAD_REQUEST,
            "Please check the form",
            format!("A user with the email {email} already exists."),
        ),
        Error::ExternalIdAlreadyUsed(_) => (
            S::BAD_REQUEST,
            "Please check the form",
            "Another user already has that external id.".into(),
        ),
        Error::PasswordStrength(why) => (
            S::BAD_REQUEST,
            "Please choose another password",
            why.clone(),
        ),
        Error::InvalidPhoneNumber(_) => (
            S::UNPROCESSABLE_ENTITY,
            "Please check the form",
            "That phone number is not valid. Use the international format, e.g. +15555550100."
                .into(),
        ),
        Error::ChallengeExpired(_) => (
            S::UNPROCESSABLE_ENTITY,
            "The code has expired",
            "That sign-in step took too long. Please start again.".into(),
        ),
        Error::ChallengePreviouslyVerified(_) => (
            S::UNPROCESSABLE_ENTITY,
            "Already used",
            "That sign-in step was already completed. Please start again.".into(),
        ),
        Error::TooManyAttempts(_) => (
            S::BAD_REQUEST,
            "Too many attempts",
            "Too many codes were tried. Please start again.".into(),
        ),
        Error::FactorLocked(_) => (
            S::FORBIDDEN,
            "Authenticator locked",
            "Too many wrong codes were entered for this authenticator, so it is locked. \
             Ask an administrator to unlock it."
                .into(),
        ),
        Error::RateLimited {
            retry_after_secs, ..
        } => (
            S::TOO_MANY_REQUESTS,
            "Too many attempts",
            format!(
                "Too many failed attempts. Please wait {} and try again.",
                wait_words(*retry_after_secs)
            ),
        ),
        Error::SmsDeliveryFailed(_) => (
            S::BAD_GATEWAY,
            "The message could not be sent",
            "The text message could not be delivered. Please try again later.".into(),
        ),
        // Pages never read Idempotency-Key (only API POSTs do); listed for exhaustiveness.
        Error::InvalidIdempotencyKey
        | Error::IdempotencyKeyReused
        | Error::IdempotencyKeyInProgress { .. } => (
            S::BAD_REQUEST,
            "Bad request",
            "The request could not be processed. Please try again.".into(),
        ),
        Error::AuthorizationRefused(why) => (
            S::BAD_REQUEST,
            "This sign-in link is not valid",
            why.clone(),
        ),
        Error::InvalidClient
        | Error::InvalidGrant(_)
        | Error::UnsupportedGrantType(_)
        | Error::AuthenticationFailed { .. }
        | Error::AuthenticationFlow(_)
        | Error::Unauthorized => (
            S::UNAUTHORIZED,
            "Not signed in",
            "Please sign in again.".into(),
        ),
        Error::Unavailable(detail) => {
            tracing::warn!(error = %detail, "database unavailable on a page");
            (
                S::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The service cannot reach its database right now. Please try again in a moment."
                    .into(),
            )
        }
        Error::Internal(detail) => {
            tracing::error!(error = %detail, "internal error on a page");
            (
                S::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "An internal error occurred. It has been logged.".into(),
            )
        }
    }
}

/// "30 seconds", "2 minutes".
pub fn wait_words(secs: i64) -> String {
    let secs = secs.max(1);
    if secs == 1 {
        "1 second".to_owned()
    } else if secs < 90 {
        format!("{secs} seconds")
    } else {
        format!("{} minutes", (secs + 59) / 60)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match &self {
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was sent without a valid security token (it may be from an old tab). Nothing was changed. Go back, reload the page and try again.".to_owned(),
            ),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Please try again", m.clone()),
            WebError::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is no page at this address.".to_owned(),
            ),
            WebError::Domain(e) => describe(e),
        };
        let mut resp = render_status(
            status,
            &ErrorPage {
                // Error pages carry no form, hence no token.
                l: Layout::new(heading, "Tessera", &CsrfToken(String::new())),
                heading,
                message,
            },
        );
        if let WebError::Domain(Error::RateLimited {
            retry_after_secs, ..
        }) = &self
        {
            if let Ok(v) = axum::http::HeaderValue::from_str(&retry_after_secs.max(&1).to_string())
            {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_shown_in_groups_of_four() {
        let s = TotpSetup::new(String::new(), "a".into(), "ABCDEFGHIJ");
        assert_eq!(s.grouped_secret, "ABCD EFGH IJ");
    }

    #[test]
    fn waits_are_said_in_words() {
        assert_eq!(wait_words(0), "1 second");
        assert_eq!(wait_words(30), "30 seconds");
        assert_eq!(wait_words(600), "10 minutes");
    }
}
