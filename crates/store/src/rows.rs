//! Row types: exactly the columns of a table, decoded the same way from both backends.

use tessera_core::FactorKind;
use tessera_core::Timestamp;

/// The deployment's one environment row.
#[derive(Debug, Clone)]
pub struct EnvironmentRow {
    pub client_id: String,
    pub mfa_required: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub lookup: String,
    pub key_hash: Vec<u8>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub email_verified: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub name: Option<String>,
    pub profile_picture_url: Option<String>,
    pub external_id: Option<String>,
    /// A JSON object of string values, as text.
    pub metadata: String,
    pub locale: Option<String>,
    /// Argon2id PHC string; never leaves the server.
    pub password_hash: Option<String>,
    pub last_sign_in_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The columns an update names; `None` leaves a column as stored. For `external_id` and
/// `locale`, `Some(None)` clears the value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub name: Option<String>,
    pub profile_picture_url: Option<String>,
    pub external_id: Option<Option<String>>,
    pub locale: Option<Option<String>>,
    pub password_hash: Option<String>,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FactorRow {
    pub id: String,
    pub user_id: Option<String>,
    /// Stored as its WorkOS name (`totp`, `sms`, `generic_otp`).
    pub r#type: FactorKind,
    pub totp_issuer: Option<String>,
    pub totp_user: Option<String>,
    pub secret_key_id: Option<String>,
    pub secret_sealed: Option<Vec<u8>>,
    pub phone_number: Option<String>,
    pub last_totp_step: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChallengeRow {
    pub id: String,
    pub factor_id: String,
    pub code_hash: Option<Vec<u8>>,
    pub expires_at: Timestamp,
    pub verified_at: Option<Timestamp>,
    pub attempts: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One entry of the append-only audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: String,
    pub event: String,
    /// A JSON object as text.
    pub data: String,
    pub created_at: Timestamp,
}

crate::sql::from_row!(EnvironmentRow {
    client_id,
    mfa_required,
    created_at
});
crate::sql::from_row!(ApiKeyRow {
    id,
    name,
    lookup,
    key_hash,
    created_at,
    revoked_at
});
crate::sql::from_row!(UserRow {
    id,
    email,
    email_verified,
    first_name,
    last_name,
    name,
    profile_picture_url,
    external_id,
    metadata,
    locale,
    password_hash,
    last_sign_in_at,
    created_at,
    updated_at
});
crate::sql::from_row!(FactorRow {
    id,
    user_id,
    r#type,
    totp_issuer,
    totp_user,
    secret_key_id,
    secret_sealed,
    phone_number,
    last_totp_step,
    created_at,
    updated_at
});
crate::sql::from_row!(ChallengeRow {
    id,
    factor_id,
    code_hash,
    expires_at,
    verified_at,
    attempts,
    created_at,
    updated_at
});
crate::sql::from_row!(EventRow {
    id,
    event,
    data,
    created_at
});
