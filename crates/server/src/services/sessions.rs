//! Sessions that end: the WorkOS session object, listing a user's sessions, revoking one,
//! logging out, and ending every session of a user when their credentials change.
//!
//! A session ends in one of three ways, all decided by the database: it passes its maximum
//! age (`expires_at`, fixed at sign-in) or its inactivity timeout (no refresh for
//! `session_inactivity_ms`), and then it is `expired` without anything being written; or it
//! is revoked (API, logout, password change, factor or user deletion, refresh-token reuse),
//! which one conditional UPDATE records. Access tokens already issued stay valid until their
//! own `exp` (5 minutes): they are self-contained JWTs.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tessera_core::error::Entity;
use tessera_core::{id, Error, Timestamp};
use tessera_store::{ListParams, Page, SessionRow};

use super::events;
use crate::AppState;

pub const SESSION_CREATED: &str = "session.created";
pub const SESSION_REVOKED: &str = "session.revoked";

/// Longest `ip_address` and `user_agent` kept on a session (an IPv6 address with a zone fits;
/// real user agents are far below 512).
pub const MAX_IP: usize = 64;
pub const MAX_USER_AGENT: usize = 512;

/// Truncates to `max` characters (not bytes, so never inside a UTF-8 sequence).
pub fn truncated(s: Option<&str>, max: usize) -> Option<String> {
    s.map(|s| s.chars().take(max).collect())
}

/// `GET /user_management/users/:id/sessions` items, and the `data` of `session.*` events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    #[schema(value_type = String)]
    pub object: &'static str,
    pub id: String,
    pub user_id: String,
    pub organization_id: Option<String>,
    /// `active`, `expired` or `revoked`.
    #[schema(value_type = String)]
    pub status: &'static str,
    pub auth_method: String,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// When it expires if nothing else happens: the earlier of the maximum age and the
    /// inactivity timeout (which a refresh pushes back).
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

pub type SessionList = crate::views::ListView<SessionView>;

/// The moment the inactivity timeout ends a session last active at `last_active_at`.
fn idle_end(state: &AppState, last_active_at: Timestamp) -> Timestamp {
    last_active_at.plus_millis(state.config.session_inactivity_ms)
}

/// Sessions last active at or before this moment are expired by inactivity.
pub fn idle_since(state: &AppState, now: Timestamp) -> Timestamp {
    now.minus_millis(state.config.session_inactivity_ms)
}

impl SessionView {
    pub fn new(state: &AppState, r: &SessionRow, now: Timestamp) -> Self {
        let expires_at = r.expires_at.min(idle_end(state, r.last_active_at));
        let (status, ended_at) = match r.revoked_at {
            Some(t) => ("revoked", Some(t)),
            None if expires_at <= now => ("expired", Some(expires_at)),
            None => ("active", None),
        };
        SessionView {
            object: "session",
            id: r.id.clone(),
            user_id: r.user_id.clone(),
            organization_id: None,
            status,
            auth_method: r.auth_method.clone(),
            ip_address: r.ip_address.clone(),
            user_agent: r.user_agent.clone(),
            expires_at,
            ended_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// `data` of a `session.*` event: the session object (Python v5 parses it strictly), with the
/// reason of a revocation.
pub fn event_data(state: &AppState, r: &SessionRow, reason: Option<&str>) -> Value {
    let mut v = json!(SessionView::new(state, r, state.now()));
    if let Some(reason) = reason {
        v["reason"] = json!(reason);
    }
    v
}

pub async fn list(
    state: &AppState,
    user_id: &str,
    params: &ListParams,
) -> Result<Page<SessionRow>, Error> {
    super::users::get(state, user_id).await?;
    state.store.list_user_sessions(user_id, params).await
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct RevokeSessionRequest {
    pub session_id: Option<String>,
}

/// `POST /user_management/sessions/revoke`: ends the session now (its refresh token stops
/// working at once). Revoking an ended session changes nothing and is not an error.
pub async fn revoke(state: &AppState, req: RevokeSessionRequest) -> Result<SessionView, Error> {
    let session_id = req.session_id.filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::invalid(
            "session_id",
            "session_id_string_required",
            "session_id is required.",
        )
    })?;
    let row = end(state, &session_id, "revoked").await?;
    Ok(SessionView::new(state, &row, state.now()))
}

/// Ends one session (and the browser session it came from) with `reason`, recording
/// `session.revoked` when this call ended it; the session as it is now.
pub async fn end(state: &AppState, session_id: &str, reason: &str) -> Result<SessionRow, Error> {
    let not_found = || Error::not_found(Entity::Session, session_id);
    if !id::has_prefix(session_id, id::prefix::SESSION) {
        return Err(not_found());
    }
    let now = state.now();
    match state.store.end_session(session_id, reason, now).await? {
        Some(row) => {
            events::record(
                state,
                SESSION_REVOKED,
                event_data(state, &row, Some(reason)),
            )
            .await?;
            Ok(row)
        }
        None => state
            .store
            .find_session(session_id)
            .await?
            .ok_or_else(not_found),
    }
}

/// Ends every live session, browser session and unredeemed authorization code of a user:
/// after a password change, a deleted factor, a deleted user. One `session.revoked` event per
/// session ended.
pub async fn end_all_for_user(state: &AppState, user_id: &str, reason: &str) -> Result<(), Error> {
    let now = state.now();
    let ended = state
        .store
        .end_user_sessions(user_id, reason, now, idle_since(state, now))
        .await?;
    for row in &ended {
        events::record(state, SESSION_REVOKED, event_data(state, row, Some(reason))).await?;
    }
    if !ended.is_empty() {
        tracing::info!(
            user_id,
            reason,
            sessions = ended.len(),
            "ended the user's sessions"
        );
    }
    Ok(())
}
