//! The static files, embedded in the binary: one stylesheet and the copy-button script.
//! Each is served under a name that contains a hash of its content
//! (`/static/style.<hash>.css`), so it can be cached for a year: a new build changes the
//! name, never the content behind a name. Nothing is loaded from anywhere else.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::AppState;

struct Asset {
    url: String,
    body: &'static str,
    content_type: &'static str,
}

const CSS: &str = include_str!("../../static/style.css");
const COPY_JS: &str = include_str!("../../static/copy.js");

fn assets() -> &'static [Asset; 2] {
    static ASSETS: OnceLock<[Asset; 2]> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let named = |stem: &str, ext: &str, body: &'static str, content_type| {
            let digest = Sha256::digest(body.as_bytes());
            let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
            Asset {
                url: format!("/static/{stem}.{hash}.{ext}"),
                body,
                content_type,
            }
        };
        [
            named("style", "css", CSS, "text/css; charset=utf-8"),
            named("copy", "js", COPY_JS, "text/javascript; charset=utf-8"),
        ]
    })
}

/// The stylesheet's URL (with its content hash).
pub fn css_url() -> &'static str {
    &assets()[0].url
}

/// The copy-button script's URL (with its content hash).
pub fn js_url() -> &'static str {
    &assets()[1].url
}

pub fn router() -> Router<AppState> {
    Router::new().route("/static/{name}", get(serve))
}

async fn serve(Path(name): Path<String>) -> Response {
    let wanted = format!("/static/{name}");
    match assets().iter().find(|a| a.url == wanted) {
        Some(a) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(a.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "Not found").into_response(),
    }
}
