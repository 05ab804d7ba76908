//! Dashboard administrators: accounts (CLI), sign-in with mandatory TOTP, server-side
//! sessions, and the `admin.*` events of everything an admin does.
//!
//! Sign-in reuses the API's rules rather than copying them: the password check is the same
//! Argon2id path with the dummy hash for unknown emails, charged to the store's password
//! throttle (`admin:<email>` and `admin-ip:<peer>` keys) before the hash is computed; the
//! code is checked by `services::mfa::verify` on the admin's factor (a factor row without a
//! user), so the TOTP replay guard, the attempt limit and the per-factor failure limit apply
//! exactly as for the API. Messages never say whether an email belongs to an admin.

use serde_json::json;
use tessera_core::seal::Sealed;
use tessera_core::totp::TotpSecret;
use tessera_core::{id, password, token, validate, Error, Timestamp};
use tessera_store::{AdminRow, AdminSessionRow, Store};

use super::events::{new_event, RequestMeta};
use super::factors::{new_challenge, new_totp_factor, TOTP_SEAL_PURPOSE};
use crate::AppState;

/// Admin passwords are at least this long (longer than users' minimum: admins hold the keys).
pub const ADMIN_MIN_PASSWORD: usize = 12;
/// Idle timeout of a dashboard session (OWASP ASVS 3.3.2 suggests 30 minutes for admins).
pub const IDLE_TIMEOUT_MS: i64 = 30 * 60 * 1000;
/// Absolute lifetime of a dashboard session.
pub const ABSOLUTE_TIMEOUT_MS: i64 = 12 * 60 * 60 * 1000;

pub const ADMIN_CREATED: &str = "admin.created";
pub const ADMIN_REMOVED: &str = "admin.removed";
pub const ADMIN_MFA_RESET: &str = "admin.mfa_reset";
pub const ADMIN_SIGNED_IN: &str = "admin.signed_in";
pub const ADMIN_SIGN_IN_FAILED: &str = "admin.sign_in_failed";
pub const ADMIN_SIGNED_OUT: &str = "admin.signed_out";

/// Who did it, for `admin.*` events: an admin id, or the CLI.
pub fn actor(admin: Option<&AdminRow>) -> serde_json::Value {
    match admin {
        Some(a) => json!({ "admin_id": a.id, "admin_email": a.email }),
        None => json!({ "admin_id": null, "via": "cli" }),
    }
}

/// An `admin.*` event row with the acting admin merged into `data`.
pub fn admin_event(
    now: Timestamp,
    name: &str,
    by: Option<&AdminRow>,
    mut data: serde_json::Value,
) -> tessera_store::EventRow {
    if let (Some(d), serde_json::Value::Object(a)) = (data.as_object_mut(), actor(by)) {
        d.extend(a);
    }
    new_event(now, name, data)
}

fn admin_password_problem(pw: &str) -> Option<String> {
    if pw.chars().count() < ADMIN_MIN_PASSWORD {
        return Some(format!(
            "Admin passwords must be at least {ADMIN_MIN_PASSWORD} characters long."
        ));
    }
    password::strength_problem(pw)
}

/// `tessera admins add`: a new admin (no factor yet: they enrol at their first sign-in).
pub async fn add(store: &Store, now: Timestamp, email: &str, pw: &str) -> Result<AdminRow, Error> {
    let email = validate::email("email", email).map_err(|e| Error::Validation(vec![e]))?;
    if let Some(why) = admin_password_problem(pw) {
        return Err(Error::PasswordStrength(why));
    }
    let pw = pw.to_owned();
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(Error::internal)??;
    let row = AdminRow {
        id: id::new_id("admin", now),
        email,
        password_hash: hash,
        factor_id: None,
        created_at: now,
    };
    let event = admin_event(
        now,
        ADMIN_CREATED,
        None,
        json!({ "id": row.id, "email": row.email }),
    );
    store.insert_admin(&row, &event).await?;
    Ok(row)
}

/// `tessera admins remove`: the admin and their sessions go at once.
pub async fn remove(store: &Store, now: Timestamp, email: &str) -> Result<AdminRow, Error> {
    let email = email.trim().to_lowercase();
    let ev = |a: &AdminRow| {
        admin_event(
            now,
            ADMIN_REMOVED,
            None,
            json!({ "id": a.id, "email": a.email }),
        )
    };
    store.delete_admin(&email, &ev).await?.ok_or_else(|| {
        Error::invalid(
            "email",
            "admin_not_found",
            format!("No admin has the email {email}."),
        )
    })
}

/// `tessera admins reset-mfa`: deletes the admin's factor and ends their sessions.
pub async fn reset_mfa(store: &Store, now: Timestamp, email: &str) -> Result<AdminRow, Error> {
    let email = email.trim().to_lowercase();
    let ev = |a: &AdminRow| {
        admin_event(
            now,
            ADMIN_MFA_RESET,
            None,
            json!({ "id": a.id, "email": a.email }),
        )
    };
    store.reset_admin_mfa(&email, &ev).await?.ok_or_else(|| {
        Error::invalid(
            "email",
            "admin_not_found",
            format!("No admin has the email {email}."),
        )
    })
}

