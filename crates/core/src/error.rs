//! The one domain error enum. The HTTP layer maps every variant to a WorkOS-shaped status
//! and body with an exhaustive `match`, so adding a variant forces a decision there.

use std::fmt;

/// Kinds of object an id can name, for `entity_not_found` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    User,
    AuthenticationFactor,
    AuthenticationChallenge,
    ApiKey,
    Client,
    Session,
}

impl Entity {
    /// The human name WorkOS uses in "<Entity> not found: '<id>'." messages.
    pub fn display_name(self) -> &'static str {
        match self {
            Entity::User => "User",
            Entity::AuthenticationFactor => "Authentication Factor",
            Entity::AuthenticationChallenge => "Authentication Challenge",
            Entity::ApiKey => "API Key",
            Entity::Client => "Client",
            Entity::Session => "Session",
        }
    }
}

/// One problem with one request field, as listed in `errors[]` of a 422 body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_owned(),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The step a sign-in needs after a correct password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MfaStep {
    /// `mfa_challenge`: the user has TOTP factors (their ids, oldest first); a code from one
    /// of them finishes the sign-in.
    Challenge { totp_factor_ids: Vec<String> },
    /// `mfa_enrollment`: MFA is required and the user has no TOTP factor yet; they enrol one,
    /// then finish with its code.
    Enrollment,
}

/// A sign-in interrupted after a correct password: which step must follow, the pending
/// token that carries the sign-in over to it, and who is signing in. The HTTP layer decides
/// how it looks on the wire (`code`, `message`, field names).
#[derive(Clone, PartialEq)]
pub struct MfaInterruption {
    pub step: MfaStep,
    /// Finishes the sign-in together with a code: a bearer secret for its short life, so
    /// `Debug` masks it (errors end up in logs).
    pub pending_authentication_token: String,
    /// The user as the API shows a signed-in user (`user` of a successful sign-in), rendered
    /// by the service that knows both: this crate has no user type (users are store rows), and
    /// the body must carry the user as it was when the password was checked.
    pub user: serde_json::Value,
}

impl MfaInterruption {
    /// The message WorkOS sends with each step.
    pub fn message(&self) -> &'static str {
        match self.step {
            MfaStep::Challenge { .. } => {
                "The user must complete an MFA challenge to finish authenticating."
            }
            MfaStep::Enrollment => "The user must enroll in MFA to finish authenticating.",
        }
    }
}

