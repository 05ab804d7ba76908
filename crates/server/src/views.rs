//! Response types: the exact JSON objects of the WorkOS API, built from store rows.
//!
//! Every key the reference lists is emitted, `null` where empty (Python v10 requires keys like
//! `external_id` and `last_sign_in_at` to exist), `object` is always set (Python v5 and Rust
//! check it), and timestamps are `YYYY-MM-DDTHH:MM:SS.mmmZ`.

use serde::Serialize;
use tessera_core::{FactorKind, Timestamp};
use tessera_store::{ChallengeRow, FactorRow, Page, UserRow};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    #[schema(value_type = String)]
    pub object: &'static str,
    pub id: String,
    pub email: String,
    pub email_verified: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub name: Option<String>,
    pub profile_picture_url: Option<String>,
    pub external_id: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub locale: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_sign_in_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<&UserRow> for UserView {
    fn from(u: &UserRow) -> Self {
        UserView {
            object: "user",
            id: u.id.clone(),
            email: u.email.clone(),
            email_verified: u.email_verified,
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            name: u.name.clone(),
            profile_picture_url: u.profile_picture_url.clone(),
            external_id: u.external_id.clone(),
            metadata: serde_json::from_str(&u.metadata).unwrap_or_default(),
            locale: u.locale.clone(),
            last_sign_in_at: u.last_sign_in_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// `totp` of a factor. The three secret-bearing fields are present only in enroll responses;
/// get and list never return them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TotpView {
    pub issuer: String,
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SmsView {
    pub phone_number: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FactorView {
    #[schema(value_type = String)]
    pub object: &'static str,
    pub id: String,
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "totp")]
    pub kind: FactorKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp: Option<TotpView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsView>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// The secret-bearing parts of a TOTP factor, known only at enrolment.
#[derive(Debug)]
pub struct TotpSecrets {
    pub secret: String,
    pub qr_code: String,
    pub uri: String,
}

impl FactorView {
    pub fn new(f: &FactorRow, secrets: Option<TotpSecrets>) -> Self {
        let totp = (f.r#type == FactorKind::Totp).then(|| {
            let (secret, qr_code, uri) = match secrets {
                Some(s) => (Some(s.secret), Some(s.qr_code), Some(s.uri)),
                None => (None, None, None),
            };
            TotpView {
                issuer: f.totp_issuer.clone().unwrap_or_default(),
                user: f.totp_user.clone().unwrap_or_default(),
                secret,
                qr_code,
                uri,
            }
        });
        let sms = f
            .phone_number
            .as_ref()
            .filter(|_| f.r#type == FactorKind::Sms)
            .map(|p| SmsView {
                phone_number: p.clone(),
            });
        FactorView {
            object: "authentication_factor",
            id: f.id.clone(),
            kind: f.r#type,
            user_id: f.user_id.clone(),
            totp,
            sms,
            created_at: f.created_at,
            updated_at: f.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChallengeView {
    #[schema(value_type = String)]
    pub object: &'static str,
    pub id: String,
    pub authentication_factor_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    /// Only for generic OTP challenges: the code the caller must deliver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl ChallengeView {
    pub fn new(c: &ChallengeRow, code: Option<String>) -> Self {
        ChallengeView {
            object: "authentication_challenge",
            id: c.id.clone(),
            authentication_factor_id: c.factor_id.clone(),
            expires_at: c.expires_at,
            code,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListMetadata {
    pub before: Option<String>,
    pub after: Option<String>,
}

/// `{"object":"list","data":[...],"list_metadata":{"before":..,"after":..}}`; absent cursors
/// are JSON `null` (Go's iterator loops forever on `""`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListView<T> {
    #[schema(value_type = String)]
    pub object: &'static str,
    pub data: Vec<T>,
    pub list_metadata: ListMetadata,
}

impl<T> ListView<T> {
    pub fn from_page<R>(page: Page<R>, f: impl Fn(&R) -> T) -> Self {
        ListView {
            object: "list",
            data: page.data.iter().map(f).collect(),
            list_metadata: ListMetadata {
                before: page.before,
                after: page.after,
            },
        }
    }
}

/// The User Management enrolment answer. `factor` and `challenge` repeat
/// `authentication_factor` and `authentication_challenge`: the Java SDK 4.x
/// (`userManagement.enrollAuthFactor`, the seed's Java sample) reads only those two keys,
/// every other SDK reads the long ones and ignores unknown keys (docs/compatibility.md).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnrolledFactorView {
    pub authentication_factor: FactorView,
    pub authentication_challenge: ChallengeView,
    /// The same factor as `authentication_factor`, for the Java SDK 4.x.
    pub factor: FactorView,
    /// The same challenge as `authentication_challenge`, for the Java SDK 4.x.
    pub challenge: ChallengeView,
}

impl EnrolledFactorView {
    pub fn new(factor: FactorView, challenge: ChallengeView) -> Self {
        EnrolledFactorView {
            factor: factor.clone(),
            challenge: challenge.clone(),
            authentication_factor: factor,
            authentication_challenge: challenge,
        }
    }
}

pub type UserList = ListView<UserView>;
pub type FactorList = ListView<FactorView>;
