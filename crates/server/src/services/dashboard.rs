//! What an admin does in the dashboard, each recorded as an `admin.*` event with the admin's
//! id. Every rule is the API's or the CLI's own function (MFA-required, factor deletion,
//! key creation and revocation, signing-key rotation), never a second copy.

use serde_json::json;
use tessera_core::validate::{self, MAX_TEXT};
use tessera_core::{Error, FieldError};
use tessera_store::{AdminRow, ApiKeyRow, ListParams, Order, UserRow};

use super::admins::admin_event;
use crate::AppState;

pub const SETTINGS_UPDATED: &str = "admin.settings_updated";
pub const USER_CREATED: &str = "admin.user_created";
pub const USER_DELETED: &str = "admin.user_deleted";
pub const USER_MFA_RESET: &str = "admin.user_mfa_reset";
pub const API_KEY_CREATED: &str = "admin.api_key_created";
pub const API_KEY_REVOKED: &str = "admin.api_key_revoked";
pub const SIGNING_KEY_ROTATED: &str = "admin.signing_key_rotated";

async fn record(
    state: &AppState,
    name: &str,
    by: &AdminRow,
    data: serde_json::Value,
) -> Result<(), Error> {
    state
        .store
        .insert_event(&admin_event(state.now(), name, Some(by), data))
        .await
}

/// The Authentication page's settings: MFA required (the `tessera settings mfa-required`
/// setting, read by every password sign-in) and the TOTP issuer.
pub async fn save_authentication(
    state: &AppState,
    by: &AdminRow,
    mfa_required: bool,
    issuer: &str,
) -> Result<(), Error> {
    let issuer = issuer.trim();
    validate::required_text("totp_issuer", issuer, MAX_TEXT).map_err(|_| {
        Error::Validation(vec![FieldError::new(
            "totp_issuer",
            "invalid",
            "The issuer must not be empty (at most 256 characters).",
        )])
    })?;
    state.store.set_mfa_required(mfa_required).await?;
    state.store.set_totp_issuer(issuer, false).await?;
    record(
        state,
        SETTINGS_UPDATED,
        by,
        json!({ "mfa_required": mfa_required, "totp_issuer": issuer }),
    )
    .await
}

/// Creates an API key; its secret is returned to be shown once.
pub async fn create_api_key(
    state: &AppState,
    by: &AdminRow,
    name: &str,
) -> Result<(ApiKeyRow, String), Error> {
    let name = name.trim();
    validate::required_text("name", name, MAX_TEXT).map_err(|e| Error::Validation(vec![e]))?;
    let (row, secret) =
        crate::startup::create_api_key(&state.store, state.clock.as_ref(), name).await?;
    record(
        state,
        API_KEY_CREATED,
        by,
        json!({ "id": row.id, "name": row.name }),
    )
    .await?;
    Ok((row, secret))
}

/// Revokes an API key (as `tessera api-keys revoke`).
pub async fn revoke_api_key(state: &AppState, by: &AdminRow, key_id: &str) -> Result<(), Error> {
    state.store.revoke_api_key(key_id, state.now()).await?;
    state.api_keys.forget_id(key_id);
    record(state, API_KEY_REVOKED, by, json!({ "id": key_id })).await
}

/// Creates a user through the API's own service (validation, hashing, events).
pub async fn create_user(
    state: &AppState,
    by: &AdminRow,
    req: super::users::CreateUserRequest,
) -> Result<UserRow, Error> {
    let user = super::users::create(state, req).await?;
    record(
        state,
        USER_CREATED,
        by,
        json!({ "user_id": user.id, "email": user.email }),
    )
    .await?;
    Ok(user)
}

/// Deletes a user through the API's own service.
pub async fn delete_user(state: &AppState, by: &AdminRow, user_id: &str) -> Result<(), Error> {
    let user = super::users::get(state, user_id).await?;
    super::users::delete(state, user_id).await?;
    record(
        state,
        USER_DELETED,
        by,
        json!({ "user_id": user.id, "email": user.email }),
    )
    .await
}

/// Deletes every factor of a user, each through the API's factor deletion (its challenges
/// go with it, each deletion is an event); the number deleted.
pub async fn reset_user_mfa(
    state: &AppState,
    by: &AdminRow,
    user_id: &str,
) -> Result<usize, Error> {
    let user = super::users::get(state, user_id).await?;
    let mut deleted = 0;
    loop {
        let page = state
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
        if page.data.is_empty() {
            break;
        }
        for f in &page.data {
            match super::mfa::delete(state, &f.id).await {
                // Deleted meanwhile by someone else: the goal is reached either way.
                Ok(()) | Err(Error::NotFound { .. }) => deleted += 1,
                Err(e) => return Err(e),
            }
        }
    }
    record(
        state,
        USER_MFA_RESET,
        by,
        json!({ "user_id": user.id, "email": user.email, "factors_deleted": deleted }),
    )
    .await?;
    Ok(deleted)
}

/// Rotates the access-token signing key (as `tessera signing-keys rotate`); the new `kid`.
pub async fn rotate_signing_key(state: &AppState, by: &AdminRow) -> Result<String, Error> {
    let kid = super::signin::rotate_signing_key(&state.store, &state.keys, state.now()).await?;
    record(state, SIGNING_KEY_ROTATED, by, json!({ "kid": kid })).await?;
    Ok(kid)
}
