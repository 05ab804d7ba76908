//! `POST /user_management/authenticate`: password sign-in with MFA interruptions, the TOTP
//! grant, refresh-token rotation; signed access tokens and their JWKS.

use serde::{Deserialize, Serialize};
use serde_json::json;
use tessera_core::jwt::{AccessClaims, SigningKey};
use tessera_core::seal::Sealed;
use tessera_core::{id, password, token, validate, Error};
use tessera_store::{ListParams, Order, RefreshOutcome, SigningKeyRow, UserRow};

use super::events::{self, RequestMeta};
use super::mfa::{self, VerifyRequest};
use crate::views::UserView;
use crate::AppState;

pub const MFA_TOTP_GRANT: &str = "urn:workos:oauth:grant-type:mfa-totp";
const SIGNING_KEY_PURPOSE: &str = "jwt";
const PASSWORD_SUCCEEDED: &str = "authentication.password_succeeded";
const PASSWORD_FAILED: &str = "authentication.password_failed";
const SESSION_CREATED: &str = "session.created";
const SESSION_REVOKED: &str = "session.revoked";

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
    pub ip_address: Option<String>,
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
    let sealed = keys.seal(SIGNING_KEY_PURPOSE, key.kid(), &key.to_bytes());
    store.retire_signing_keys(now.millis()).await?;
    store
        .insert_signing_key(&SigningKeyRow {
            kid: key.kid().to_owned(),
            secret_key_id: sealed.key_id,
            secret_sealed: sealed.blob,
            public_jwk: key.public_jwk().to_string(),
            created_at: now.millis(),
            retired_at: None,
        })
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
    let since = state.now().millis() - state.config.access_token_ttl_ms;
    let keys: Vec<serde_json::Value> = state
        .store
        .published_signing_keys(since)
        .await?
        .iter()
        .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
        .collect();
    Ok(json!({ "keys": keys }))
}

async fn check_client(state: &AppState, req: &AuthenticateRequest) -> Result<(), Error> {
    let id_ok = req
        .client_id
        .as_deref()
        .is_some_and(|c| c == &*state.client_id);
    let secret = req.client_secret.as_deref().unwrap_or_default();
    let secret_ok = crate::extract::authenticate_key(state, secret)
        .await
        .is_ok();
    if id_ok && secret_ok {
        Ok(())
    } else {
        Err(Error::InvalidClient)
    }
}

fn required<'a>(v: &'a Option<String>, field: &str) -> Result<&'a str, Error> {
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

/// Request metadata: the SDK's `ip_address`/`user_agent` (the end user's) win over the
/// connection's (the calling backend's).
fn effective_meta(req: &AuthenticateRequest, meta: &RequestMeta) -> RequestMeta {
    RequestMeta {
        ip_address: req.ip_address.clone().or_else(|| meta.ip_address.clone()),
        user_agent: req.user_agent.clone().or_else(|| meta.user_agent.clone()),
    }
}

