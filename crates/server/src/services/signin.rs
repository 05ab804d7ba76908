//! `POST /user_management/authenticate`: password sign-in with MFA interruptions, the TOTP
//! grant, refresh-token rotation; signed access tokens and their JWKS.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest;
use tessera_core::jwt::{AccessClaims, SigningKey};
use tessera_core::seal::Sealed;
use tessera_core::{id, password, token, validate, Error, FactorKind, MfaInterruption, MfaStep};
use tessera_store::{ListParams, NextRefresh, Order, RefreshOutcome, SigningKeyRow, UserRow};
use tracing::Instrument;

use super::events::{self, RequestMeta};
use super::mfa::{self, VerifyRequest};
use super::sessions::{self, SESSION_CREATED, SESSION_REVOKED};
use crate::metrics::{Grant, SignInResult};
use crate::views::UserView;
use crate::AppState;

pub const MFA_TOTP_GRANT: &str = "urn:workos:oauth:grant-type:mfa-totp";
pub const SIGNING_KEY_PURPOSE: &str = "jwt";
const PASSWORD_SUCCEEDED: &str = "authentication.password_succeeded";
const PASSWORD_FAILED: &str = "authentication.password_failed";

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct AuthenticateRequest {
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub code: Option<String>,
    pub pending_authentication_token: Option<String>,
    pub authentication_challenge_id: Option<String>,
    pub refresh_token: Option<String>,
    /// PKCE verifier of the `authorization_code` grant.
    pub code_verifier: Option<String>,
    /// The end user's IPv4 or IPv6 address (anything else is 422; empty = not sent).
    pub ip_address: Option<String>,
    /// The end user's user agent; stored cut to 512 bytes.
    pub user_agent: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthenticateResponse {
    pub user: UserView,
    pub access_token: String,
    pub refresh_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub authentication_method: Option<&'static str>,
}

/// Creates the first signing key when there is none (first start, or after a manual purge).
pub async fn ensure_signing_key(state: &AppState) -> Result<(), Error> {
    if state.store.find_active_signing_key().await?.is_none() {
        let given = state.config.first_signing_key.as_deref();
        new_signing_key(
            &state.store,
            &state.keys,
            state.now(),
            given.map(|k| &k[..]),
        )
        .await?;
    }
    Ok(())
}

/// Retires the current key (it stays published until its tokens expire) and makes a new one.
pub async fn rotate_signing_key(
    store: &tessera_store::Store,
    keys: &tessera_core::seal::KeyRing,
    now: tessera_core::Timestamp,
) -> Result<String, Error> {
    new_signing_key(store, keys, now, None).await
}

/// Retires the current key and installs `pkcs8` (a test fixture, see
/// [`crate::Config::first_signing_key`]) or, without it, a freshly generated key.
async fn new_signing_key(
    store: &tessera_store::Store,
    keys: &tessera_core::seal::KeyRing,
    now: tessera_core::Timestamp,
    pkcs8: Option<&[u8]>,
) -> Result<String, Error> {
    let kid = id::new_id("kid", now);
    let key = match pkcs8 {
        Some(der) => SigningKey::from_bytes(kid, der).ok_or_else(|| {
            Error::internal("the configured signing key is not an RSA PKCS#8 key")
        })?,
        None => tokio::task::spawn_blocking(move || SigningKey::generate(kid))
            .await
            .map_err(Error::internal)??,
    };
    let sealed = keys
        .seal(SIGNING_KEY_PURPOSE, key.kid(), &key.to_bytes())
        .map_err(Error::internal)?;
    store
        .rotate_signing_key(
            &SigningKeyRow {
                kid: key.kid().to_owned(),
                secret_key_id: sealed.key_id,
                secret_sealed: sealed.blob,
                public_jwk: key.public_jwk().to_string(),
                created_at: now,
                retired_at: None,
            },
            now,
        )
        .await?;
    Ok(key.kid().to_owned())
}

async fn active_signing_key(state: &AppState) -> Result<SigningKey, Error> {
    let row = state
        .store
        .find_active_signing_key()
        .await?
        .ok_or_else(|| Error::internal("no signing key"))?;
    let sealed = Sealed {
        key_id: row.secret_key_id,
        blob: row.secret_sealed,
    };
    let bytes = state
        .keys
        .open(SIGNING_KEY_PURPOSE, &row.kid, &sealed)
        .map_err(Error::internal)?;
    SigningKey::from_bytes(row.kid, &bytes).ok_or_else(|| Error::internal("corrupt signing key"))
}

/// The JWKS for `GET /sso/jwks/:client_id`: current keys and retired keys whose tokens may
/// still be valid.
pub async fn jwks(state: &AppState) -> Result<serde_json::Value, Error> {
    let since = state.now().minus_millis(state.config.access_token_ttl_ms);
    let keys: Vec<serde_json::Value> = state
        .store
        .published_signing_keys(since)
        .await?
        .iter()
        .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
        .collect();
    Ok(json!({ "keys": keys }))
}

/// Checks `client_id` and `client_secret` (an API key); returns the API key's id.
pub(crate) async fn check_client(
    state: &AppState,
    req: &AuthenticateRequest,
) -> Result<String, Error> {
    let id_ok = req
        .client_id
        .as_deref()
        .is_some_and(|c| c == &*state.client_id);
    let secret = req.client_secret.as_deref().unwrap_or_default();
    let key_id = super::api_keys::authenticate_key(state, secret).await.ok();
    match key_id {
        Some(key_id) if id_ok => Ok(key_id),
        _ => Err(Error::InvalidClient),
    }
}

pub(crate) fn required<'a>(v: &'a Option<String>, field: &str) -> Result<&'a str, Error> {
    v.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::invalid(
            field,
            "string_required",
            format!("{field} is required for this grant_type."),
        )
    })
}

