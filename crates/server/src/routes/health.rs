//! `GET /health`: unauthenticated liveness. The listener is bound only after migrations ran
//! and keys loaded, so any answer means the server is ready.

use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}

#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "Ready", body = Object)))]
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
