//! [`Form`]: a URL-encoded form body whose CSRF token has been checked. A missing or wrong
//! token is a 403 page and the handler never runs (so nothing changes); a body that does not
//! parse is a 400 page. Handlers of state-changing forms take this extractor, which makes
//! the check impossible to forget.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use super::csrf::{self, CsrfSeed};
use super::page::WebError;
use crate::AppState;

/// The field every state-changing form carries (see `templates/partials/csrf.html`).
pub const CSRF_FIELD: &str = "csrf";

#[derive(Debug)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Form<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, WebError> {
        let seed = req
            .extensions()
            .get::<CsrfSeed>()
            .cloned()
            .ok_or_else(|| WebError::internal("CSRF layer missing on a form route"))?;
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| WebError::BadRequest("The form was too large or was cut off.".into()))?;
        // The token is checked first: a forged request learns nothing about the form's
        // validation and changes nothing.
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
        let presented = pairs
            .iter()
            .find(|(k, _)| k == CSRF_FIELD)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        if !csrf::check(state, &seed, presented) {
            return Err(WebError::Csrf);
        }
        if !is_form {
            return Err(WebError::BadRequest(
                "The form was not sent as a form.".into(),
            ));
        }
        serde_urlencoded::from_bytes(&body)
            .map(Form)
            .map_err(|_| WebError::BadRequest("The form was incomplete. Please try again.".into()))
    }
}