fn failed(code: &'static str, message: impl Into<String>) -> Error {
    Error::AuthenticationFailed {
        code,
        message: message.into(),
    }
}

/// The body's `ip_address`, parsed (422 naming the field when it is not an address);
/// `None` when absent or empty, as some SDKs send an empty string for "not given".
pub(crate) fn body_ip(req: &AuthenticateRequest) -> Result<Option<String>, Error> {
    match req.ip_address.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(ip) => validate::ip_address("ip_address", ip)
            .map(Some)
            .map_err(|e| Error::Validation(vec![e])),
    }
}

/// Request metadata: the SDK's `ip_address`/`user_agent` (the end user's) win over the
/// connection's (the calling backend's). Both end up in events, so both are bounded here:
/// the address is parsed and canonical, the user agent cut to 512 bytes.
fn effective_meta(req: &AuthenticateRequest, meta: &RequestMeta) -> Result<RequestMeta, Error> {
    Ok(RequestMeta {
        ip_address: body_ip(req)?.or_else(|| meta.ip_address.clone()),
        user_agent: req
            .user_agent
            .as_deref()
            .map(validate::user_agent)
            .or_else(|| meta.user_agent.clone()),
    })
}

/// `POST /user_management/authenticate`, counted by grant and outcome.
pub async fn authenticate(
    state: &AppState,
    req: AuthenticateRequest,
    meta: &RequestMeta,
) -> Result<AuthenticateResponse, Error> {
    let Some(grant) = Grant::of_grant_type(req.grant_type.as_deref().unwrap_or("")) else {
        return authenticate_grant(state, req, meta).await;
    };
    if grant == Grant::Password {
        // Run to the end even if the client goes away and this future is dropped: the
        // attempt is charged and its hash cannot be stopped, so its outcome (the event, the
        // refund, the rehash, the count) must be written too.
        let (state, meta) = (state.clone(), meta.clone());
        return tokio::spawn(
            async move {
                let r = authenticate_grant(&state, req, &meta).await;
                state.metrics.sign_in(grant, SignInResult::of(&r));
                r
            }
            .in_current_span(),
        )
        .await
        .map_err(Error::internal)?;
    }
    let r = authenticate_grant(state, req, meta).await;
    state.metrics.sign_in(grant, SignInResult::of(&r));
    r
}

