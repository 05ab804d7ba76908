//! The audit trail: event rows in the WorkOS Events API shape.
//!
//! Names: `authentication.mfa_succeeded`, `authentication.mfa_failed` (WorkOS's own), and
//! Tessera's `authentication_factor.created`, `authentication_factor.deleted`,
//! `authentication_factor.locked`, `authentication_factor.unlocked`,
//! `authentication_challenge.created` (see docs/compatibility.md).

use serde_json::{json, Value};
use tessera_core::{id, Error, Timestamp};
use tessera_store::{EventRow, ListParams, Page};

use crate::AppState;

pub const MFA_SUCCEEDED: &str = "authentication.mfa_succeeded";
pub const MFA_FAILED: &str = "authentication.mfa_failed";
pub const FACTOR_CREATED: &str = "authentication_factor.created";
pub const FACTOR_DELETED: &str = "authentication_factor.deleted";
pub const CHALLENGE_CREATED: &str = "authentication_challenge.created";
pub const FACTOR_LOCKED: &str = "authentication_factor.locked";
pub const FACTOR_UNLOCKED: &str = "authentication_factor.unlocked";

/// Who made the request, for `ip_address`/`user_agent` in authentication events.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

pub fn new_event(now: Timestamp, name: &str, data: Value) -> EventRow {
    EventRow {
        id: id::new_id(id::prefix::EVENT, now),
        event: name.to_owned(),
        data: data.to_string(),
        created_at: now,
    }
}

/// `data` of `authentication.mfa_*` events (WorkOS shape plus the factor and challenge ids).
pub fn mfa_data(
    status: &str,
    meta: &RequestMeta,
    user: Option<(&str, &str)>,
    factor_id: &str,
    challenge_id: &str,
    error: Option<(&str, &str)>,
    fallback_label: &str,
) -> Value {
    let mut d = json!({
        "type": "mfa",
        "status": status,
        "ip_address": meta.ip_address,
        "user_agent": meta.user_agent,
        "user_id": user.map(|u| u.0),
        // WorkOS SDKs require a string here on success (Python v5 parses strictly); a
        // factor without a user reports its label (TOTP user or phone number) instead.
        "email": user.map(|u| u.1).unwrap_or(fallback_label),
        "authentication_factor_id": factor_id,
        "authentication_challenge_id": challenge_id,
    });
    if let Some((code, message)) = error {
        d["error"] = json!({ "code": code, "message": message });
    }
    d
}

pub async fn record(state: &AppState, name: &str, data: Value) -> Result<(), Error> {
    state
        .store
        .insert_event(&new_event(state.now(), name, data))
        .await
}

pub async fn list(
    state: &AppState,
    names: &[String],
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    params: &ListParams,
) -> Result<Page<EventRow>, Error> {
    state.store.list_events(names, start, end, params).await
}
