//! Request extractors that answer in our error shape instead of the framework's plain text.
//!
//! * [`ApiKey`]: the `Authorization: Bearer sk_...` check. Handlers that take it cannot run
//!   unauthenticated.
//! * [`JsonBody`]: JSON bodies as the SDKs send them. An empty body, whitespace, or `null`
//!   means "no fields" (SDKs send `Content-Type: application/json` on bodiless requests, Go
//!   sends `null`, Ruby sends `""`); explicit `null` fields are absent fields (request types use
//!   `Option` with `#[serde(default)]`); unknown fields are ignored. Syntax errors are 400
//!   `malformed_json`; type errors are 422 naming the field.
//! * [`ListQuery`]: the pagination query (`limit`, `before`, `after`, `order`).
//! * [`Meta`]: who made the request (address, user agent), for events and throttles; used by
//!   the API, the hosted pages and the dashboard alike.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use tessera_core::{Error, FieldError};
use tessera_store::{ListParams, Order};

use crate::error::ApiError;
use crate::services::events::RequestMeta;
use crate::AppState;

/// Proof that the request carried a valid, unrevoked API key.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
}

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Already checked by the idempotency layer for this very request (only server code
        // can put it there).
        if let Some(key) = parts.extensions.get::<ApiKey>() {
            return Ok(key.clone());
        }
        let presented = bearer_token(&parts.headers).ok_or(Error::Unauthorized)?;
        crate::services::api_keys::authenticate_key(state, presented)
            .await
            .map(|id| ApiKey { id })
            .map_err(ApiError::from)
    }
}

/// The key of an `Authorization: Bearer ...` header, if the request has one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// The connection's address and the `User-Agent` (cut to 512 bytes on a character
/// boundary, as events store it). Never fails: both are optional.
#[derive(Debug, Clone)]
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let ip_address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(tessera_core::validate::user_agent);
        Ok(Meta(RequestMeta {
            ip_address,
            user_agent,
        }))
    }
}

/// A JSON request body of type `T` (see the module docs for what is tolerated).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let mime = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
        let bytes = bytes::Bytes::from_request(req, state)
            .await
            .map_err(|rej| {
                if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::Domain(Error::MalformedJson(rej.body_text()))
                }
            })?;
        parse_json(&bytes, json_type).map(JsonBody)
    }
}

/// The body-parsing rules of [`JsonBody`], separate so they can be unit-tested.
pub fn parse_json<T: DeserializeOwned + Default>(
    bytes: &[u8],
    json_type: Option<bool>,
) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if json_type == Some(false) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::MalformedJson("the body is not valid UTF-8".into()))?;
    if text.trim() == "null" {
        return Ok(T::default());
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let msg = inner.to_string();
                // serde reports a missing field at the parent's path; name the field itself.
                let field = msg
                    .strip_prefix("missing field `")
                    .and_then(|r| r.split('`').next())
                    .map(str::to_owned)
                    .unwrap_or_else(|| if path == "." { "body".to_owned() } else { path });
                let clean = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
                ApiError::Domain(Error::Validation(vec![FieldError::new(
                    &field,
                    "invalid_type",
                    clean,
                )]))
            }
            serde_json::error::Category::Io
            | serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof => {
                ApiError::Domain(Error::MalformedJson(inner.to_string()))
            }
        }
    })
}

/// `limit`, `before`, `after`, `order` plus any resource filters, validated to [`ListParams`].
#[derive(Debug, Default)]
pub struct ListQuery {
    pub params: ListParams,
    /// Other query parameters (filters) by name, last value wins.
    pub extra: Vec<(String, String)>,
}

