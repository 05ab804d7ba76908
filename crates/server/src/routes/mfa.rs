//! The standalone MFA API: `/auth/factors/*` and `/auth/challenges/:id/verify`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiKey, JsonBody};
use crate::services::events::RequestMeta;
use crate::services::mfa::{self, ChallengeRequest, EnrollFactorRequest, VerifyRequest};
use crate::views::{ChallengeView, FactorView};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/factors/enroll", post(enroll))
        .route("/auth/factors/{id}", get(read).merge(delete(remove)))
        .route("/auth/factors/{id}/challenge", post(challenge))
        .route("/auth/challenges/{id}/verify", post(verify))
}

/// The client's address and user agent, for authentication events.
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect());
        Ok(Meta(RequestMeta {
            ip_address: ip,
            user_agent,
        }))
    }
}

async fn enroll(
    _: ApiKey,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<EnrollFactorRequest>,
) -> ApiResult<(StatusCode, Json<FactorView>)> {
    Ok((StatusCode::CREATED, Json(mfa::enroll(&state, req).await?)))
}

async fn read(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<FactorView>> {
    Ok(Json(mfa::get(&state, &id).await?))
}

/// 204 No Content, as recorded from WorkOS.
async fn remove(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    mfa::delete(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

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

#[derive(Debug, Serialize)]
pub struct VerifyResponse {
    pub challenge: ChallengeView,
    pub valid: bool,
}

/// 201 even for a wrong code (`valid: false`), as WorkOS does.
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
