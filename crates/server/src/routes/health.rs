//! `GET /health`: unauthenticated readiness. The listener is bound only after migrations ran
//! and keys loaded; after that the answer is 200 while the database answers and 503 (the
//! API's `service_unavailable` body, with `Retry-After`) while it does not, so a load
//! balancer takes a node that lost its database out of rotation. The database is probed at
//! most about once a second ([`crate::services::health`]).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::openapi::ErrorBody;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}

#[utoipa::path(get, path = "/health", tag = "health", responses(
    (status = 200, description = "Ready: the database answers", body = Object),
    (status = 503, description = "The database does not answer (`service_unavailable`, with `Retry-After`)", body = ErrorBody),
))]
async fn health(State(state): State<AppState>) -> Response {
    if crate::services::health::database_is_up(&state).await {
        Json(json!({ "status": "ok" })).into_response()
    } else {
        crate::error::unavailable_body()
    }
}
