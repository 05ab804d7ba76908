//! Server-rendered web pages (the admin dashboard, the hosted sign-in pages) and the pieces
//! they share: security headers ([`security`]), CSRF tokens ([`csrf`]), cookies ([`cookie`]),
//! a form extractor whose errors are pages ([`form`]), the embedded static files
//! ([`assets`]), and the page layout and error pages ([`page`]).
//!
//! Pages are not part of the API: they live only in this module and are merged into the
//! application as a router of their own, wrapped in the layers below, so the API's rule that
//! every route is registered through `utoipa_axum::routes!` (and documented) stays whole for
//! `routes/`. How to add a page and its browser test: `docs/web.md`.

pub mod assets;
pub mod cookie;
pub mod csrf;
pub mod dashboard;
pub mod form;
pub mod hosted;
pub mod page;
pub mod security;

use axum::Router;

use crate::AppState;

/// Every page and static file, wrapped in the web layers.
pub fn router(state: &AppState) -> Router<AppState> {
    with_web_layers(
        Router::new()
            .merge(assets::router())
            .merge(dashboard::router())
            .merge(hosted::router()),
        state,
    )
}

/// Wraps page routes in the CSRF-cookie and security-header layers (every page route must
/// be inside them: [`form::Form`] and [`csrf::CsrfToken`] need the seed the first one puts
/// in the request). Public so tests can mount extra pages.
pub fn with_web_layers(routes: Router<AppState>, state: &AppState) -> Router<AppState> {
    routes
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf::ensure_cookie,
        ))
        .layer(axum::middleware::map_response(security::headers))
}
