//! `GET /health`: unauthenticated liveness. The listener is bound only after migrations ran
//! and keys loaded, so any answer means the server is ready.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
