//! Users: create, read, update, delete, list. Passwords are hashed with Argon2id on the
//! blocking pool and never returned.

use serde::Deserialize;
use serde_json::{Map, Value};
use tessera_core::error::Entity;
use tessera_core::validate::{self, Problems, MAX_EXTERNAL_ID, MAX_TEXT, MAX_URL};
use tessera_core::{id, password, Error, FieldError};
use tessera_store::{ListParams, Page, UserPatch, UserRow};
use tracing::Instrument;

use crate::AppState;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct CreateUserRequest {
    pub email: Option<String>,
    pub password: Option<String>,
    /// An Argon2 PHC string with m ≤ 262144 KiB, t ≤ 10 and p ≤ 8 (`password_hash_type`
    /// `argon2`).
    pub password_hash: Option<String>,
    pub password_hash_type: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub name: Option<String>,
    pub email_verified: Option<bool>,
    /// An absolute `http` or `https` URL.
    pub profile_picture_url: Option<String>,
    pub external_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    pub locale: Option<String>,
}

/// Omitted fields stay unchanged. `null` also leaves a field unchanged (Ruby v5 sends nulls
/// for every unset option), except for the fields WorkOS documents as nullable on update
/// (`external_id`, `locale`), where `null` clears the value.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UpdateUserRequest {
    pub email: Option<String>,
    pub password: Option<String>,
    /// An Argon2 PHC string with m ≤ 262144 KiB, t ≤ 10 and p ≤ 8 (`password_hash_type`
    /// `argon2`).
    pub password_hash: Option<String>,
    pub password_hash_type: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub name: Option<String>,
    pub email_verified: Option<bool>,
    /// An absolute `http` or `https` URL.
    pub profile_picture_url: Option<String>,
    #[serde(deserialize_with = "super::nullable")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    /// Merged into the existing metadata; a `null` value deletes that key.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(deserialize_with = "super::nullable")]
    #[schema(value_type = Option<String>)]
    pub locale: Option<Option<String>>,
}

const MAX_METADATA_KEYS: usize = 50;
const MAX_METADATA_KEY: usize = 40;
const MAX_METADATA_VALUE: usize = 600;
const MAX_LOCALE: usize = 35; // BCP 47 tags in practice

fn check_optional_text(p: &mut Problems, field: &str, v: &Option<String>, max: usize) {
    if let Some(v) = v {
        p.check(validate::text(field, v, max));
    }
}

/// Only absolute `http(s)` URLs: the picture is shown in pages and apps, where a
/// `javascript:` or `data:` URL would run or render attacker content.
fn check_picture_url(p: &mut Problems, v: &Option<String>) {
    if let Some(v) = v {
        p.check(validate::http_url("profile_picture_url", v, MAX_URL));
    }
}

/// Metadata: at most 50 keys of at most 40 characters, string values of at most 600.
/// `null` values are allowed only when `allow_null` (update: "delete this key").
fn check_metadata(p: &mut Problems, m: &Map<String, Value>, allow_null: bool) {
    if m.len() > MAX_METADATA_KEYS {
        p.push(FieldError::new(
            "metadata",
            "too_many_keys",
            format!("metadata may have at most {MAX_METADATA_KEYS} keys."),
        ));
    }
    for (k, v) in m {
        if k.is_empty() || k.chars().count() > MAX_METADATA_KEY {
            p.push(FieldError::new(
                "metadata",
                "invalid_metadata_key",
                format!("metadata keys must be 1 to {MAX_METADATA_KEY} characters."),
            ));
        }
        match v {
            Value::String(s) if s.chars().count() <= MAX_METADATA_VALUE => {}
            Value::Null if allow_null => {}
            _ => p.push(FieldError::new(
                "metadata",
                "invalid_metadata_value",
                format!(
                    "metadata.{k} must be a string of at most {MAX_METADATA_VALUE} characters."
                ),
            )),
        }
    }
}