/// What the password step led to.
#[derive(Debug)]
pub struct PasswordStep {
    /// The cookie token of the `mfa` session (the browser keeps it until the code).
    pub token: String,
    /// The admin has no factor yet and must enrol.
    pub enrolling: bool,
}

/// A signed-in dashboard session.
#[derive(Debug, Clone)]
pub struct AdminSession {
    pub admin: AdminRow,
    pub session: AdminSessionRow,
}

fn failed_sign_in() -> Error {
    Error::AuthenticationFailed {
        code: "invalid_credentials",
        message: "That email and password did not match. Please try again.".into(),
    }
}

/// The TOTP issuer: the stored setting, or `--environment-name` before it is seeded.
pub async fn totp_issuer(state: &AppState) -> Result<String, Error> {
    Ok(state
        .store
        .find_totp_issuer()
        .await?
        .unwrap_or_else(|| state.config.environment_name.clone()))
}

/// Step 1: email and password. On success an `mfa` session exists: with a challenge of the
/// admin's factor, or of a new factor to enrol.
pub async fn sign_in_password(
    state: &AppState,
    raw_email: &str,
    pw: &str,
    meta: &RequestMeta,
) -> Result<PasswordStep, Error> {
    let now = state.now();
    let email =
        validate::email("email", raw_email).unwrap_or_else(|_| raw_email.trim().to_lowercase());
    let account_key = format!("admin:{}", email.chars().take(320).collect::<String>());
    let ip_key = meta
        .ip_address
        .as_ref()
        .map(|ip| format!("admin-ip:{}", ip.chars().take(64).collect::<String>()));
    let mut limits = vec![(account_key.as_str(), state.config.password_account_rate)];
    if let Some(k) = &ip_key {
        limits.push((k.as_str(), state.config.password_ip_rate));
    }
    if let Err(retry_after_secs) = state.store.charge_password_attempt(&limits, now).await? {
        return Err(Error::RateLimited {
            message: "Too many failed sign-in attempts.".into(),
            retry_after_secs,
        });
    }
    let admin = state.store.find_admin_by_email(&email).await?;
    let stored = admin.as_ref().map(|a| a.password_hash.clone());
    let pw = pw.to_owned();
    let ok = state
        .hash_work(move |memory| password::verify_with(memory, &pw, stored.as_deref()))
        .await?;
    let Some(admin) = admin.filter(|_| ok) else {
        state
            .store
            .insert_event(&new_event(
                now,
                ADMIN_SIGN_IN_FAILED,
                json!({ "email": email, "ip_address": meta.ip_address, "user_agent": meta.user_agent, "reason": "password" }),
            ))
            .await?;
        return Err(failed_sign_in());
    };
    state.store.refund_password_attempt(&limits).await?;
    state
        .store
        .purge_admin_sessions(
            &admin.id,
            now.minus_millis(IDLE_TIMEOUT_MS),
            now.minus_millis(ABSOLUTE_TIMEOUT_MS),
        )
        .await?;
    let (factor_id, challenge_id, enrolling) = match &admin.factor_id {
        Some(f) => {
            let ch = new_challenge(state, now, f, None);
            state.store.insert_challenge(&ch).await?;
            (f.clone(), ch.id, false)
        }
        None => {
            let issuer = totp_issuer(state).await?;
            let (factor, _) = new_totp_factor(
                state,
                now,
                None,
                issuer,
                admin.email.clone(),
                TotpSecret::generate(),
            )?;
            let ch = new_challenge(state, now, &factor.id, None);
            state.store.insert_factor(&factor, Some(&ch), &[]).await?;
            (factor.id, ch.id, true)
        }
    };
    let token = token::random_base62(43);
    state
        .store
        .insert_admin_session(&AdminSessionRow {
            token_hash: token::hash(&token),
            admin_id: admin.id.clone(),
            stage: "mfa".into(),
            factor_id: Some(factor_id),
            challenge_id: Some(challenge_id),
            created_at: now,
            last_seen_at: now,
        })
        .await?;
    Ok(PasswordStep { token, enrolling })
}

/// The session for a cookie token in `stage`, within both timeouts; seeing it keeps it alive.
pub async fn session(
    state: &AppState,
    cookie_token: &str,
    stage: &str,
) -> Result<Option<AdminSession>, Error> {
    let now = state.now();
    Ok(state
        .store
        .touch_admin_session(
            &token::hash(cookie_token),
            stage,
            now,
            now.minus_millis(IDLE_TIMEOUT_MS),
            now.minus_millis(ABSOLUTE_TIMEOUT_MS),
        )
        .await?
        .map(|(session, admin)| AdminSession { admin, session }))
}

/// Whether the `mfa` session is an enrolment (its factor is not yet the admin's).
pub fn is_enrolling(s: &AdminSession) -> bool {
    s.admin.factor_id.is_none()
}

