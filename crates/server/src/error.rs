//! Every failure a client can see, mapped to a WorkOS-shaped status and JSON body.
//!
//! [`ApiError`] wraps the domain [`Error`] plus the few failures that only exist at the HTTP
//! layer. Both matches below are exhaustive (no `_ =>`), so a new variant cannot ship without
//! a decision about its status and body. Internal errors are logged with their detail and
//! answered with a generic body: database messages never reach a client.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tessera_core::{Error, MfaInterruption, MfaStep};

#[derive(Debug)]
pub enum ApiError {
    Domain(Error),
    /// The body exceeds the configured limit.
    PayloadTooLarge,
    /// A body was sent with a `Content-Type` that is not JSON.
    UnsupportedMediaType,
    /// No route has this path.
    RouteNotFound,
    /// The path exists but not with this method.
    MethodNotAllowed,
    /// A handler panicked; caught by the panic layer.
    Panic,
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Domain(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

fn body(status: StatusCode, v: Value) -> Response {
    let mut r = (status, axum::Json(v)).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn coded(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    body(status, json!({ "code": code, "message": message.into() }))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Domain(e) => domain_response(e),
            ApiError::PayloadTooLarge => coded(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large.",
            ),
            ApiError::UnsupportedMediaType => coded(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Request bodies must be JSON (Content-Type: application/json).",
            ),
            ApiError::RouteNotFound => {
                coded(StatusCode::NOT_FOUND, "not_found", "No such endpoint.")
            }
            ApiError::MethodNotAllowed => coded(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This endpoint does not support that HTTP method.",
            ),
            ApiError::Panic => internal_body(),
        }
    }
}

fn internal_body() -> Response {
    coded(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "An internal error occurred. It has been logged.",
    )
}

/// The 403 body of an interrupted sign-in, as WorkOS sends it: the step's `code` and
/// `message`, the pending token, the factors to challenge (for `mfa_challenge`), the user.
fn interruption_body(interruption: MfaInterruption) -> Value {
    let message = interruption.message();
    let MfaInterruption {
        step,
        pending_authentication_token,
        user,
    } = interruption;
    match step {
        MfaStep::Challenge { totp_factor_ids } => json!({
            "code": "mfa_challenge",
            "message": message,
            "pending_authentication_token": pending_authentication_token,
            "authentication_factors": totp_factor_ids
                .iter()
                .map(|id| json!({ "id": id, "type": "totp" }))
                .collect::<Vec<_>>(),
            "user": user,
        }),
        MfaStep::Enrollment => json!({
            "code": "mfa_enrollment",
            "message": message,
            "pending_authentication_token": pending_authentication_token,
            "user": user,
        }),
    }
}

/// Seconds a client is asked to wait after a 503 (`Retry-After`). Short: most outages a
/// client can ride out are a failover or a restart of the database, and each request made
/// during one already waits up to the database timeout before its 503.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u32 = 1;

/// The 503 of [`Error::Unavailable`] (and of `GET /health` when the database is down).
pub fn unavailable_body() -> Response {
    let mut r = coded(
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
        "The service is temporarily unavailable. Retry the request shortly.",
    );
    r.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
    );
    r
}