async fn authenticate_grant(
    state: &AppState,
    req: AuthenticateRequest,
    meta: &RequestMeta,
) -> Result<AuthenticateResponse, Error> {
    let grant = req.grant_type.clone().unwrap_or_default();
    if !matches!(
        grant.as_str(),
        "password" | MFA_TOTP_GRANT | "refresh_token" | super::authkit::CODE_GRANT
    ) {
        return Err(Error::UnsupportedGrantType(
            grant.chars().take(100).collect(),
        ));
    }
    if grant == super::authkit::CODE_GRANT {
        // Public clients redeem codes with a PKCE verifier instead of a secret.
        return super::authkit::code_grant(state, &req, meta).await;
    }
    let api_key_id = check_client(state, &req).await?;
    let meta = effective_meta(&req, meta)?;
    match grant.as_str() {
        // In a task of its own (see `authenticate`), so it runs to the end.
        "password" => password_grant(state, &req, &meta).await,
        MFA_TOTP_GRANT => totp_grant(state, &req, &meta).await,
        _ => refresh_grant(state, &req, &api_key_id).await,
    }
}

fn password_event(
    status: &str,
    meta: &RequestMeta,
    user: Option<&UserRow>,
    email: &str,
) -> serde_json::Value {
    json!({
        "type": "password",
        "status": status,
        "ip_address": meta.ip_address,
        "user_agent": meta.user_agent,
        "user_id": user.map(|u| u.id.clone()),
        "email": email,
    })
}

/// What a correct password leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordStep {
    /// Signed in.
    Done,
    /// The user has TOTP factors (their ids): a code must follow.
    Challenge(Vec<String>),
    /// MFA is required and the user has no TOTP factor: enrolment must follow.
    Enrol,
}

async fn password_grant(
    state: &AppState,
    req: &AuthenticateRequest,
    meta: &RequestMeta,
) -> Result<AuthenticateResponse, Error> {
    let raw_email = required(&req.email, "email")?;
    let pw = required(&req.password, "password")?;
    let limit_ip = body_ip(req)?;
    // Already in its own task (see `authenticate`), so the unspawned check.
    let (user, step) = check_password_to_end(
        state,
        raw_email.to_owned(),
        pw.to_owned(),
        limit_ip,
        meta.clone(),
    )
    .await?;
    if step == PasswordStep::Done {
        return start_session(state, &user, meta, None).await;
    }
    let step = match step {
        PasswordStep::Challenge(totp_factor_ids) => MfaStep::Challenge { totp_factor_ids },
        PasswordStep::Enrol | PasswordStep::Done => MfaStep::Enrollment,
    };
    let pending_authentication_token = new_pending_token(state, &user.id).await?;
    Err(Error::AuthenticationFlow(Box::new(MfaInterruption {
        step,
        pending_authentication_token,
        user: serde_json::to_value(UserView::from(&user)).map_err(Error::internal)?,
    })))
}

/// A pending authentication token for `user_id` (between the password and the MFA step).
pub async fn new_pending_token(state: &AppState, user_id: &str) -> Result<String, Error> {
    let now = state.now();
    let pending = token::random_base62(32);
    state
        .store
        .insert_pending_token(
            &token::hash(&pending),
            user_id,
            now,
            now.plus_millis(state.config.pending_token_ttl_ms),
        )
        .await?;
    Ok(pending)
}

