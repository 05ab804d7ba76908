//! `POST /user_management/authenticate` and `GET /sso/jwks/:client_id`.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use tessera_core::error::Entity;
use tessera_core::Error;

use crate::error::ApiResult;
use crate::extract::JsonBody;
use crate::routes::mfa::Meta;
use crate::services::signin::{self, AuthenticateRequest, AuthenticateResponse};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/user_management/authenticate", post(authenticate))
        .route("/sso/jwks/{client_id}", get(jwks))
}

/// Client credentials travel in the body (`client_id`, `client_secret`), as every SDK sends
/// them; the bearer header is not required here.
async fn authenticate(
    State(state): State<AppState>,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<AuthenticateRequest>,
) -> ApiResult<Json<AuthenticateResponse>> {
    Ok(Json(signin::authenticate(&state, req, &meta).await?))
}

/// Public keys for verifying access tokens; no auth, as JWKS endpoints are.
async fn jwks(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    if client_id != *state.client_id {
        return Err(Error::not_found(Entity::Client, client_id).into());
    }
    Ok(Json(signin::jwks(&state).await?))
}
