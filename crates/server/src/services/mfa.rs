//! The standalone MFA API: enrol, read, delete factors; challenge; verify.
//!
//! Verification evaluates the code here (pure, constant-time) and hands the outcome to the
//! store, which applies every rule that must hold across nodes in one transaction: the TOTP
//! replay guard, per-factor and per-user failure limits, the lockout after consecutive
//! failures, the per-challenge attempt limit and single use.

use serde::Deserialize;
use serde_json::json;
use tessera_core::error::Entity;
use tessera_core::seal::Sealed;
use tessera_core::totp::{self, TotpSecret};
use tessera_core::validate::{self, Problems, MAX_TEXT};
use tessera_core::{id, otp, Error, FactorKind, FieldError, Timestamp};
use tessera_store::{
    AttemptKind, ChallengeRow, FactorRow, Refusal, Rejection, Store, VerifyAttempt, VerifyOutcome,
};

use super::events::{self, RequestMeta};
use super::factors::{new_challenge, new_totp_factor, TOTP_SEAL_PURPOSE};
use crate::metrics::{SmsResult, Verification};
use crate::views::{ChallengeView, FactorView};
use crate::AppState;

/// Purpose tag of one-time-code MACs.
const OTP_MAC_PURPOSE: &str = "otp";
const MAX_SMS_TEMPLATE: usize = 640;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct EnrollFactorRequest {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub phone_number: Option<String>,
    pub totp_issuer: Option<String>,
    pub totp_user: Option<String>,
    pub user_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ChallengeRequest {
    pub sms_template: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct VerifyRequest {
    pub code: Option<String>,
}

fn required(p: &mut Problems, field: &str, v: &Option<String>) {
    match v {
        Some(v) => {
            p.check(validate::required_text(field, v, MAX_TEXT));
        }
        None => p.push(FieldError::new(
            field,
            "string_required",
            format!("{field} is required."),
        )),
    }
}

/// `POST /auth/factors/enroll`.
pub async fn enroll(state: &AppState, req: EnrollFactorRequest) -> Result<FactorView, Error> {
    let mut p = Problems::default();
    let name = req.kind.clone().unwrap_or_default();
    let kind = FactorKind::parse(&name);
    match kind {
        Some(FactorKind::Totp) => {
            required(&mut p, "totp_issuer", &req.totp_issuer);
            required(&mut p, "totp_user", &req.totp_user);
        }
        Some(FactorKind::Sms) => {
            if req.phone_number.is_none() {
                p.push(FieldError::new(
                    "phone_number",
                    "string_required",
                    "phone_number is required for sms factors.",
                ));
            }
        }
        Some(FactorKind::GenericOtp) => {}
        None if name.is_empty() => p.push(FieldError::new(
            "type",
            "type_required",
            "type is required: totp, sms or generic_otp.",
        )),
        None => p.push(FieldError::new(
            "type",
            "invalid_type",
            "type must be one of totp, sms, generic_otp.",
        )),
    }
    p.into_result()?;
    let Some(kind) = kind else {
        return Err(Error::Internal(format!(
            "factor type {name:?} passed validation"
        )));
    };
    let phone = match (kind, &req.phone_number) {
        (FactorKind::Sms, Some(raw)) => Some(
            otp::normalize_phone(raw)
                .ok_or_else(|| Error::InvalidPhoneNumber(raw.chars().take(64).collect()))?,
        ),
        _ => None,
    };
    if let Some(uid) = &req.user_id {
        super::users::get(state, uid).await?;
    }
    let now = state.now();
    let (row, secrets) = if kind == FactorKind::Totp {
        let (row, s) = new_totp_factor(
            state,
            now,
            req.user_id.clone(),
            req.totp_issuer.unwrap_or_default(),
            req.totp_user.unwrap_or_default(),
            TotpSecret::generate(),
        )?;
        (row, Some(s))
    } else {
        let row = FactorRow {
            id: id::new_id(id::prefix::FACTOR, now),
            user_id: req.user_id.clone(),
            r#type: kind,
            totp_issuer: None,
            totp_user: None,
            secret_key_id: None,
            secret_sealed: None,
            phone_number: phone,
            last_totp_step: -1,
            created_at: now,
            updated_at: now,
        };
        (row, None)
    };
    let created = events::new_event(
        now,
        events::FACTOR_CREATED,
        json!({ "id": row.id, "type": row.r#type, "user_id": row.user_id }),
    );
    state.store.insert_factor(&row, None, &[created]).await?;
    Ok(FactorView::new(&row, secrets))
}

async fn get_factor_row(state: &AppState, factor_id: &str) -> Result<FactorRow, Error> {
    if !id::has_prefix(factor_id, id::prefix::FACTOR) {
        return Err(Error::not_found(Entity::AuthenticationFactor, factor_id));
    }
    state.store.get_factor(factor_id).await
}

/// `GET /auth/factors/:id` (never with secrets).
pub async fn get(state: &AppState, factor_id: &str) -> Result<FactorView, Error> {
    Ok(FactorView::new(
        &get_factor_row(state, factor_id).await?,
        None,
    ))
}

/// `DELETE /auth/factors/:id`: the factor and its open challenges go at once (ASVS 2.8.6).
pub async fn delete(state: &AppState, factor_id: &str) -> Result<(), Error> {
    let row = get_factor_row(state, factor_id).await?;
    let event = events::new_event(
        state.now(),
        events::FACTOR_DELETED,
        json!({ "id": row.id, "type": row.r#type, "user_id": row.user_id }),
    );
    state.store.delete_factor(&row.id, &event).await?;
    if let Some(user_id) = &row.user_id {
        // A second factor taken away ends the sessions it may have protected.
        super::sessions::end_all_for_user(state, user_id, "factor_deleted").await?;
    }
    Ok(())
}

/// `POST /auth/factors/:id/challenge`.
pub async fn challenge(
    state: &AppState,
    factor_id: &str,
    req: ChallengeRequest,
) -> Result<ChallengeView, Error> {
    let factor = get_factor_row(state, factor_id).await?;
    // Go's `mfa.ChallengeFactor` (every workos-go release with `pkg/mfa`) always sends
    // `"sms_template": ""`, TOTP factors included: an empty template means "the default",
    // exactly like an absent one. A non-empty one still needs `{{code}}`.
    let sms_template = req.sms_template.filter(|t| !t.is_empty());
    if let Some(t) = &sms_template {
        let mut p = Problems::default();
        p.check(validate::text("sms_template", t, MAX_SMS_TEMPLATE));
        if !t.contains("{{code}}") {
            p.push(FieldError::new(
                "sms_template",
                "missing_code_placeholder",
                "sms_template must contain {{code}}.",
            ));
        }
        p.into_result()?;
    }
    let now = state.now();
    let code = factor.r#type.has_sent_code().then(otp::new_code);
    let challenge_id = id::new_id(id::prefix::CHALLENGE, now);
    let code_hash = code
        .as_ref()
        .map(|c| state.keys.mac(OTP_MAC_PURPOSE, &challenge_id, c.as_bytes()));
    let mut row = new_challenge(state, now, &factor.id, code_hash);
    row.id = challenge_id;
    if factor.r#type == FactorKind::Sms {
        let phone = factor.phone_number.clone().unwrap_or_default();
        if let Err(retry_after_secs) = state
            .store
            .charge_sms_send(&phone, now, state.config.sms_rate)
            .await?
        {
            state
                .metrics
                .sms(state.sms.provider_name(), SmsResult::RateLimited);
            return Err(Error::RateLimited {
                message: "Too many SMS messages were sent to this phone number. Try again later."
                    .into(),
                retry_after_secs,
            });
        }
        let default = format!(
            "Your verification code is {{{{code}}}}. It expires in {} minutes.",
            (state.config.challenge_ttl_ms / 60_000).max(1)
        );
        let template = sms_template.as_deref().unwrap_or(&default);
        let body = template.replace("{{code}}", code.as_deref().unwrap_or_default());
        let sent = state
            .sms
            .send(&phone, &body, &row.id, now.unix_seconds())
            .await;
        let result = match sent {
            Ok(()) => SmsResult::Sent,
            Err(_) => SmsResult::Failed,
        };
        state.metrics.sms(state.sms.provider_name(), result);
        sent.map_err(|e| {
            tracing::warn!(challenge_id = %row.id, error = %e, "SMS delivery failed");
            Error::SmsDeliveryFailed(e)
        })?;
    }
    // The challenge and its event in one transaction: a crash between two writes would leave
    // a challenge that can be verified but is missing from the audit trail.
    let created = events::new_event(
        now,
        events::CHALLENGE_CREATED,
        json!({ "id": row.id, "authentication_factor_id": factor.id, "type": factor.r#type }),
    );
    state
        .store
        .insert_challenge_with_events(&row, &[created])
        .await?;
    // Only generic OTP hands the code to the caller; SMS codes go to the phone only.
    let shown = code.filter(|_| factor.r#type == FactorKind::GenericOtp);
    Ok(ChallengeView::new(&row, shown))
}

/// Whether `code` is right for `factor`/`challenge`; for TOTP, the step it matched.
fn evaluate(
    state: &AppState,
    factor: &FactorRow,
    challenge: &ChallengeRow,
    code: &str,
    unix_seconds: i64,
) -> Result<(bool, Option<i64>), Error> {
    match factor.r#type {
        FactorKind::Totp => {
            let sealed = Sealed {
                key_id: factor.secret_key_id.clone().unwrap_or_default(),
                blob: factor.secret_sealed.clone().unwrap_or_default(),
            };
            let bytes = state
                .keys
                .open(TOTP_SEAL_PURPOSE, &factor.id, &sealed)
                .map_err(Error::internal)?;
            let secret = TotpSecret::from_bytes(bytes.to_vec());
            let step = totp::verify_after(
                &secret,
                code,
                unix_seconds,
                state.config.totp_window,
                factor.last_totp_step,
            );
            Ok((step.is_some(), step))
        }
        FactorKind::Sms | FactorKind::GenericOtp => {
            // Always compute the MAC, so a malformed code takes as long as a wrong one.
            let stored = challenge.code_hash.as_deref().unwrap_or_default();
            let matches =
                state
                    .keys
                    .mac_matches(OTP_MAC_PURPOSE, &challenge.id, code.as_bytes(), stored);
            Ok((otp::is_code_shaped(code) && matches, None))
        }
    }
}

/// The verification outcome a refusal stands for (`None`: no verification took place).
fn refusal_outcome(r: Refusal) -> Option<Verification> {
    match r {
        Refusal::FactorLocked => Some(Verification::Locked),
        Refusal::NotFound => None,
        Refusal::AlreadyVerified => Some(Verification::AlreadyVerified),
        Refusal::Expired => Some(Verification::Expired),
        Refusal::TooManyAttempts => Some(Verification::TooManyAttempts),
        Refusal::FactorRateLimited { .. } | Refusal::UserRateLimited { .. } => {
            Some(Verification::RateLimited)
        }
    }
}

/// Counts a refused verification (see [`crate::metrics::Verification`]).
fn count_refusal(state: &AppState, r: Refusal) {
    if let Some(v) = refusal_outcome(r) {
        state.metrics.verification(v);
    }
}

fn refusal_error(r: Refusal, challenge_id: &str, factor_id: &str) -> Error {
    match r {
        Refusal::FactorLocked => Error::FactorLocked(factor_id.to_owned()),
        Refusal::NotFound => Error::not_found(Entity::AuthenticationChallenge, challenge_id),
        Refusal::AlreadyVerified => Error::ChallengePreviouslyVerified(challenge_id.to_owned()),
        Refusal::Expired => Error::ChallengeExpired(challenge_id.to_owned()),
        Refusal::TooManyAttempts => Error::TooManyAttempts(challenge_id.to_owned()),
        Refusal::FactorRateLimited { retry_after_secs } => Error::RateLimited {
            message:
                "Too many failed verifications for this authentication factor. Try again later."
                    .into(),
            retry_after_secs,
        },
        Refusal::UserRateLimited { retry_after_secs } => Error::RateLimited {
            message: "Too many failed verifications for this user. Try again later.".into(),
            retry_after_secs,
        },
    }
}

/// `POST /auth/challenges/:id/verify`: `(challenge, valid)`; a wrong code is `valid: false`.
pub async fn verify(
    state: &AppState,
    challenge_id: &str,
    req: VerifyRequest,
    meta: &RequestMeta,
) -> Result<(ChallengeView, bool), Error> {
    let code = match req.code {
        Some(c) if !c.is_empty() => c,
        _ => {
            return Err(Error::invalid(
                "code",
                "string_required",
                "code is required.",
            ))
        }
    };
    if code.len() > 64 {
        return Err(Error::invalid(
            "code",
            "string_too_long",
            "code must be at most 64 characters.",
        ));
    }
    if !id::has_prefix(challenge_id, id::prefix::CHALLENGE) {
        return Err(Error::not_found(
            Entity::AuthenticationChallenge,
            challenge_id,
        ));
    }
    let now = state.now();
    let max = state.config.max_challenge_attempts;
    let Some((challenge, factor, user)) = state.store.find_challenge_context(challenge_id).await?
    else {
        return Err(Error::not_found(
            Entity::AuthenticationChallenge,
            challenge_id,
        ));
    };
    let user_ref = user
        .as_ref()
        .map(|(id, email)| (id.as_str(), email.as_str()));
    let label = factor
        .totp_user
        .as_deref()
        .or(factor.phone_number.as_deref())
        .unwrap_or_default();
    let failed_event = |code: &str, message: &str| {
        events::new_event(
            now,
            events::MFA_FAILED,
            events::mfa_data(
                "failed",
                meta,
                user_ref,
                &factor.id,
                challenge_id,
                Some((code, message)),
                label,
            ),
        )
    };
    // Refusals that need no evaluation are answered before any work (the store re-checks
    // them atomically anyway).
    if let Some(r) = tessera_store::challenge_refusal(Some(&challenge), now, max) {
        count_refusal(state, r);
        if r == Refusal::TooManyAttempts {
            state
                .store
                .insert_event(&failed_event(
                    "one_time_code_too_many_attempts",
                    "The challenge has had too many attempts.",
                ))
                .await?;
        }
        return Err(refusal_error(r, challenge_id, &factor.id));
    }
    let (correct, totp_step) = evaluate(state, &factor, &challenge, &code, now.unix_seconds())?;
    let attempt = VerifyAttempt {
        challenge_id,
        factor_id: &factor.id,
        user_id: factor.user_id.as_deref(),
        correct,
        totp_step,
        now,
        max_attempts: max,
        factor_rate: state.config.factor_failure_rate,
        user_rate: state.config.user_failure_rate,
        lock_after: state.config.factor_lockout_after,
    };
    let make_event = |kind: AttemptKind| match kind {
        AttemptKind::Succeeded => events::new_event(
            now,
            events::MFA_SUCCEEDED,
            events::mfa_data(
                "succeeded",
                meta,
                user_ref,
                &factor.id,
                challenge_id,
                None,
                label,
            ),
        ),
        AttemptKind::Failed => {
            failed_event("mfa_challenge_failed", "The MFA challenge has failed.")
        }
        AttemptKind::Replayed => failed_event(
            "one_time_code_previously_used",
            "The code was already used; each TOTP code is accepted once.",
        ),
        AttemptKind::Locked => events::new_event(
            now,
            events::FACTOR_LOCKED,
            json!({
                "id": factor.id,
                "type": factor.r#type,
                "user_id": factor.user_id,
                "consecutive_failures": state.config.factor_lockout_after,
            }),
        ),
    };
    let outcome = state.store.verify_attempt(&attempt, &make_event).await?;
    // The one place every verification's outcome is known (API, `mfa-totp` grant, hosted
    // code page, dashboard sign-in): counted here, once.
    let counted = match &outcome {
        VerifyOutcome::Verified(_) => Some(Verification::Valid),
        VerifyOutcome::Rejected { why, .. } => Some(match why {
            Rejection::Wrong | Rejection::WrongAndLocked => Verification::Invalid,
            Rejection::Replayed => Verification::Replayed,
        }),
        VerifyOutcome::Refused(r) => refusal_outcome(*r),
    };
    if let Some(v) = counted {
        state.metrics.verification(v);
    }
    match outcome {
        VerifyOutcome::Verified(c) => Ok((
            ChallengeView::new(
                &c,
                (factor.r#type == FactorKind::GenericOtp).then_some(code),
            ),
            true,
        )),
        VerifyOutcome::Rejected { challenge, why } => {
            match why {
                Rejection::Wrong => {}
                Rejection::Replayed => {
                    tracing::warn!(factor_id = %factor.id, challenge_id, "TOTP code reuse refused (replay)");
                }
                Rejection::WrongAndLocked => {
                    tracing::warn!(factor_id = %factor.id, challenge_id, "factor locked after too many consecutive failed verifications");
                }
            }
            Ok((ChallengeView::new(&challenge, None), false))
        }
        VerifyOutcome::Refused(r) => {
            let logged = match r {
                Refusal::TooManyAttempts => Some((
                    "one_time_code_too_many_attempts",
                    "The challenge has had too many attempts.",
                )),
                Refusal::FactorRateLimited { .. } | Refusal::UserRateLimited { .. } => {
                    Some(("rate_limit_exceeded", "Too many failed verifications."))
                }
                Refusal::FactorLocked => Some((
                    "authentication_factor_locked",
                    "The authentication factor is locked after too many failed attempts.",
                )),
                Refusal::NotFound | Refusal::AlreadyVerified | Refusal::Expired => None,
            };
            if let Some((c, m)) = logged {
                state.store.insert_event(&failed_event(c, m)).await?;
            }
            Err(refusal_error(r, challenge_id, &factor.id))
        }
    }
}

/// `tessera factors unlock FACTOR_ID`: an administrator lifts the lockout of a factor and
/// clears its consecutive failures; recorded as `authentication_factor.unlocked` in the same
/// transaction. The failure rate limits are left as they are: they expire by themselves.
pub async fn unlock_factor(store: &Store, now: Timestamp, factor_id: &str) -> Result<(), Error> {
    let before = store
        .find_factor_lock(factor_id)
        .await?
        .ok_or_else(|| Error::not_found(Entity::AuthenticationFactor, factor_id))?;
    let event = events::new_event(
        now,
        events::FACTOR_UNLOCKED,
        json!({
            "id": factor_id,
            "was_locked": before.locked_at.is_some(),
            "consecutive_failures": before.consecutive_failures,
        }),
    );
    if store.unlock_factor(factor_id, &event).await? {
        Ok(())
    } else {
        Err(Error::not_found(Entity::AuthenticationFactor, factor_id))
    }
}