/// Validates `password`/`password_hash` and returns the PHC string to store, if any.
async fn password_to_store(
    state: &AppState,
    password: Option<String>,
    hash: Option<String>,
    hash_type: Option<String>,
) -> Result<Option<String>, Error> {
    match (password, hash) {
        (Some(_), Some(_)) => Err(Error::invalid(
            "password",
            "password_and_password_hash_provided",
            "Provide either password or password_hash, not both.",
        )),
        (Some(pw), None) => {
            if let Some(problem) = password::strength_problem(&pw) {
                return Err(Error::PasswordStrength(problem));
            }
            state
                .hash_work(move |memory| password::hash_with(memory, &pw))
                .await?
                .map(Some)
        }
        (None, Some(h)) => {
            // Only Argon2 PHC strings can be imported: they are verified by the same code as
            // our own hashes. Other schemes would need their own verifiers.
            if hash_type.as_deref() != Some("argon2") {
                return Err(Error::invalid(
                    "password_hash_type",
                    "unsupported_password_hash_type",
                    "Only password_hash_type 'argon2' (a PHC string) is supported.",
                ));
            }
            let problem = if h.len() > 512 {
                Some(password::ImportProblem::Malformed)
            } else {
                password::import_problem(&h)
            };
            match problem {
                None => Ok(Some(h)),
                Some(password::ImportProblem::Malformed) => Err(Error::invalid(
                    "password_hash",
                    "invalid_password_hash",
                    "password_hash must be an Argon2 PHC string.",
                )),
                // Refused rather than stored: every sign-in would pay this cost.
                Some(password::ImportProblem::CostOutOfRange(message)) => Err(Error::invalid(
                    "password_hash",
                    "password_hash_cost_out_of_range",
                    message,
                )),
            }
        }
        (None, None) => Ok(None),
    }
}

