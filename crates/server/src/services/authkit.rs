//! Hosted sign-in (AuthKit-compatible): checking an authorization request, issuing codes,
//! redeeming them with the `authorization_code` grant, Tessera's browser sessions, and where
//! a logout may return to.
//!
//! The redirect URI is checked against the allow-list before anything else can send the
//! browser to it, so no refusal ever redirects (no open redirect). Codes are 238-bit random
//! strings, stored only as SHA-256, single use, short-lived, bound to the client and to the
//! PKCE challenge.

use serde::Deserialize;
use tessera_core::{authkit, id, token, validate, Error};
use tessera_store::AuthCodeRow;

use super::events::RequestMeta;
use super::sessions::{self, MAX_IP, MAX_USER_AGENT};
use super::signin::{self, AuthenticateRequest, AuthenticateResponse};
use crate::AppState;

pub const CODE_GRANT: &str = "authorization_code";
/// The browser-session cookie. `SameSite=Lax`, not `Strict`: the second `/authorize` of a
/// signed-in browser arrives by a cross-site navigation from the application, and a `Strict`
/// cookie would not be sent with it (single sign-on needs it). It is `HttpOnly`, and nothing
/// that changes state answers a cross-site GET with it except issuing a code to an
/// allow-listed redirect URI, which is what single sign-on is.
pub const BROWSER_COOKIE: &str = "tessera_browser_session";
/// Longest `state` carried back to the application (AuthKit's sealed states are ~415).
pub const MAX_STATE: usize = 4096;
const MAX_LOGIN_HINT: usize = 320;

/// The query of `GET /user_management/authorize`, as the SDKs build it.
#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
pub struct AuthorizeQuery {
    /// This environment's client id.
    pub client_id: Option<String>,
    /// Where the browser returns with `code` and `state`; must be on the allow-list.
    pub redirect_uri: Option<String>,
    /// `code`.
    pub response_type: Option<String>,
    /// Returned to `redirect_uri` unchanged.
    pub state: Option<String>,
    /// `authkit` (the only provider).
    pub provider: Option<String>,
    /// `sign-in` (default) or `sign-up`.
    pub screen_hint: Option<String>,
    /// Pre-fills the email.
    pub login_hint: Option<String>,
    /// PKCE: BASE64URL(SHA-256(verifier)).
    pub code_challenge: Option<String>,
    /// `S256` (the only method).
    pub code_challenge_method: Option<String>,
    /// `login` asks for the password even in a signed-in browser.
    pub prompt: Option<String>,
    /// Not supported (SSO).
    pub connection_id: Option<String>,
    /// Not supported (organizations).
    pub organization_id: Option<String>,
}

impl AuthorizeQuery {
    /// Reads a raw query string leniently: the last value of a repeated key wins (a link that
    /// appends `screen_hint=sign-up` to a query that has one must work), and anything
    /// unreadable is simply absent (the checks then say what is missing).
    pub fn from_query(raw: &str) -> Self {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).unwrap_or_default();
        let mut q = AuthorizeQuery::default();
        for (k, v) in pairs {
            let slot = match k.as_str() {
                "client_id" => &mut q.client_id,
                "redirect_uri" => &mut q.redirect_uri,
                "response_type" => &mut q.response_type,
                "state" => &mut q.state,
                "provider" => &mut q.provider,
                "screen_hint" => &mut q.screen_hint,
                "login_hint" => &mut q.login_hint,
                "code_challenge" => &mut q.code_challenge,
                "code_challenge_method" => &mut q.code_challenge_method,
                "prompt" => &mut q.prompt,
                "connection_id" => &mut q.connection_id,
                "organization_id" => &mut q.organization_id,
                _ => continue,
            };
            *slot = Some(v);
        }
        q
    }
}

/// A checked authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub sign_up: bool,
    pub login_hint: Option<String>,
    /// `prompt=login`: ask for the password even when the browser is signed in.
    pub force_login: bool,
}

fn refused(message: impl Into<String>) -> Error {
    Error::AuthorizationRefused(message.into())
}

/// Whether `uri` is on the allow-list (exact, or a loopback port wildcard spelled out).
pub async fn is_allowed_redirect(state: &AppState, uri: &str) -> Result<bool, Error> {
    let list = state.store.list_redirect_uris().await?;
    Ok(authkit::redirect_allowed(
        list.iter().map(String::as_str),
        uri,
    ))
}