impl ListQuery {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.extra
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parses a raw query string. `id_prefix` is the prefix cursors must carry.
    pub fn parse(raw: Option<&str>, id_prefix: &str) -> Result<Self, Error> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| Error::invalid("query", "invalid_query", e.to_string()))?;
        let mut problems = tessera_core::validate::Problems::default();
        let mut q = ListQuery {
            params: ListParams {
                limit: 10,
                ..Default::default()
            },
            extra: vec![],
        };
        for (k, v) in pairs {
            match k.as_str() {
                "limit" => match v.parse::<i64>() {
                    Ok(n) if (1..=100).contains(&n) => q.params.limit = n,
                    _ => problems.push(FieldError::new(
                        "limit",
                        "invalid_limit",
                        "limit must be an integer from 1 to 100.",
                    )),
                },
                "order" => match v.as_str() {
                    "asc" => q.params.order = Order::Asc,
                    "desc" => q.params.order = Order::Desc,
                    "normal" => q.params.order = Order::Normal,
                    _ => problems.push(FieldError::new(
                        "order",
                        "invalid_order",
                        "order must be one of asc, desc, normal.",
                    )),
                },
                "before" | "after" => {
                    if v.is_empty() {
                        continue;
                    }
                    if !tessera_core::id::has_prefix(&v, id_prefix) {
                        problems.push(FieldError::new(
                            &k,
                            "invalid_cursor",
                            format!("{k} must be an id starting with '{id_prefix}_'."),
                        ));
                    } else if k == "before" {
                        q.params.before = Some(v);
                    } else {
                        q.params.after = Some(v);
                    }
                }
                _ => q.extra.push((k, v)),
            }
        }
        if q.params.before.is_some() && q.params.after.is_some() {
            problems.push(FieldError::new(
                "before",
                "conflicting_cursors",
                "Pass either before or after, not both.",
            ));
        }
        problems.into_result()?;
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default)]
    struct Req {
        email: Option<String>,
        n: Option<u32>,
    }

    fn status(e: ApiError) -> u16 {
        axum::response::IntoResponse::into_response(e)
            .status()
            .as_u16()
    }

    #[test]
    fn empty_whitespace_and_null_bodies_mean_no_fields() {
        for b in ["", "  \n", "null", " null "] {
            let r: Req = parse_json(b.as_bytes(), Some(true)).unwrap();
            assert!(r.email.is_none());
        }
    }

    #[test]
    fn explicit_nulls_are_absent_and_unknown_fields_are_ignored() {
        let r: Req = parse_json(br#"{"email":null,"n":3,"extra":[1,2]}"#, Some(true)).unwrap();
        assert_eq!(r.email, None);
        assert_eq!(r.n, Some(3));
    }

    #[test]
    fn type_errors_are_422_naming_the_field_and_syntax_errors_400() {
        let e = parse_json::<Req>(br#"{"email": 5}"#, Some(true)).unwrap_err();
        match &e {
            ApiError::Domain(Error::Validation(v)) => assert_eq!(v[0].field, "email"),
            other => panic!("{other:?}"),
        }
        assert_eq!(status(e), 422);
        assert_eq!(
            status(parse_json::<Req>(b"{\"email\":", Some(true)).unwrap_err()),
            400
        );
        assert_eq!(
            status(parse_json::<Req>(b"\xff\xfe", Some(true)).unwrap_err()),
            400
        );
        assert_eq!(
            status(parse_json::<Req>(b"[1]", Some(true)).unwrap_err()),
            422
        );
    }

    #[test]
    fn non_json_content_types_are_415() {
        assert_eq!(
            status(parse_json::<Req>(b"email=a", Some(false)).unwrap_err()),
            415
        );
    }

    #[test]
    fn list_queries_default_to_10_desc_and_validate_everything() {
        let q = ListQuery::parse(None, "user").unwrap();
        assert_eq!(q.params.limit, 10);
        assert_eq!(q.params.order, Order::Desc);
        let q = ListQuery::parse(Some("limit=100&order=asc&email=a%40b.c"), "user").unwrap();
        assert_eq!(q.params.limit, 100);
        assert_eq!(q.get("email"), Some("a@b.c"));
        for bad in [
            "limit=0",
            "limit=101",
            "limit=x",
            "order=up",
            "after=auth_factor_01H",
            "before=user_01HZZZZZZZZZZZZZZZZZZZZZZZ&after=user_01HZZZZZZZZZZZZZZZZZZZZZZZ",
        ] {
            assert!(ListQuery::parse(Some(bad), "user").is_err(), "{bad}");
        }
    }
}
