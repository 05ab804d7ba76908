//! Authentication factors: TOTP enrolment (secret, sealing, URI, QR) and listing.

use serde::Deserialize;
use tessera_core::error::Entity;
use tessera_core::totp::{self, TotpSecret};
use tessera_core::validate::{self, Problems, MAX_TEXT};
use tessera_core::{id, qr, Error, FactorKind, FieldError, Timestamp};
use tessera_store::{ChallengeRow, FactorRow, ListParams, Page};

use crate::views::{ChallengeView, EnrolledFactorView, FactorView, TotpSecrets};
use crate::AppState;

/// The purpose tag of sealed TOTP secrets (part of the AES-GCM associated data).
pub const TOTP_SEAL_PURPOSE: &str = "totp";

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct EnrollUserFactorRequest {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub totp_issuer: Option<String>,
    pub totp_user: Option<String>,
    pub totp_secret: Option<String>,
}

/// A new TOTP factor row (secret sealed to its id) and the secrets to show once.
pub fn new_totp_factor(
    state: &AppState,
    now: Timestamp,
    user_id: Option<String>,
    issuer: String,
    user: String,
    secret: TotpSecret,
) -> Result<(FactorRow, TotpSecrets), Error> {
    let factor_id = id::new_id(id::prefix::FACTOR, now);
    let sealed = state
        .keys
        .seal(TOTP_SEAL_PURPOSE, &factor_id, secret.as_bytes())
        .map_err(Error::internal)?;
    let secret_b32 = secret.to_base32();
    let uri = totp::otpauth_uri(&issuer, &user, &secret_b32);
    let qr_code = qr::png_data_uri(&uri)
        .map_err(|e| Error::invalid("totp_user", "qr_too_long", e.to_string()))?;
    let row = FactorRow {
        id: factor_id,
        user_id,
        r#type: FactorKind::Totp,
        totp_issuer: Some(issuer),
        totp_user: Some(user),
        secret_key_id: Some(sealed.key_id),
        secret_sealed: Some(sealed.blob),
        phone_number: None,
        last_totp_step: -1,
        created_at: now,
        updated_at: now,
    };
    Ok((
        row,
        TotpSecrets {
            secret: secret_b32,
            qr_code,
            uri,
        },
    ))
}

/// A fresh challenge row for `factor_id`, expiring after the configured TTL.
pub fn new_challenge(
    state: &AppState,
    now: Timestamp,
    factor_id: &str,
    code_hash: Option<Vec<u8>>,
) -> ChallengeRow {
    ChallengeRow {
        id: id::new_id(id::prefix::CHALLENGE, now),
        factor_id: factor_id.to_owned(),
        code_hash,
        expires_at: now.plus_millis(state.config.challenge_ttl_ms),
        verified_at: None,
        attempts: 0,
        created_at: now,
        updated_at: now,
    }
}

/// `POST /user_management/users/:id/auth_factors`: enrols a TOTP factor for the user and
/// creates its first challenge, in one transaction.
pub async fn enroll_user_factor(
    state: &AppState,
    user_id: &str,
    req: EnrollUserFactorRequest,
) -> Result<EnrolledFactorView, Error> {
    let mut p = Problems::default();
    match req.kind.as_deref() {
        Some("totp") => {}
        Some(_) => p.push(FieldError::new(
            "type",
            "invalid_type",
            "type must be 'totp'.",
        )),
        None => p.push(FieldError::new(
            "type",
            "type_required",
            "type is required and must be 'totp'.",
        )),
    }
    if let Some(i) = &req.totp_issuer {
        p.check(validate::required_text("totp_issuer", i, MAX_TEXT));
    }
    if let Some(u) = &req.totp_user {
        p.check(validate::required_text("totp_user", u, MAX_TEXT));
    }
    let secret = match &req.totp_secret {
        Some(s) => p.check(TotpSecret::from_base32(s).map_err(|e| {
            FieldError::new(
                "totp_secret",
                "invalid_totp_secret",
                format!("totp_secret {e}."),
            )
        })),
        None => Some(TotpSecret::generate()),
    };
    p.into_result()?;
    if !id::has_prefix(user_id, id::prefix::USER) {
        return Err(Error::not_found(Entity::User, user_id));
    }
    let (user, stored_issuer) = state
        .store
        .find_user_with_totp_issuer(user_id)
        .await?
        .ok_or_else(|| Error::not_found(Entity::User, user_id))?;
    // The stored issuer setting (seeded from --environment-name, changed in the dashboard).
    let issuer = req
        .totp_issuer
        .or(stored_issuer)
        .unwrap_or_else(|| state.config.environment_name.clone());
    let totp_user = req.totp_user.unwrap_or_else(|| user.email.clone());
    let now = state.now();
    let secret = secret.unwrap_or_else(TotpSecret::generate);
    let (factor, secrets) = new_totp_factor(state, now, Some(user.id), issuer, totp_user, secret)?;
    let challenge = new_challenge(state, now, &factor.id, None);
    use super::events::{new_event, CHALLENGE_CREATED, FACTOR_CREATED};
    let factor_event =
        serde_json::json!({ "id": factor.id, "type": factor.r#type, "user_id": factor.user_id });
    let challenge_event = serde_json::json!({ "id": challenge.id, "authentication_factor_id": factor.id, "type": factor.r#type });
    let events = [
        new_event(now, FACTOR_CREATED, factor_event),
        new_event(now, CHALLENGE_CREATED, challenge_event),
    ];
    state
        .store
        .insert_factor(&factor, Some(&challenge), &events)
        .await?;
    Ok(EnrolledFactorView::new(
        FactorView::new(&factor, Some(secrets)),
        ChallengeView::new(&challenge, None),
    ))
}

/// `GET /user_management/users/:id/auth_factors`.
pub async fn list_user_factors(
    state: &AppState,
    user_id: &str,
    params: &ListParams,
) -> Result<Page<FactorRow>, Error> {
    if !id::has_prefix(user_id, id::prefix::USER) || state.store.find_user(user_id).await?.is_none()
    {
        return Err(Error::not_found(Entity::User, user_id));
    }
    state.store.list_user_factors(user_id, params).await
}
