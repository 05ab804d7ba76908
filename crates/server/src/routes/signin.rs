//! `POST /user_management/authenticate` and `GET /sso/jwks/:client_id`.

use axum::extract::{Path, State};
use axum::Json;
use tessera_core::error::Entity;
use tessera_core::Error;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{JsonBody, Meta};
use crate::openapi::{AuthErrorBody, ErrorBody, NotFoundBody, ValidationErrorBody};
use crate::services::signin::{self, AuthenticateRequest, AuthenticateResponse};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(authenticate))
        .routes(routes!(jwks))
}

/// Sign in: `password`, `urn:workos:oauth:grant-type:mfa-totp` or `refresh_token`.
#[utoipa::path(post, path = "/user_management/authenticate", tag = "sign-in", request_body = AuthenticateRequest,
    responses(
        (status = 200, description = "Signed in", body = AuthenticateResponse),
        (status = 400, description = "Bad client, grant, credentials, code or pending token", body = AuthErrorBody),
        (status = 403, description = "`mfa_challenge` or `mfa_enrollment`: finish with the TOTP grant; `authentication_factor_locked` from the TOTP grant", body = Object),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A field required by the grant is missing, `ip_address` is not an IP address, or `email` is over 254 characters", body = ValidationErrorBody),
        (status = 429, description = "Too many failures (`Retry-After`)", body = ErrorBody),
    ))]
/// Client credentials travel in the body (`client_id`, `client_secret`), as every SDK sends
/// them; the bearer header is not required here.
async fn authenticate(
    State(state): State<AppState>,
    Meta(meta): Meta,
    JsonBody(req): JsonBody<AuthenticateRequest>,
) -> ApiResult<Json<AuthenticateResponse>> {
    Ok(Json(signin::authenticate(&state, req, &meta).await?))
}

#[utoipa::path(get, path = "/sso/jwks/{client_id}", tag = "sign-in",
    params(("client_id" = String, Path, description = "This environment's client id")),
    responses(
        (status = 200, description = "The JWK set", body = Object),
        (status = 404, description = "Unknown client id", body = NotFoundBody),
    ))]
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
