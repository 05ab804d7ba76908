//! Security headers on every page and static file.
//!
//! The Content-Security-Policy allows scripts, styles and images only from this origin
//! (plus `data:` images: QR codes are inline PNGs), so there is no inline script or style
//! anywhere, and an injected `<script>` would not run. `frame-ancestors 'none'` (and the
//! older `X-Frame-Options`) stop click-jacking; `nosniff` stops content-type guessing;
//! `same-origin` referrers keep ids in URLs from leaking to other sites. Pages are
//! `no-store`: they show secrets once and carry CSRF tokens, and a shared computer's
//! back button must not bring them back. Static files set their own long cache lifetime.

use axum::http::{header, HeaderValue};
use axum::response::Response;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'";

pub async fn headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
