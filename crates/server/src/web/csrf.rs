//! CSRF protection for every state-changing form (synchronizer token bound to a cookie).
//!
//! [`ensure_cookie`] gives each browser a random seed in an `HttpOnly`, `SameSite=Strict`
//! cookie. A form's token is the HMAC of that seed under a key derived from the master key,
//! so every node computes the same token without storing anything, and a page on another
//! site can neither read the cookie nor compute the token. [`check`] compares in constant
//! time. `SameSite=Strict` alone already keeps the cookie off cross-site requests; the token
//! also covers browsers that ignore it and same-site attackers.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::cookie;
use super::page::WebError;
use crate::AppState;

pub const COOKIE: &str = "tessera_csrf";
const MAC_PURPOSE: &str = "csrf";
const SEED_LEN: usize = 32;

/// The browser's CSRF seed (from its cookie, or fresh), placed in the request extensions by
/// [`ensure_cookie`].
#[derive(Debug, Clone)]
pub struct CsrfSeed(pub String);

fn well_formed(seed: &str) -> bool {
    seed.len() == SEED_LEN && seed.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Middleware: reads the seed cookie or makes a new seed (set on the response).
pub async fn ensure_cookie(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let existing = cookie::get(req.headers(), COOKIE)
        .filter(|s| well_formed(s))
        .map(str::to_owned);
    let fresh = existing.is_none();
    let seed = existing.unwrap_or_else(|| tessera_core::token::random_base62(SEED_LEN));
    req.extensions_mut().insert(CsrfSeed(seed.clone()));
    let mut resp = next.run(req).await;
    if fresh {
        let secure = cookie::is_secure(&state.config);
        resp.headers_mut()
            .append(header::SET_COOKIE, cookie::set(COOKIE, &seed, None, secure));
    }
    resp
}

/// The token that forms carry for `seed` (hex).
pub fn token(state: &AppState, seed: &CsrfSeed) -> String {
    hex(&state.keys.mac(MAC_PURPOSE, &seed.0, b"form"))
}

/// Whether `presented` is the token for `seed`, compared in constant time.
pub fn check(state: &AppState, seed: &CsrfSeed, presented: &str) -> bool {
    let Some(bytes) = unhex(presented) else {
        return false;
    };
    state
        .keys
        .mac_matches(MAC_PURPOSE, &seed.0, b"form", &bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() & 1 == 1 || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A page handler's CSRF token, for the forms it renders.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

impl FromRequestParts<AppState> for CsrfToken {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let seed = parts
            .extensions
            .get::<CsrfSeed>()
            .ok_or_else(|| WebError::internal("CSRF layer missing on a page route"))?;
        Ok(CsrfToken(token(state, seed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        assert_eq!(unhex(&hex(&[0, 1, 254, 255])), Some(vec![0, 1, 254, 255]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"a".repeat(130)), None);
        assert!(well_formed(&"a".repeat(32)));
        assert!(!well_formed(&"a".repeat(31)));
        assert!(!well_formed(&format!("{};", "a".repeat(31))));
    }
}