/// The QR code and secret of the factor being enrolled, opened from its sealed row. Only
/// while enrolling: once confirmed, a secret is never shown again.
pub async fn enrolment_setup(
    state: &AppState,
    s: &AdminSession,
) -> Result<crate::web::page::TotpSetup, Error> {
    if !is_enrolling(s) {
        return Err(Error::Unauthorized);
    }
    let factor_id = s.session.factor_id.clone().unwrap_or_default();
    let f = state.store.get_factor(&factor_id).await?;
    let sealed = Sealed {
        key_id: f.secret_key_id.clone().unwrap_or_default(),
        blob: f.secret_sealed.clone().unwrap_or_default(),
    };
    let bytes = state
        .keys
        .open(TOTP_SEAL_PURPOSE, &f.id, &sealed)
        .map_err(Error::internal)?;
    let secret = TotpSecret::from_bytes(bytes.to_vec()).to_base32();
    let account = f.totp_user.clone().unwrap_or_default();
    let issuer = f.totp_issuer.clone().unwrap_or_default();
    let uri = tessera_core::totp::otpauth_uri(&issuer, &account, &secret);
    let qr = tessera_core::qr::png_data_uri(&uri).map_err(Error::internal)?;
    Ok(crate::web::page::TotpSetup::new(qr, account, &secret))
}

/// What the code step led to.
#[derive(Debug)]
pub enum CodeStep {
    /// Signed in: the new session's cookie token.
    SignedIn(String),
    /// Wrong (or replayed) code; the same step can be tried again.
    Wrong,
}

/// Step 2: the code, checked by the API's verification on the admin's factor. Signing in
/// replaces the `mfa` session with a new active one (new token: no session fixation).
pub async fn sign_in_code(
    state: &AppState,
    s: &AdminSession,
    cookie_token: &str,
    code: &str,
    meta: &RequestMeta,
) -> Result<CodeStep, Error> {
    // The code must be for the admin's confirmed factor, or for the factor being enrolled
    // while the admin has none. A pending enrolment overtaken by another one (confirmed in
    // another browser) can never sign in: its app holds a secret that is not the admin's.
    let enrolling = match (&s.admin.factor_id, &s.session.factor_id) {
        (None, Some(_)) => true,
        (Some(confirmed), Some(pending)) if confirmed == pending => false,
        _ => {
            state
                .store
                .delete_admin_session(&token::hash(cookie_token))
                .await?;
            return Err(Error::Unauthorized);
        }
    };
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let challenge_id = s.session.challenge_id.clone().unwrap_or_default();
    let req = super::mfa::VerifyRequest { code: Some(code) };
    let verified = match super::mfa::verify(state, &challenge_id, req, meta).await {
        Ok((_, valid)) => valid,
        Err(Error::Validation(_)) => false,
        Err(e) => {
            // A dead challenge (too many attempts, expired) ends the pending sign-in: start
            // again. An already verified one was finished by a parallel request, whose
            // promotion still needs this row: leave it (it can never be promoted again).
            if matches!(e, Error::TooManyAttempts(_) | Error::ChallengeExpired(_)) {
                state
                    .store
                    .delete_admin_session(&token::hash(cookie_token))
                    .await?;
            }
            return Err(e);
        }
    };
    let now = state.now();
    if !verified {
        state
            .store
            .insert_event(&admin_event(
                now,
                ADMIN_SIGN_IN_FAILED,
                Some(&s.admin),
                json!({ "reason": "code", "ip_address": meta.ip_address, "user_agent": meta.user_agent }),
            ))
            .await?;
        return Ok(CodeStep::Wrong);
    }
    let token = token::random_base62(43);
    let new = AdminSessionRow {
        token_hash: token::hash(&token),
        admin_id: s.admin.id.clone(),
        stage: "active".into(),
        factor_id: None,
        challenge_id: None,
        created_at: now,
        last_seen_at: now,
    };
    let event = admin_event(
        now,
        ADMIN_SIGNED_IN,
        Some(&s.admin),
        json!({ "enrolled_mfa": enrolling, "ip_address": meta.ip_address, "user_agent": meta.user_agent }),
    );
    let confirm = s.session.factor_id.as_deref().filter(|_| enrolling);
    if state
        .store
        .promote_admin_session(&token::hash(cookie_token), &new, confirm, &event)
        .await?
    {
        Ok(CodeStep::SignedIn(token))
    } else {
        Err(Error::Unauthorized)
    }
}

/// Signs out: the session row is deleted (the cookie is worthless from now on).
pub async fn sign_out(state: &AppState, s: &AdminSession, cookie_token: &str) -> Result<(), Error> {
    state
        .store
        .delete_admin_session(&token::hash(cookie_token))
        .await?;
    state
        .store
        .insert_event(&admin_event(
            state.now(),
            ADMIN_SIGNED_OUT,
            Some(&s.admin),
            json!({}),
        ))
        .await
}

/// Maps a refusal of the code step to words (the verify service's errors).
pub fn refusal_is_restart(e: &Error) -> bool {
    matches!(
        e,
        Error::TooManyAttempts(_)
            | Error::ChallengeExpired(_)
            | Error::ChallengePreviouslyVerified(_)
            | Error::NotFound { .. }
    )
}