/// The password step of every sign-in (the API's password grant and the hosted page):
/// throttling, the constant-work check, events, the rehash, and what must follow. `limit_ip`
/// is the end user's address when known, parsed (the per-IP limit applies only then); `meta`
/// must come bounded (`effective_meta`, or the `Meta` extractor).
///
/// Runs in its own task, to the end even if the caller's future is dropped (a browser or
/// client that goes away): the attempt is charged before the hash, which cannot be stopped,
/// so its outcome (the event, the refund, the rehash) must be written too.
pub async fn check_password(
    state: &AppState,
    raw_email: &str,
    pw: &str,
    limit_ip: Option<&str>,
    meta: &RequestMeta,
) -> Result<(UserRow, PasswordStep), Error> {
    let state = state.clone();
    let (raw_email, pw, limit_ip, meta) = (
        raw_email.to_owned(),
        pw.to_owned(),
        limit_ip.map(str::to_owned),
        meta.clone(),
    );
    tokio::spawn(
        async move {
            let r = check_password_to_end(&state, raw_email, pw, limit_ip, meta).await;
            // The hosted pages' password step (the API's grant is counted by `authenticate`),
            // counted here so that an attempt whose browser went away counts too.
            let result = match &r {
                Ok((_, PasswordStep::Done)) => SignInResult::Success,
                Ok(_) => SignInResult::MfaRequired,
                Err(e) => SignInResult::of_error(e),
            };
            state.metrics.sign_in(Grant::HostedPassword, result);
            r
        }
        .in_current_span(),
    )
    .await
    .map_err(Error::internal)?
}