pub async fn create(state: &AppState, req: CreateUserRequest) -> Result<UserRow, Error> {
    let mut p = Problems::default();
    let email = match &req.email {
        Some(e) => p.check(validate::email("email", e)),
        None => {
            p.push(FieldError::new(
                "email",
                "email_string_required",
                "Email should be a non-empty string.",
            ));
            None
        }
    };
    check_optional_text(&mut p, "first_name", &req.first_name, MAX_TEXT);
    check_optional_text(&mut p, "last_name", &req.last_name, MAX_TEXT);
    check_optional_text(&mut p, "name", &req.name, MAX_TEXT);
    check_picture_url(&mut p, &req.profile_picture_url);
    check_optional_text(&mut p, "external_id", &req.external_id, MAX_EXTERNAL_ID);
    check_optional_text(&mut p, "locale", &req.locale, MAX_LOCALE);
    if let Some(m) = &req.metadata {
        check_metadata(&mut p, m, false);
    }
    p.into_result()?;
    let email = email.unwrap_or_default();
    let password_hash = password_to_store(
        state,
        req.password,
        req.password_hash,
        req.password_hash_type,
    )
    .await?;
    let now = state.now();
    let row = UserRow {
        id: id::new_id(id::prefix::USER, now),
        email,
        email_verified: req.email_verified.unwrap_or(false),
        first_name: req.first_name,
        last_name: req.last_name,
        name: req.name,
        profile_picture_url: req.profile_picture_url,
        external_id: req.external_id,
        metadata: Value::Object(req.metadata.unwrap_or_default()).to_string(),
        locale: req.locale,
        password_hash,
        last_sign_in_at: None,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_user(&row).await?;
    Ok(row)
}

pub async fn get(state: &AppState, user_id: &str) -> Result<UserRow, Error> {
    if !id::has_prefix(user_id, id::prefix::USER) {
        return Err(Error::not_found(Entity::User, user_id));
    }
    state.store.get_user(user_id).await
}

/// Changes only the fields the request names, in one statement (see
/// [`tessera_store::Store::update_user`]), so concurrent updates of different fields never
/// undo each other; metadata is merged into the stored object under the row's lock.
pub async fn update(
    state: &AppState,
    user_id: &str,
    req: UpdateUserRequest,
) -> Result<UserRow, Error> {
    if !id::has_prefix(user_id, id::prefix::USER) {
        return Err(Error::not_found(Entity::User, user_id));
    }
    state.store.get_user(user_id).await?;
    let mut p = Problems::default();
    let email = match &req.email {
        Some(e) => p.check(validate::email("email", e)),
        None => None,
    };
    check_optional_text(&mut p, "first_name", &req.first_name, MAX_TEXT);
    check_optional_text(&mut p, "last_name", &req.last_name, MAX_TEXT);
    check_optional_text(&mut p, "name", &req.name, MAX_TEXT);
    check_picture_url(&mut p, &req.profile_picture_url);
    if let Some(Some(x)) = &req.external_id {
        p.check(validate::text("external_id", x, MAX_EXTERNAL_ID));
    }
    if let Some(Some(l)) = &req.locale {
        p.check(validate::text("locale", l, MAX_LOCALE));
    }
    if let Some(m) = &req.metadata {
        check_metadata(&mut p, m, true);
    }
    p.into_result()?;
    let password_hash = password_to_store(
        state,
        req.password,
        req.password_hash,
        req.password_hash_type,
    )
    .await?;
    let password_changed = password_hash.is_some();
    let patch = UserPatch {
        email,
        email_verified: req.email_verified,
        first_name: req.first_name,
        last_name: req.last_name,
        name: req.name,
        profile_picture_url: req.profile_picture_url,
        external_id: req.external_id,
        locale: req.locale,
        password_hash,
        updated_at: state.now(),
    };
    let user = match req.metadata {
        Some(changes) => {
            let merge = move |stored: &str| merge_metadata(stored, &changes);
            state
                .store
                .update_user(user_id, &patch, Some(&merge))
                .await?
        }
        None => state.store.update_user(user_id, &patch, None).await?,
    };
    if password_changed {
        // A new password ends every session: whoever knew the old one is signed out. This
        // runs right after the update's own transaction (as for a deleted factor), not
        // inside it, because it records one `session.revoked` event per session ended. It
        // runs in its own task, spawned with no await point after the update commits, so a
        // client that goes away cannot leave the password changed and the sessions alive.
        let state = state.clone();
        let user_id = user_id.to_owned();
        // In the request's span, so its log lines keep the request id.
        tokio::spawn(
            async move {
                super::sessions::end_all_for_user(&state, &user_id, "password_changed").await
            }
            .in_current_span(),
        )
        .await
        .map_err(Error::internal)??;
    }
    Ok(user)
}

/// Merges `changes` into the stored metadata (a `null` value deletes its key); the result
/// must still fit the key limit.
fn merge_metadata(stored: &str, changes: &Map<String, Value>) -> Result<String, Error> {
    let mut metadata: Map<String, Value> = serde_json::from_str(stored).unwrap_or_default();
    for (k, v) in changes {
        if v.is_null() {
            metadata.remove(k);
        } else {
            metadata.insert(k.clone(), v.clone());
        }
    }
    if metadata.len() > MAX_METADATA_KEYS {
        return Err(Error::Validation(vec![FieldError::new(
            "metadata",
            "too_many_keys",
            format!("metadata may have at most {MAX_METADATA_KEYS} keys."),
        )]));
    }
    Ok(Value::Object(metadata).to_string())
}

pub async fn delete(state: &AppState, user_id: &str) -> Result<(), Error> {
    if !id::has_prefix(user_id, id::prefix::USER) {
        return Err(Error::not_found(Entity::User, user_id));
    }
    // Ended first so that each session gets its `session.revoked` event; the rows then go
    // with the user (ON DELETE CASCADE).
    super::sessions::end_all_for_user(state, user_id, "user_deleted").await?;
    state.store.delete_user(user_id).await
}

/// `GET /user_management/users/external_id/:external_id`.
pub async fn get_by_external_id(state: &AppState, external_id: &str) -> Result<UserRow, Error> {
    state
        .store
        .find_user_by_external_id(external_id)
        .await?
        .ok_or_else(|| Error::not_found(Entity::User, external_id))
}

pub async fn list(
    state: &AppState,
    email: Option<&str>,
    organization_id: Option<&str>,
    params: &ListParams,
) -> Result<Page<UserRow>, Error> {
    if organization_id.is_some() {
        // Tessera has no organizations, so no user is a member of one.
        return Ok(Page {
            data: vec![],
            before: None,
            after: None,
        });
    }
    let email = match email {
        Some(e) => Some(validate::email("email", e).map_err(|e| Error::Validation(vec![e]))?),
        None => None,
    };
    state.store.list_users(email.as_deref(), params).await
}