fn domain_response(e: Error) -> Response {
    let message = e.to_string();
    match e {
        Error::NotFound { id, .. } => body(
            StatusCode::NOT_FOUND,
            json!({ "message": message, "code": "entity_not_found", "entity_id": id }),
        ),
        // `message` must be non-null whenever `errors` is present (Ruby v5 appends to it).
        Error::Validation(errors) => body(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "code": "invalid_request_parameters", "message": message, "errors": errors }),
        ),
        Error::MalformedJson(_) => coded(StatusCode::BAD_REQUEST, "malformed_json", message),
        Error::EmailNotAvailable(_) => {
            coded(StatusCode::BAD_REQUEST, "email_not_available", message)
        }
        Error::ExternalIdAlreadyUsed(_) => {
            coded(StatusCode::BAD_REQUEST, "external_id_already_used", message)
        }
        Error::PasswordStrength(problem) => body(
            StatusCode::BAD_REQUEST,
            json!({
                "code": "password_strength_error",
                "message": message,
                "errors": [{ "field": "password", "code": "password_too_weak", "message": problem }],
            }),
        ),
        Error::InvalidPhoneNumber(_) => coded(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_phone_number",
            message,
        ),
        Error::ChallengeExpired(_) => coded(
            StatusCode::UNPROCESSABLE_ENTITY,
            "authentication_challenge_expired",
            message,
        ),
        Error::ChallengePreviouslyVerified(_) => coded(
            StatusCode::UNPROCESSABLE_ENTITY,
            "authentication_challenge_previously_verified",
            message,
        ),
        Error::TooManyAttempts(_) => coded(
            StatusCode::BAD_REQUEST,
            "one_time_code_too_many_attempts",
            message,
        ),
        // 403: both SDK families surface it with its body (Python v5: AuthorizationException,
        // Node: GenericServerException with status 403); see docs/compatibility.md.
        Error::FactorLocked(id) => body(
            StatusCode::FORBIDDEN,
            json!({ "code": "authentication_factor_locked", "message": message, "authentication_factor_id": id }),
        ),
        Error::RateLimited {
            retry_after_secs, ..
        } => {
            let mut r = coded(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                message,
            );
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
            r
        }
        Error::SmsDeliveryFailed(_) => {
            coded(StatusCode::BAD_GATEWAY, "sms_delivery_failed", message)
        }
        Error::InvalidClient => body(
            StatusCode::BAD_REQUEST,
            json!({ "error": "invalid_client", "error_description": message }),
        ),
        Error::InvalidGrant(_) => body(
            StatusCode::BAD_REQUEST,
            json!({ "error": "invalid_grant", "error_description": message }),
        ),
        Error::UnsupportedGrantType(_) => body(
            StatusCode::BAD_REQUEST,
            json!({ "error": "unsupported_grant_type", "error_description": message }),
        ),
        Error::AuthenticationFailed { code, .. } => coded(StatusCode::BAD_REQUEST, code, message),
        // 403 exactly: Python raises its MFA errors only for 403, Node would turn a 422 into
        // an exception that drops the pending token.
        Error::AuthenticationFlow(interruption) => {
            body(StatusCode::FORBIDDEN, interruption_body(*interruption))
        }
        Error::AuthorizationRefused(_) => coded(
            StatusCode::BAD_REQUEST,
            "invalid_authorization_request",
            message,
        ),
        Error::InvalidIdempotencyKey => {
            coded(StatusCode::BAD_REQUEST, "invalid_idempotency_key", message)
        }
        Error::IdempotencyKeyReused => {
            coded(StatusCode::BAD_REQUEST, "idempotency_key_reused", message)
        }
        // `idempotency_error` is the code Ruby v10 maps a 409 to (IdempotencyError, which
        // it retries); the others raise their conflict error.
        Error::IdempotencyKeyInProgress { retry_after_secs } => {
            let mut r = coded(StatusCode::CONFLICT, "idempotency_error", message);
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
            r
        }
        // The recorded WorkOS body is exactly this; Node ignores it, Ruby parses it as JSON.
        Error::Unauthorized => body(
            StatusCode::UNAUTHORIZED,
            json!({ "message": "Unauthorized" }),
        ),
        // 503 with Retry-After, never 500: the request may well succeed once the database is
        // back, and clients (and load balancers) treat a 503 as "try again", a 500 as a bug.
        Error::Unavailable(detail) => {
            tracing::warn!(error = %detail, "database unavailable");
            unavailable_body()
        }
        Error::Internal(detail) => {
            tracing::error!(error = %detail, "internal error");
            internal_body()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn rendered(e: Error) -> (StatusCode, Value) {
        let r = ApiError::from(e).into_response();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    fn interrupted(step: MfaStep) -> Error {
        Error::AuthenticationFlow(Box::new(MfaInterruption {
            step,
            pending_authentication_token: "pending123".into(),
            user: json!({ "object": "user", "id": "user_01" }),
        }))
    }

    #[tokio::test]
    async fn an_mfa_challenge_is_a_403_with_the_workos_body() {
        let step = MfaStep::Challenge {
            totp_factor_ids: vec!["auth_factor_01".into(), "auth_factor_02".into()],
        };
        assert_eq!(
            rendered(interrupted(step)).await,
            (
                StatusCode::FORBIDDEN,
                json!({
                    "code": "mfa_challenge",
                    "message": "The user must complete an MFA challenge to finish authenticating.",
                    "pending_authentication_token": "pending123",
                    "authentication_factors": [
                        { "id": "auth_factor_01", "type": "totp" },
                        { "id": "auth_factor_02", "type": "totp" },
                    ],
                    "user": { "object": "user", "id": "user_01" },
                })
            )
        );
    }

    #[tokio::test]
    async fn an_mfa_enrollment_is_a_403_with_the_workos_body_and_no_factors() {
        assert_eq!(
            rendered(interrupted(MfaStep::Enrollment)).await,
            (
                StatusCode::FORBIDDEN,
                json!({
                    "code": "mfa_enrollment",
                    "message": "The user must enroll in MFA to finish authenticating.",
                    "pending_authentication_token": "pending123",
                    "user": { "object": "user", "id": "user_01" },
                })
            )
        );
    }
}
