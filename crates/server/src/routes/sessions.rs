//! `/user_management/users/:id/sessions` and `/user_management/sessions/revoke`.
//! (Logout is a browser page: see `web::hosted`.)

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use tessera_core::id;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{ApiKey, JsonBody, ListQuery};
use crate::openapi::{ErrorBody, NotFoundBody, UnauthorizedBody, ValidationErrorBody};
use crate::routes::docs::SessionListQuery;
use crate::services::sessions::{self, RevokeSessionRequest, SessionList, SessionView};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(revoke))
}

/// List the user's sessions, newest first: active, expired and revoked ones, with `status`.
#[utoipa::path(get, path = "/user_management/users/{id}/sessions", tag = "sessions",
    params(("id" = String, Path, description = "User id (`user_...`)"), SessionListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of sessions", body = SessionList),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 404, description = "No such user", body = NotFoundBody),
        (status = 422, description = "Invalid query parameters", body = ValidationErrorBody),
    ))]
async fn list(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<SessionList>> {
    let q = ListQuery::parse(q.as_deref(), id::prefix::SESSION)?;
    let page = sessions::list(&state, &id, &q.params).await?;
    let now = state.now();
    Ok(Json(SessionList::from_page(page, |r| {
        SessionView::new(&state, r, now)
    })))
}

/// Revoke a session: its refresh token stops working at once (access tokens already issued
/// run out within their 5 minutes). Revoking an ended session is not an error.
#[utoipa::path(post, path = "/user_management/sessions/revoke", tag = "sessions", request_body = RevokeSessionRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session, now revoked", body = SessionView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = UnauthorizedBody),
        (status = 404, description = "No such session", body = NotFoundBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "session_id missing", body = ValidationErrorBody),
    ))]
async fn revoke(
    _: ApiKey,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RevokeSessionRequest>,
) -> ApiResult<Json<SessionView>> {
    Ok(Json(sessions::revoke(&state, req).await?))
}
