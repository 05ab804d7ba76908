//! The router: one module per resource, each exposing `router()`, merged here with the
//! cross-cutting layers (request ids and the request span, body limit, panic catcher,
//! metrics, JSON fallbacks).

pub mod docs;
pub mod events;
pub mod health;
pub mod mfa;
pub mod sessions;
pub mod signin;
pub mod users;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use axum::response::IntoResponse;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::AppState;

/// Every documented route, with the OpenAPI document they make up.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi;
    let (router, doc) =
        utoipa_axum::router::OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
            .merge(health::router())
            .merge(users::router())
            .merge(mfa::router())
            .merge(events::router())
            .merge(signin::router())
            .merge(sessions::router())
            .split_for_parts();
    let mut doc = doc;
    crate::idempotency::document(&mut doc);
    (router, doc)
}

/// The whole application: the documented API, `/openapi.json`, and the layers.
pub fn router(state: AppState) -> Router {
    let (api, doc) = api();
    // Idempotency-Key replay for the API's POSTs (not the pages').
    let api = api.route_layer(crate::idempotency::IdempotencyLayer::new(state.clone()));
    let doc_json: std::sync::Arc<str> = crate::openapi::json(&doc).into();
    let routes = api.route(
        "/openapi.json",
        axum::routing::get(move || {
            let body = doc_json.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
            }
        }),
    );
    // Pages are not API operations: they come from `web` as a router of their own, outside
    // the OpenAPI document and its routes!-only rule.
    let routes = routes.merge(crate::web::router(&state));
    with_layers(routes, state)
}

/// Wraps routes in the cross-cutting layers: JSON fallbacks, body limit and body read
/// timeout, the panic catcher (a panicking handler is logged and answered with a JSON 500;
/// the server keeps serving), and request ids. Public so tests can wrap extra routes.
pub fn with_layers(routes: Router<AppState>, state: AppState) -> Router {
    let request_id = HeaderName::from_static(crate::logging::REQUEST_ID_HEADER);
    let body_limit = state.config.body_limit_bytes;
    let body_timeout = state.config.request_timeout;
    let metrics = crate::metrics::HttpMetricsLayer::new(state.metrics.clone());
    routes
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            body_timeout,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        // Every line logged while the request is handled (panics included) is inside its
        // span, which carries the request id set just outside. Start and end of each request
        // are DEBUG lines (`TESSERA_LOG=info,tower_http=debug`); 5xx answers are not logged a
        // second time here (internal errors and panics are logged with their detail).
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(crate::logging::request_span)
                .on_failure(()),
        )
        // Outside the panic catcher, so a panic counts as the 500 it is answered with; a
        // `Router` layer wraps each route after routing, so it sees the route's template.
        .layer(metrics)
        // Every response carries X-Request-ID (SDKs copy it into their exceptions): the
        // client's own if it sent one, otherwise a fresh UUID.
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// A panicking handler is logged and answered with a JSON 500; the server keeps serving.
pub(crate) fn panic_response(panic: Box<dyn std::any::Any + Send>) -> axum::response::Response {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %msg, "handler panicked");
    ApiError::Panic.into_response()
}