/// [`check_password`] in the caller's task: only for callers that already run in a task of
/// their own.
async fn check_password_to_end(
    state: &AppState,
    raw_email: String,
    pw: String,
    limit_ip: Option<String>,
    meta: RequestMeta,
) -> Result<(UserRow, PasswordStep), Error> {
    let raw_email = raw_email.as_str();
    let meta = &meta;
    let now = state.now();
    let email = match validate::email("email", raw_email) {
        Ok(e) => e,
        // No account has an address over the RFC 5321 limit, and one would be stored (as
        // the throttle key, in the event): refused before anything is written.
        Err(e) if e.code == "email_too_long" => return Err(Error::Validation(vec![e])),
        // Malformed but short: treated like an unknown email (charged, dummy hash).
        Err(_) => raw_email.trim().to_lowercase(),
    };
    let user = state.store.find_user_by_email(&email).await?;
    // Attempts are charged before the (slow) password check, per email whether or not the
    // account exists, so the limit neither reveals accounts nor can be overshot in parallel.
    // The per-IP limit applies only when the caller names the end user's IP (`ip_address`):
    // the connection's address is the calling backend, shared by all its users.
    let account_key = format!("account:{email}");
    let ip_key = limit_ip.map(|ip| format!("ip:{ip}"));
    let mut limits = vec![(account_key.as_str(), state.config.password_account_rate)];
    if let Some(k) = &ip_key {
        limits.push((k.as_str(), state.config.password_ip_rate));
    }
    if let Err(retry_after_secs) = state.store.charge_password_attempt(&limits, now).await? {
        return Err(Error::RateLimited {
            message: "Too many failed sign-in attempts. Try again later.".into(),
            retry_after_secs,
        });
    }
    // Unknown users are checked against a dummy hash: same work, same answer, same timing.
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let verified = stored.clone();
    let (ok, rehash) = state
        .hash_work(move |memory| password::verify_and_rehash_with(memory, &pw, stored.as_deref()))
        .await?;
    if !ok {
        events::record(
            state,
            PASSWORD_FAILED,
            password_event("failed", meta, user.as_ref(), &email),
        )
        .await?;
        return Err(failed("invalid_credentials", "Invalid email or password."));
    }
    state.store.refund_password_attempt(&limits).await?;
    let user = user.ok_or_else(|| Error::internal("verified without a user"))?;
    if let (Some(new_hash), Some(old_hash)) = (rehash, verified) {
        // An imported (or older) hash is replaced by one with today's parameters, but only
        // if it is still the hash just verified: a password changed meanwhile stays.
        state
            .store
            .replace_password_hash(&user.id, &old_hash, &new_hash)
            .await?;
    }
    events::record(
        state,
        PASSWORD_SUCCEEDED,
        password_event("succeeded", meta, Some(&user), &email),
    )
    .await?;
    let factors = state
        .store
        .list_user_factors(
            &user.id,
            &ListParams {
                limit: 100,
                order: Order::Asc,
                ..Default::default()
            },
        )
        .await?;
    let totp: Vec<String> = factors
        .data
        .iter()
        .filter(|f| f.r#type == FactorKind::Totp)
        .map(|f| f.id.clone())
        .collect();
    let mfa_required = state
        .store
        .find_environment()
        .await?
        .is_some_and(|e| e.mfa_required);
    let step = if !totp.is_empty() {
        PasswordStep::Challenge(totp)
    } else if mfa_required {
        PasswordStep::Enrol
    } else {
        PasswordStep::Done
    };
    Ok((user, step))
}

async fn totp_grant(
    state: &AppState,
    req: &AuthenticateRequest,
    meta: &RequestMeta,
) -> Result<AuthenticateResponse, Error> {
    let code = required(&req.code, "code")?;
    let pending = required(
        &req.pending_authentication_token,
        "pending_authentication_token",
    )?;
    let challenge_id = required(
        &req.authentication_challenge_id,
        "authentication_challenge_id",
    )?;
    let user = complete_totp(state, pending, challenge_id, code, meta).await?;
    start_session(state, &user, meta, None).await
}

/// The MFA step of every sign-in (the API's TOTP grant and the hosted code page): the code is
/// checked by the same verification transaction as `POST /auth/challenges/:id/verify`, then
/// the pending token is used up. Answers the signed-in user.
pub async fn complete_totp(
    state: &AppState,
    pending: &str,
    challenge_id: &str,
    code: &str,
    meta: &RequestMeta,
) -> Result<UserRow, Error> {
    let now = state.now();
    let pending_hash = token::hash(pending);
    let bad_pending = || {
        failed(
            "invalid_pending_authentication_token",
            "The pending_authentication_token has expired or is invalid.",
        )
    };
    let user_id = state
        .store
        .find_pending_user(&pending_hash, now)
        .await?
        .ok_or_else(bad_pending)?;
    // The challenge must belong to a TOTP factor of the pending token's user.
    let context = state.store.find_challenge_context(challenge_id).await?;
    let belongs = context.as_ref().is_some_and(|(_, f, _)| {
        f.user_id.as_deref() == Some(user_id.as_str()) && f.r#type == FactorKind::Totp
    });
    if !belongs {
        return Err(failed(
            "invalid_authentication_challenge",
            format!(
                "The authentication challenge '{challenge_id}' does not belong to this sign-in."
            ),
        ));
    }
    let verified = mfa::verify(
        state,
        challenge_id,
        VerifyRequest {
            code: Some(code.to_owned()),
        },
        meta,
    )
    .await;
    match verified {
        Ok((_, true)) => {}
        Ok((_, false)) => {
            return Err(failed(
                "invalid_one_time_code",
                "The one-time code is invalid or has expired.",
            ))
        }
        Err(Error::ChallengeExpired(_)) => {
            return Err(failed(
                "one_time_code_expired",
                "The authentication challenge has expired.",
            ))
        }
        Err(Error::ChallengePreviouslyVerified(_)) => {
            return Err(failed(
                "one_time_code_previously_used",
                "The authentication challenge was already used.",
            ))
        }
        Err(e) => return Err(e),
    }
    if !state
        .store
        .consume_pending_token(&pending_hash, &user_id, now)
        .await?
    {
        return Err(bad_pending());
    }
    state.store.get_user(&user_id).await
}

/// Creates a session (with its limits and where it came from) and its tokens. Every sign-in
/// ends here: password, TOTP and authorization-code grants, and the hosted pages' codes.
pub(crate) async fn start_session(
    state: &AppState,
    user: &UserRow,
    meta: &RequestMeta,
    browser_session_id: Option<&str>,
) -> Result<AuthenticateResponse, Error> {
    let now = state.now();
    let session_id = id::new_id(id::prefix::SESSION, now);
    let refresh = token::random_base62(40);
    let refresh_hash = token::hash(&refresh);
    let ip = sessions::truncated(meta.ip_address.as_deref(), sessions::MAX_IP);
    let agent = sessions::truncated(meta.user_agent.as_deref(), sessions::MAX_USER_AGENT);
    let new = tessera_store::NewSession {
        id: &session_id,
        user_id: &user.id,
        auth_method: "password",
        ip_address: ip.as_deref(),
        user_agent: agent.as_deref(),
        browser_session_id,
        refresh_hash: &refresh_hash,
        now,
        expires_at: now.plus_millis(state.config.session_max_age_ms),
    };
    state.store.create_session(&new).await?;
    let row = tessera_store::SessionRow {
        id: session_id.clone(),
        user_id: user.id.clone(),
        auth_method: new.auth_method.to_owned(),
        ip_address: ip.clone(),
        user_agent: agent.clone(),
        created_at: now,
        updated_at: now,
        expires_at: new.expires_at,
        last_active_at: now,
        revoked_at: None,
        end_reason: None,
        browser_session_id: browser_session_id.map(str::to_owned),
    };
    events::record(
        state,
        SESSION_CREATED,
        sessions::event_data(state, &row, None),
    )
    .await?;
    let mut user = user.clone();
    user.last_sign_in_at = Some(now);
    Ok(AuthenticateResponse {
        access_token: access_token(state, &user.id, &session_id).await?,
        refresh_token: refresh,
        user: UserView::from(&user),
        authentication_method: Some("Password"),
    })
}

async fn access_token(state: &AppState, user_id: &str, session_id: &str) -> Result<String, Error> {
    let now = state.now();
    let key = active_signing_key(state).await?;
    key.sign(&AccessClaims {
        iss: state.config.issuer().to_owned(),
        aud: state.client_id.to_string(),
        sub: user_id.to_owned(),
        sid: session_id.to_owned(),
        iat: now.unix_seconds(),
        exp: now
            .plus_millis(state.config.access_token_ttl_ms)
            .unix_seconds(),
        jti: token::random_base62(22),
    })
}

/// Seal purpose of the answer kept for refresh retries within the grace.
pub const REFRESH_GRACE_PURPOSE: &str = "refresh_grace";

/// The answer of a rotation, as sealed for retries.
#[derive(Serialize, Deserialize)]
struct RefreshPair {
    access_token: String,
    refresh_token: String,
}

/// The refresh grant, in this order, so that nothing can fail after the presented token is
/// used up:
///
/// 1. find the token's live session (unknown token or ended session: `invalid_grant`);
/// 2. mint the next access token and refresh token for that session, and seal the pair for
///    retries (the key is derived from the master key and the presented token);
/// 3. present the token in one transaction: rotate it, or (used moments ago by the same
///    client, within `refresh_reuse_grace_ms`) give back the sealed pair of that rotation,
///    or (any other reuse) revoke the session;
/// 4. answer.
async fn refresh_grant(
    state: &AppState,
    req: &AuthenticateRequest,
    api_key_id: &str,
) -> Result<AuthenticateResponse, Error> {
    let presented = required(&req.refresh_token, "refresh_token")?;
    let now = state.now();
    let hash = token::hash(presented);
    let client = retry_client(api_key_id, req);
    let client = client.as_str();
    let idle_since = sessions::idle_since(state, now);
    let invalid =
        || Error::InvalidGrant("The refresh token is invalid or its session has ended.".into());
    let found = state
        .store
        .find_refresh_token(&hash, now, idle_since)
        .await?
        .ok_or_else(invalid)?;
    // The sealed pair is bound to this token's row; its hash is public within the database.
    let row_id = data_encoding::HEXLOWER.encode(&hash);
    let minted = if found.used_at.is_none() {
        let pair = RefreshPair {
            access_token: access_token(state, &found.user_id, &found.session_id).await?,
            refresh_token: token::random_base62(40),
        };
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(&pair).map_err(Error::internal)?);
        let sealed = state
            .keys
            .seal_with_secret(REFRESH_GRACE_PURPOSE, &row_id, presented.as_bytes(), &plain)
            .map_err(Error::internal)?;
        let next_hash = token::hash(&pair.refresh_token);
        Some((pair, next_hash, sealed))
    } else {
        None
    };
    let next = minted.as_ref().map(|(_, next_hash, sealed)| NextRefresh {
        hash: next_hash,
        grace_until: now.plus_millis(state.config.refresh_reuse_grace_ms),
        client,
        key_id: &sealed.key_id,
        sealed: &sealed.blob,
    });
    let outcome = state
        .store
        .rotate_refresh_token(&hash, next.as_ref(), client, now, idle_since)
        .await?;
    match outcome {
        RefreshOutcome::Rotated { user_id, .. } => {
            let (pair, _, _) = minted.ok_or_else(|| Error::internal("rotated without a pair"))?;
            refresh_answer(state, &user_id, pair).await
        }
        RefreshOutcome::Replayed {
            session_id,
            user_id,
            key_id,
            sealed,
        } => {
            let plain = state
                .keys
                .open_with_secret(
                    REFRESH_GRACE_PURPOSE,
                    &row_id,
                    presented.as_bytes(),
                    &Sealed {
                        key_id,
                        blob: sealed,
                    },
                )
                .map_err(Error::internal)?;
            let pair: RefreshPair = serde_json::from_slice(&plain).map_err(Error::internal)?;
            tracing::info!(
                session_id,
                "a refresh token was presented again within the retry grace; the same answer was given"
            );
            refresh_answer(state, &user_id, pair).await
        }
        RefreshOutcome::ReuseDetected { session_id, .. } => {
            tracing::warn!(
                session_id,
                "a used refresh token was presented again; its session is revoked"
            );
            if let Some(row) = state.store.find_session(&session_id).await? {
                let data = sessions::event_data(state, &row, Some("refresh_token_reuse"));
                events::record(state, SESSION_REVOKED, data).await?;
            }
            Err(Error::InvalidGrant(
                "The refresh token was already used; the session has been revoked.".into(),
            ))
        }
        RefreshOutcome::Invalid => Err(invalid()),
    }
}