/// Checks an authorization request. Every refusal is an error page (400) and never a
/// redirect: the client and the redirect URI are checked first, and a bad URI is never
/// followed.
pub async fn check_authorize(
    state: &AppState,
    q: &AuthorizeQuery,
) -> Result<AuthorizeRequest, Error> {
    if q.client_id.as_deref() != Some(&*state.client_id) {
        return Err(refused("The client_id is missing or unknown."));
    }
    let redirect_uri = q
        .redirect_uri
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| refused("The redirect_uri is missing."))?;
    if redirect_uri.len() > authkit::MAX_REDIRECT_URI
        || !is_allowed_redirect(state, redirect_uri).await?
    {
        return Err(refused(
            "The redirect_uri is not on this environment's allow-list (tessera redirect-uris add).",
        ));
    }
    if q.response_type.as_deref() != Some("code") {
        return Err(refused("The response_type must be 'code'."));
    }
    if q.connection_id.is_some() || q.organization_id.is_some() {
        return Err(refused(
            "Sign-in through a connection or an organization (SSO) is not supported by this server; use provider=authkit.",
        ));
    }
    match q.provider.as_deref() {
        Some("authkit") => {}
        Some(other) => {
            return Err(refused(format!(
                "The provider '{}' is not supported by this server; use provider=authkit.",
                other.chars().take(64).collect::<String>()
            )))
        }
        None => return Err(refused("The provider is missing; use provider=authkit.")),
    }
    let code_challenge = match (
        q.code_challenge.as_deref(),
        q.code_challenge_method.as_deref(),
    ) {
        (None, None) => None,
        (Some(c), Some("S256")) if authkit::is_s256_challenge(c) => Some(c.to_owned()),
        (Some(_), Some("S256")) => {
            return Err(refused(
                "The code_challenge must be 43 base64url characters (S256).",
            ))
        }
        (Some(_), _) => {
            return Err(refused(
                "The code_challenge_method must be 'S256' (plain is not accepted).",
            ))
        }
        (None, Some(_)) => {
            return Err(refused(
                "A code_challenge_method was given without a code_challenge.",
            ))
        }
    };
    if q.state.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
        return Err(refused(format!(
            "The state is longer than {MAX_STATE} bytes."
        )));
    }
    Ok(AuthorizeRequest {
        redirect_uri: redirect_uri.to_owned(),
        state: q.state.clone(),
        code_challenge,
        sign_up: q.screen_hint.as_deref() == Some("sign-up"),
        login_hint: sessions::truncated(q.login_hint.as_deref(), MAX_LOGIN_HINT),
        force_login: q.prompt.as_deref() == Some("login"),
    })
}

/// Issues a code for `user_id` and answers the URL to send the browser to:
/// `redirect_uri?code=...&state=...`.
pub async fn issue_code(
    state: &AppState,
    req: &AuthorizeRequest,
    user_id: &str,
    browser_session_id: Option<&str>,
    meta: &RequestMeta,
) -> Result<String, Error> {
    let now = state.now();
    let code = token::random_base62(40);
    state
        .store
        .insert_authorization_code(&AuthCodeRow {
            code_hash: token::hash(&code),
            client_id: state.client_id.to_string(),
            user_id: user_id.to_owned(),
            redirect_uri: req.redirect_uri.clone(),
            code_challenge: req.code_challenge.clone(),
            browser_session_id: browser_session_id.map(str::to_owned),
            ip_address: sessions::truncated(meta.ip_address.as_deref(), MAX_IP),
            user_agent: sessions::truncated(meta.user_agent.as_deref(), MAX_USER_AGENT),
            created_at: now,
            expires_at: now.plus_millis(state.config.authorization_code_ttl_ms),
            used_at: None,
        })
        .await?;
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &req.state {
        params.push(("state", s.as_str()));
    }
    Ok(authkit::with_query(&req.redirect_uri, &params))
}

fn bad_code() -> Error {
    Error::InvalidGrant("The code is invalid, has expired or was already used.".into())
}