pub async fn authenticate(
    state: &AppState,
    req: AuthenticateRequest,
    meta: &RequestMeta,
) -> Result<AuthenticateResponse, Error> {
    let grant = req.grant_type.clone().unwrap_or_default();
    if !matches!(
        grant.as_str(),
        "password" | MFA_TOTP_GRANT | "refresh_token"
    ) {
        return Err(Error::UnsupportedGrantType(
            grant.chars().take(100).collect(),
        ));
    }
    check_client(state, &req).await?;
    let meta = effective_meta(&req, meta);
    match grant.as_str() {
        "password" => password_grant(state, &req, &meta).await,
        MFA_TOTP_GRANT => totp_grant(state, &req, &meta).await,
        _ => refresh_grant(state, &req).await,
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

async fn password_grant(
    state: &AppState,
    req: &AuthenticateRequest,
    meta: &RequestMeta,
) -> Result<AuthenticateResponse, Error> {
    let raw_email = required(&req.email, "email")?;
    let pw = required(&req.password, "password")?.to_owned();
    let now = state.now();
    let email = validate::email("email", raw_email).unwrap_or_else(|_| raw_email.to_lowercase());
    let user = state.store.find_user_by_email(&email).await?;
    // Attempts are charged before the (slow) password check, per email whether or not the
    // account exists, so the limit neither reveals accounts nor can be overshot in parallel.
    // The per-IP limit applies only when the caller names the end user's IP (`ip_address`):
    // the connection's address is the calling backend, shared by all its users.
    let account_key = format!("account:{email}");
    let ip_key = req
        .ip_address
        .as_ref()
        .map(|ip| format!("ip:{}", ip.chars().take(64).collect::<String>()));
    let mut limits = vec![(account_key.as_str(), state.config.password_account_rate)];
    if let Some(k) = &ip_key {
        limits.push((k.as_str(), state.config.password_ip_rate));
    }
    if let Err(retry_after_secs) = state
        .store
        .charge_password_attempt(&limits, now.millis())
        .await?
    {
        return Err(Error::RateLimited {
            message: "Too many failed sign-in attempts. Try again later.".into(),
            retry_after_secs,
        });
    }
    // Unknown users are checked against a dummy hash: same work, same answer, same timing.
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = state
        .hash_work(move |memory| password::verify_with(memory, &pw, stored.as_deref()))
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
    let totp: Vec<serde_json::Value> = factors
        .data
        .iter()
        .filter(|f| f.r#type == "totp")
        .map(|f| json!({ "id": f.id, "type": f.r#type }))
        .collect();
    let mfa_required = state
        .store
        .find_environment()
        .await?
        .is_some_and(|e| e.mfa_required);
    if !totp.is_empty() || mfa_required {
        let pending = token::random_base62(32);
        state
            .store
            .insert_pending_token(
                &token::hash(&pending),
                &user.id,
                now.millis(),
                now.plus_millis(state.config.pending_token_ttl_ms).millis(),
            )
            .await?;
        let body = if totp.is_empty() {
            json!({
                "code": "mfa_enrollment",
                "message": "The user must enroll in MFA to finish authenticating.",
                "pending_authentication_token": pending,
                "user": UserView::from(&user),
            })
        } else {
            json!({
                "code": "mfa_challenge",
                "message": "The user must complete an MFA challenge to finish authenticating.",
                "pending_authentication_token": pending,
                "authentication_factors": totp,
                "user": UserView::from(&user),
            })
        };
        return Err(Error::AuthenticationFlow(body));
    }
    start_session(state, &user, meta).await
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
        .find_pending_user(&pending_hash, now.millis())
        .await?
        .ok_or_else(bad_pending)?;
    // The challenge must belong to a TOTP factor of the pending token's user.
    let context = state.store.find_challenge_context(challenge_id).await?;
    let belongs = context.as_ref().is_some_and(|(_, f, _)| {
        f.user_id.as_deref() == Some(user_id.as_str()) && f.r#type == "totp"
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
        .consume_pending_token(&pending_hash, &user_id, now.millis())
        .await?
    {
        return Err(bad_pending());
    }
    let user = state.store.get_user(&user_id).await?;
    start_session(state, &user, meta).await
}

async fn start_session(
    state: &AppState,
    user: &UserRow,
    meta: &RequestMeta,
) -> Result<AuthenticateResponse, Error> {
    let now = state.now();
    let session_id = id::new_id(id::prefix::SESSION, now);
    let refresh = token::random_base62(40);
    state
        .store
        .create_session(&session_id, &user.id, &token::hash(&refresh), now.millis())
        .await?;
    events::record(
        state,
        SESSION_CREATED,
        session_event(&session_id, &user.id, meta, now.millis(), None),
    )
    .await?;
    let mut user = user.clone();
    user.last_sign_in_at = Some(now.millis());
    Ok(AuthenticateResponse {
        access_token: access_token(state, &user.id, &session_id).await?,
        refresh_token: refresh,
        user: UserView::from(&user),
        authentication_method: Some("Password"),
    })
}

/// `data` of `session.*` events: the WorkOS session object (Python v5 parses it strictly).
fn session_event(
    id: &str,
    user_id: &str,
    meta: &RequestMeta,
    created_at: i64,
    reason: Option<&str>,
) -> serde_json::Value {
    let ts = tessera_core::Timestamp(created_at);
    let mut v = json!({
        "object": "session",
        "id": id,
        "user_id": user_id,
        "organization_id": null,
        "ip_address": meta.ip_address,
        "user_agent": meta.user_agent,
        "created_at": ts,
        "updated_at": ts,
    });
    if let Some(r) = reason {
        v["reason"] = json!(r);
    }
    v
}

async fn access_token(state: &AppState, user_id: &str, session_id: &str) -> Result<String, Error> {
    let now = state.now();
    let key = active_signing_key(state).await?;
    key.sign(&AccessClaims {
        iss: state.config.issuer.clone(),
        sub: user_id.to_owned(),
        sid: session_id.to_owned(),
        iat: now.unix_seconds(),
        exp: now
            .plus_millis(state.config.access_token_ttl_ms)
            .unix_seconds(),
        jti: token::random_base62(22),
    })
}

async fn refresh_grant(
    state: &AppState,
    req: &AuthenticateRequest,
) -> Result<AuthenticateResponse, Error> {
    let presented = required(&req.refresh_token, "refresh_token")?;
    let now = state.now();
    let next = token::random_base62(40);
    match state
        .store
        .rotate_refresh_token(&token::hash(presented), &token::hash(&next), now.millis())
        .await?
    {
        RefreshOutcome::Rotated {
            session_id,
            user_id,
        } => {
            let user = state.store.get_user(&user_id).await?;
            Ok(AuthenticateResponse {
                access_token: access_token(state, &user.id, &session_id).await?,
                refresh_token: next,
                user: UserView::from(&user),
                authentication_method: None,
            })
        }
        RefreshOutcome::ReuseDetected {
            session_id,
            user_id,
        } => {
            tracing::warn!(
                session_id,
                "a used refresh token was presented again; its session is revoked"
            );
            let data = session_event(
                &session_id,
                &user_id,
                &RequestMeta::default(),
                now.millis(),
                Some("refresh_token_reuse"),
            );
            events::record(state, SESSION_REVOKED, data).await?;
            Err(Error::InvalidGrant(
                "The refresh token was already used; the session has been revoked.".into(),
            ))
        }
        RefreshOutcome::Invalid => Err(Error::InvalidGrant(
            "The refresh token is invalid or its session has ended.".into(),
        )),
    }
}