impl fmt::Debug for MfaInterruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaInterruption")
            .field("step", &self.step)
            .field("pending_authentication_token", &"<redacted>")
            .field("user_id", &self.user.get("id"))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404 `entity_not_found`.
    #[error("{} not found: '{id}'.", entity.display_name())]
    NotFound { entity: Entity, id: String },
    /// 422 `invalid_request_parameters` with `errors[]`.
    #[error("Validation failed")]
    Validation(Vec<FieldError>),
    /// 400 `malformed_json`: the body is not JSON at all.
    #[error("The request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// 400 `email_not_available`: a user with that email exists.
    #[error("The email '{0}' is not available.")]
    EmailNotAvailable(String),
    /// 400 `external_id_already_used`.
    #[error("The external_id '{0}' is already used by another user.")]
    ExternalIdAlreadyUsed(String),
    /// 400 `password_strength_error`: the new password is refused (the text says why).
    #[error("The password does not meet the strength requirements.")]
    PasswordStrength(String),
    /// 422 `invalid_phone_number`.
    #[error("Phone number is invalid: '{0}'")]
    InvalidPhoneNumber(String),
    /// 422 `authentication_challenge_expired`.
    #[error("The authentication challenge '{0}' has expired.")]
    ChallengeExpired(String),
    /// 422 `authentication_challenge_previously_verified`.
    #[error("The authentication challenge '{0}' has already been verified.")]
    ChallengePreviouslyVerified(String),
    /// 400 `one_time_code_too_many_attempts`: the challenge is dead, even for the right code.
    #[error("Too many attempts were made for the authentication challenge '{0}'. Start a new challenge.")]
    TooManyAttempts(String),
    /// 403 `authentication_factor_locked`: the factor had too many consecutive failed
    /// verifications and refuses every code until an administrator unlocks it.
    #[error("The authentication factor '{0}' is locked after too many failed attempts. An administrator must unlock it.")]
    FactorLocked(String),
    /// 429 with `Retry-After`: too many failures (per factor or per user), or too many SMS
    /// to one number.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: i64,
    },
    /// 502 `sms_delivery_failed`: the SMS provider did not accept the message. No challenge
    /// was created.
    #[error("The SMS could not be delivered: {0}")]
    SmsDeliveryFailed(String),
    /// 400 OAuth style `invalid_client`: wrong `client_id` or `client_secret`.
    #[error("Invalid client credentials.")]
    InvalidClient,
    /// 400 OAuth style `invalid_grant` (bad or reused refresh token, unknown grant data).
    #[error("{0}")]
    InvalidGrant(String),
    /// 400 OAuth style `unsupported_grant_type`.
    #[error("The grant_type '{0}' is not supported.")]
    UnsupportedGrantType(String),
    /// 400 code style on `/user_management/authenticate` (`invalid_credentials`,
    /// `invalid_one_time_code`, `invalid_pending_authentication_token`, ...).
    #[error("{message}")]
    AuthenticationFailed { code: &'static str, message: String },
    /// 403 `mfa_challenge` or `mfa_enrollment`: the password was right and the sign-in
    /// needs another step (boxed: it is large and rare, and `Error` travels in every `Result`).
    #[error("{}", .0.message())]
    AuthenticationFlow(Box<MfaInterruption>),
    /// 400 `invalid_authorization_request`: `/user_management/authorize` cannot go on (unknown
    /// client, redirect URI not allowed, bad parameters). Shown as an error page that never
    /// redirects.
    #[error("{0}")]
    AuthorizationRefused(String),
    /// 400 `invalid_idempotency_key`: the `Idempotency-Key` header is empty, longer than
    /// 255 bytes, or not printable ASCII.
    #[error("The Idempotency-Key header must be 1 to 255 printable ASCII characters.")]
    InvalidIdempotencyKey,
    /// 400 `idempotency_key_reused`: the `Idempotency-Key` was first used, by this API key
    /// within 24 hours, for another request (method, path or body).
    #[error("This Idempotency-Key was already used for a different request (method, path or body) in the last 24 hours. Use a new key for a new request.")]
    IdempotencyKeyReused,
    /// 409 `idempotency_error` with `Retry-After`: the first request with this
    /// `Idempotency-Key` is still running.
    #[error("A request with this Idempotency-Key is still being processed. Retry after it has finished.")]
    IdempotencyKeyInProgress { retry_after_secs: i64 },
    /// 401: missing, unknown or revoked API key.
    #[error("Unauthorized")]
    Unauthorized,
    /// 503 `service_unavailable` with `Retry-After`: the database cannot be reached right
    /// now (connection refused or reset, no pooled connection free in time, no answer within
    /// the database timeout, PostgreSQL shutting down or starting). Nothing is known to be
    /// wrong with the request, so a retry may succeed. The detail is logged, never returned.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// 500: a bug. The detail is logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn not_found(entity: Entity, id: impl Into<String>) -> Self {
        Error::NotFound {
            entity,
            id: id.into(),
        }
    }
    pub fn invalid(field: &str, code: &str, message: impl Into<String>) -> Self {
        Error::Validation(vec![FieldError::new(field, code, message)])
    }
    pub fn internal(e: impl fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interruption_never_shows_its_pending_token_in_debug_output() {
        let e = Error::AuthenticationFlow(Box::new(MfaInterruption {
            step: MfaStep::Enrollment,
            pending_authentication_token: "pt_SECRET_0123456789".into(),
            user: serde_json::json!({ "object": "user", "id": "user_01" }),
        }));
        let shown = format!("{e:?}");
        assert!(!shown.contains("pt_SECRET"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("user_01"),
            "{shown}"
        );
        assert_eq!(
            e.to_string(),
            "The user must enroll in MFA to finish authenticating."
        );
    }
}