/// The `authorization_code` grant. The client proves itself with its secret (an API key), or,
/// as a public client, with the PKCE verifier alone; when both are sent, both are checked.
/// A code issued with a challenge needs its verifier, and a verifier for a code issued without
/// one is refused (RFC 7636 §4.6, OAuth 2.1).
pub async fn code_grant(
    state: &AppState,
    req: &AuthenticateRequest,
    meta: &RequestMeta,
) -> Result<AuthenticateResponse, Error> {
    let code = signin::required(&req.code, "code")?;
    let has_secret = req.client_secret.as_deref().is_some_and(|s| !s.is_empty());
    if has_secret {
        signin::check_client(state, req).await?;
    } else if req.client_id.as_deref() != Some(&*state.client_id) {
        return Err(Error::InvalidClient);
    }
    let verifier = req.code_verifier.as_deref().filter(|v| !v.is_empty());
    if !has_secret && verifier.is_none() {
        return Err(Error::InvalidClient);
    }
    // Checked before the code is spent, so a bad address costs the caller no code.
    let body_ip = signin::body_ip(req)?;
    let now = state.now();
    let row = state
        .store
        .redeem_authorization_code(&token::hash(code), now)
        .await?
        .ok_or_else(bad_code)?;
    if req.client_id.as_deref() != Some(row.client_id.as_str()) {
        return Err(bad_code());
    }
    let pkce_ok = match (row.code_challenge.as_deref(), verifier) {
        (Some(challenge), Some(v)) => authkit::pkce_s256_matches(v, challenge),
        (None, None) => true,
        _ => false,
    };
    if !pkce_ok {
        return Err(Error::InvalidGrant(
            "The code_verifier does not match the code's code_challenge.".into(),
        ));
    }
    let user = state.store.get_user(&row.user_id).await?;
    // The application's backend sends the end user's address when it knows it; otherwise the
    // browser's, recorded when the code was issued, is the better guess than the backend's.
    // Both are bounded as in every grant: the address parsed, the user agent cut to 512 bytes.
    let meta = RequestMeta {
        ip_address: body_ip
            .or(row.ip_address)
            .or_else(|| meta.ip_address.clone()),
        user_agent: req
            .user_agent
            .as_deref()
            .map(validate::user_agent)
            .or(row.user_agent)
            .or_else(|| meta.user_agent.clone()),
    };
    signin::start_session(state, &user, &meta, row.browser_session_id.as_deref()).await
}

/// Starts a browser session at the hosted pages; answers `(id, cookie token)`. It lives as
/// long as a session may: the shorter of the maximum age and the inactivity timeout.
pub async fn start_browser_session(
    state: &AppState,
    user_id: &str,
) -> Result<(String, String), Error> {
    let now = state.now();
    let id = id::new_id(id::prefix::BROWSER_SESSION, now);
    let secret = token::random_base62(40);
    let ttl = state
        .config
        .session_max_age_ms
        .min(state.config.session_inactivity_ms);
    state
        .store
        .insert_browser_session(
            &id,
            &token::hash(&secret),
            user_id,
            now,
            now.plus_millis(ttl),
        )
        .await?;
    Ok((id, secret))
}

/// The live browser session of a cookie token, if any: `(id, user id)`.
pub async fn find_browser_session(
    state: &AppState,
    cookie_token: &str,
) -> Result<Option<(String, String)>, Error> {
    state
        .store
        .find_browser_session(&token::hash(cookie_token), state.now())
        .await
}

/// `GET /user_management/sessions/logout`: ends the session (and the browser session it came
/// from) and the browser session of the cookie, then answers where to send the browser:
/// `return_to` when it is on the allow-list, otherwise `None` (a "signed out" page). An
/// unknown session id signs the browser out all the same and reveals nothing.
pub async fn logout(
    state: &AppState,
    session_id: Option<&str>,
    return_to: Option<&str>,
    cookie_token: Option<&str>,
) -> Result<Option<String>, Error> {
    if let Some(sid) = session_id.filter(|s| !s.is_empty()) {
        match sessions::end(state, sid, "logout").await {
            Ok(_) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(t) = cookie_token {
        if let Some((bid, _)) = find_browser_session(state, t).await? {
            state.store.end_browser_session(&bid, state.now()).await?;
        }
    }
    match return_to.filter(|r| !r.is_empty()) {
        Some(r) if is_allowed_redirect(state, r).await? => Ok(Some(r.to_owned())),
        _ => Ok(None),
    }
}
