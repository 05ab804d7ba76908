//! The standalone MFA API: `/auth/factors/*` and `/auth/challenges/:id/verify`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{ApiKey, JsonBody, Meta};
use crate::openapi::{ErrorBody, NotFoundBody, UnauthorizedBody, ValidationErrorBody};
use crate::services::mfa::{self, ChallengeRequest, EnrollFactorRequest, VerifyRequest};
use crate::views::{ChallengeView, FactorView};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enroll))
        .routes(routes!(read, remove))
        .routes(routes!(challenge))
        .routes(routes!(verify))
}

/// Enrol a factor: `totp` (with `totp_issuer`, `totp_user`), `sms` (with an E.164
/// `phone_number`) or `generic_otp`.
#[utoipa::path(post, path = "/auth/factors/enroll", tag = "mfa", request_body = EnrollFactorRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The factor (TOTP secrets shown only here)", body = FactorView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 404, description = "No such user (`user_id`)", body = NotFoundBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields, or `invalid_phone_number`", body = ValidationErrorBody),
    ))]
async fn enroll(
    _: ApiKey,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<EnrollFactorRequest>,
) -> ApiResult<(StatusCode, Json<FactorView>)> {
    Ok((StatusCode::CREATED, Json(mfa::enroll(&state, req).await?)))
}

/// Get a factor (never with secrets).
#[utoipa::path(get, path = "/auth/factors/{id}", tag = "mfa",
    params(("id" = String, Path, description = "Factor id (`auth_factor_...`)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The factor", body = FactorView),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 404, description = "No such factor", body = NotFoundBody),
    ))]
async fn read(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<FactorView>> {
    Ok(Json(mfa::get(&state, &id).await?))
}

/// Delete a factor and its open challenges; 204 No Content, as recorded from WorkOS.
#[utoipa::path(delete, path = "/auth/factors/{id}", tag = "mfa",
    params(("id" = String, Path, description = "Factor id (`auth_factor_...`)")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 404, description = "No such factor", body = NotFoundBody),
    ))]
async fn remove(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    mfa::delete(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Challenge a factor: TOTP sends nothing, SMS texts a code, generic OTP returns it in `code`.
#[utoipa::path(post, path = "/auth/factors/{id}/challenge", tag = "mfa", request_body = ChallengeRequest,
    params(("id" = String, Path, description = "Factor id (`auth_factor_...`)")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The challenge", body = ChallengeView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 404, description = "No such factor", body = NotFoundBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid `sms_template`", body = ValidationErrorBody),
        (status = 429, description = "Too many SMS to this number (`Retry-After`)", body = ErrorBody),
        (status = 502, description = "The SMS provider refused the message; no challenge was created", body = ErrorBody),
    ))]
async fn challenge(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ChallengeRequest>,
) -> ApiResult<(StatusCode, Json<ChallengeView>)> {
    Ok((
        StatusCode::CREATED,
        Json(mfa::challenge(&state, &id, req).await?),
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyResponse {
    pub challenge: ChallengeView,
    pub valid: bool,
}

/// Verify a code; 201 even for a wrong code (`valid: false`), as WorkOS does.
#[utoipa::path(post, path = "/auth/challenges/{id}/verify", tag = "mfa", request_body = VerifyRequest,
    params(("id" = String, Path, description = "Challenge id (`auth_challenge_...`)")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Whether the code was right", body = VerifyResponse),
        (status = 400, description = "Malformed JSON, or `one_time_code_too_many_attempts`", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 403, description = "`authentication_factor_locked`: too many consecutive failures; `tessera factors unlock` lifts it", body = ErrorBody),
        (status = 404, description = "No such challenge", body = NotFoundBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Missing code, `authentication_challenge_expired` or `authentication_challenge_previously_verified`", body = ErrorBody),
        (status = 429, description = "Too many failures for the factor or user (`Retry-After`)", body = ErrorBody),
    ))]
async fn verify(
    _: ApiKey,
    State(state): State<AppState>,
    Meta(meta): Meta,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> ApiResult<(StatusCode, Json<VerifyResponse>)> {
    let (challenge, valid) = mfa::verify(&state, &id, req, &meta).await?;
    Ok((
        StatusCode::CREATED,
        Json(VerifyResponse { challenge, valid }),
    ))
}