/// Who may retry a refresh within the grace: the same API key, for the same end user as far as
/// the request says (`ip_address` and `user_agent`, which the SDKs forward when the app passes
/// them). All of a backend's users share its API key, so without them a thief replaying a
/// stolen token through the same backend within the grace would get the answer; with them, a
/// presentation from another address or browser is reuse. Stored as a SHA-256 (hex), not in
/// clear.
fn retry_client(api_key_id: &str, req: &AuthenticateRequest) -> String {
    let mut material = Vec::new();
    for part in [
        Some(api_key_id),
        req.ip_address.as_deref(),
        req.user_agent.as_deref(),
    ] {
        // Length-prefixed, so no two different triples give the same bytes.
        let part = part.unwrap_or_default().as_bytes();
        material.extend_from_slice(&(part.len() as u64).to_be_bytes());
        material.extend_from_slice(part);
    }
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(&material))
}

async fn refresh_answer(
    state: &AppState,
    user_id: &str,
    pair: RefreshPair,
) -> Result<AuthenticateResponse, Error> {
    let user = state.store.get_user(user_id).await?;
    Ok(AuthenticateResponse {
        access_token: pair.access_token,
        refresh_token: pair.refresh_token,
        user: UserView::from(&user),
        authentication_method: None,
    })
}

/// Erases sealed refresh answers whose grace is over, every minute, until the server stops
/// (they are useless without the token they answered, but need not stay on disk).
pub async fn sweep_refresh_grace(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        if let Err(e) = state.store.clear_expired_refresh_grace(state.now()).await {
            tracing::warn!(error = %e, "cannot erase expired refresh answers");
        }
    }
}
