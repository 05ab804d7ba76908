//! Idempotent retries: a POST repeated with the same `Idempotency-Key` gets the first answer
//! instead of running again (the Python, Go and Node SDKs put a key on every POST and retry
//! with it after a timeout or a 5xx).
//!
//! [`IdempotencyLayer`] wraps the API's routes (not the dashboard's or hosted pages' forms). It acts
//! only on a POST that carries the header and an `Authorization: Bearer` API key; every other
//! request passes untouched, without a database round trip. Keys are scoped per API key and
//! kept 24 hours ([`TTL_MS`]).
//!
//! * The first request claims the key with one `INSERT` under the table's primary key
//!   ([`tessera_store::Store::claim_idempotency_key`]), runs, and stores its answer (status,
//!   `Content-Type`, body sealed with the master key) with one `UPDATE`: two writes, no read.
//! * A repeat of the same request (method, path and body, by SHA-256) gets the stored
//!   answer, marked `Idempotent-Replayed: true`; another request under the same key gets 400
//!   `idempotency_key_reused`.
//! * A repeat that arrives while the first still runs waits for its answer, polling the row,
//!   for at most `Config::idempotency_wait` (10 s), then gets 409 `idempotency_error` with
//!   `Retry-After`. Waiting serves the SDKs that do not retry 409 (Python, Node, Go); Ruby
//!   retries it.
//! * Server errors (5xx) and 429 are not stored: the claim is released and a retry runs
//!   again (a 5xx did not finish its work, and a 429 promises that a later try may pass).
//!   Other answers, 4xx included, are stored and replayed, like Stripe does.
//! * A claim without an answer older than [`ABANDONED_AFTER_MS`] (its node crashed) is taken
//!   over by the next repeat, in the same claim statement.
//!
//! The handler runs in a task of its own, so a client that disconnects (the moment an SDK
//! times out and retries) does not cancel it half-way: it finishes and stores its answer, and
//! the retry gets that answer.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use futures_util::FutureExt;
use sha2::{Digest, Sha256};
use tessera_core::seal::Sealed;
use tessera_core::{Error, Timestamp};
use tessera_store::{idempotency_id, IdempotencyClaim, IdempotencyResponse, IdempotencyRow};
use tracing::Instrument;

use crate::error::ApiError;
use crate::extract::{bearer_token, ApiKey};
use crate::services::api_keys::authenticate_key;
use crate::AppState;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Longest accepted key, in bytes (the SDKs send 36 to 42: a UUID, `retry-` + a UUID).
pub const MAX_KEY_LEN: usize = 255;
/// How long a key and its answer are kept (what WorkOS documents for its keys).
pub const TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// A claim without an answer this old is abandoned (its node crashed) and the same request
/// may take it over. Longer than any request runs: the body is read before the claim, and a
/// handler's slowest steps (a database acquire, an SMS delivery) time out within 10 s each.
pub const ABANDONED_AFTER_MS: i64 = 60 * 1000;
/// The purpose tag of sealed answers (part of the AES-GCM associated data, with the row's
/// id, [`tessera_store::idempotency_id`]: `<api key id>:<idempotency key>`).
pub const SEAL_PURPOSE: &str = "idempotency_response";

/// The layer (see the module docs). Written as a `tower` service rather than with
/// `axum::middleware::from_fn` so that the requests it does not act on (every GET, every POST
/// without the header) go straight to their route: `from_fn` boxes and clones the route's
/// service for every request, which cost `/health` about 3 µs of its 12.
#[derive(Clone)]
pub struct IdempotencyLayer {
    state: AppState,
}

impl IdempotencyLayer {
    pub fn new(state: AppState) -> Self {
        IdempotencyLayer { state }
    }
}

impl<S> tower::Layer<S> for IdempotencyLayer {
    type Service = Idempotent<S>;

    fn layer(&self, inner: S) -> Idempotent<S> {
        Idempotent {
            inner,
            state: self.state.clone(),
        }
    }
}

/// A route wrapped by [`IdempotencyLayer`].
#[derive(Clone)]
pub struct Idempotent<S> {
    inner: S,
    state: AppState,
}

type Keyed = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> tower::Service<Request> for Idempotent<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Keyed>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.method() != Method::POST || !req.headers().contains_key(HEADER) {
            return Either::Left(self.inner.call(req));
        }
        // Take the service that was made ready, leave a clone in its place (tower's rule).
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        let state = self.state.clone();
        Either::Right(Box::pin(async move { Ok(keyed(state, inner, req).await) }))
    }
}

/// A POST with an `Idempotency-Key` header.
async fn keyed<S>(state: AppState, inner: S, req: Request) -> Response
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let Some(raw_key) = req.headers().get(HEADER) else {
        return run_plain(inner, req).await;
    };
    let key = valid_key(raw_key).map(str::to_owned);
    // Without a bearer key (the sign-in endpoint reads its key from the body) or with a bad
    // one, the request goes on unchanged and its handler answers as it always does.
    let api_key_id = match bearer_token(req.headers()) {
        Some(presented) => authenticate_key(&state, presented).await.ok(),
        None => None,
    };
    let Some(api_key_id) = api_key_id else {
        return run_plain(inner, req).await;
    };
    let Some(key) = key else {
        return ApiError::from(Error::InvalidIdempotencyKey).into_response();
    };
    let (mut parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, state.config.body_limit_bytes).await {
        Ok(b) => b,
        Err(e) => return body_error(e).into_response(),
    };
    let fingerprint = fingerprint(&parts.method, &parts.uri, &body);
    parts.extensions.insert(ApiKey {
        id: api_key_id.clone(),
    });
    let scope = Scope {
        id: idempotency_id(&api_key_id, &key),
        api_key_id,
    };
    match claim_or_answer(&state, &scope, &fingerprint).await {
        Ok(Claim::Held(claimed_at)) => {
            let req = Request::from_parts(parts, Body::from(body));
            run(state, scope, claimed_at, req, inner).await
        }
        Ok(Claim::Answered(r)) => r,
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The key, if it is 1 to [`MAX_KEY_LEN`] bytes of printable ASCII.
fn valid_key(raw: &HeaderValue) -> Option<&str> {
    let bytes = raw.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_KEY_LEN
        || !bytes.iter().all(|b| (0x20..0x7f).contains(b))
    {
        return None;
    }
    raw.to_str().ok()
}

/// What JSON bodies answer when a body cannot be read: 413 past the limit, 400 otherwise.
fn body_error(e: axum::Error) -> ApiError {
    let inner = e.into_inner();
    if inner.is::<http_body_util::LengthLimitError>() {
        ApiError::PayloadTooLarge
    } else {
        ApiError::Domain(Error::MalformedJson(format!(
            "the request body could not be read: {inner}"
        )))
    }
}

/// SHA-256 of method, path with query, and body: what "the same request" means.
pub fn fingerprint(method: &Method, uri: &axum::http::Uri, body: &[u8]) -> Vec<u8> {
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    Sha256::new()
        .chain_update(method.as_str())
        .chain_update(b"\n")
        .chain_update(target)
        .chain_update(b"\n")
        .chain_update(body)
        .finalize()
        .to_vec()
}

struct Scope {
    /// The row's id: `<api key id>:<key>`.
    id: String,
    api_key_id: String,
}

enum Claim {
    /// This request holds the key, claimed at this time: it runs.
    Held(Timestamp),
    /// The answer for this request: the stored one.
    Answered(Response),
}

/// Claims the key, or finds the answer to give instead (waiting, bounded, while the first
/// request runs).
async fn claim_or_answer(
    state: &AppState,
    scope: &Scope,
    fingerprint: &[u8],
) -> Result<Claim, Error> {
    let deadline = tokio::time::Instant::now() + state.config.idempotency_wait;
    let mut pause = Duration::from_millis(5);
    loop {
        let now = state.now();
        let claim = IdempotencyClaim {
            id: &scope.id,
            fingerprint,
            now,
            expired_by: now.minus_millis(TTL_MS),
            abandoned_by: now.minus_millis(ABANDONED_AFTER_MS),
        };
        if state.store.claim_idempotency_key(&claim).await? {
            return Ok(Claim::Held(now));
        }
        match state.store.find_idempotency_key(&scope.id).await? {
            // Not a secret (a hash of the request), so no constant-time comparison.
            Some(row) if row.fingerprint != fingerprint => return Err(Error::IdempotencyKeyReused),
            Some(row) if row.response_status.is_some() => {
                return replay(state, scope, &row).map(Claim::Answered)
            }
            // Still running; or gone since the claim (released after a 5xx, or pruned), and
            // the next claim will likely get it.
            Some(_) | None => {}
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(Error::IdempotencyKeyInProgress {
                retry_after_secs: 1,
            });
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The stored answer, as it was first sent (status, `Content-Type`, body).
fn replay(state: &AppState, scope: &Scope, row: &IdempotencyRow) -> Result<Response, Error> {
    let (Some(status), Some(key_id), Some(blob)) = (
        row.response_status,
        row.response_key_id.as_ref(),
        row.response_sealed.as_ref(),
    ) else {
        return Err(Error::internal("an answered idempotency key has no body"));
    };
    let body = state
        .keys
        .open(
            SEAL_PURPOSE,
            &scope.id,
            &Sealed {
                key_id: key_id.clone(),
                blob: blob.clone(),
            },
        )
        .map_err(|e| Error::internal(format!("stored idempotent answer: {e}")))?;
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| Error::internal(format!("stored idempotent status {status}")))?;
    let mut r = Response::new(Body::from(body.to_vec()));
    *r.status_mut() = status;
    if let Some(ct) = row
        .response_content_type
        .as_deref()
        .and_then(|ct| HeaderValue::from_str(ct).ok())
    {
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    r.headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    Ok(r)
}

/// Whether an answer is stored for replay: not server errors (the work may not have been
/// done, and a retry should run it) and not 429 (nothing was done, and `Retry-After` says
/// when a retry may pass).
fn is_stored(status: StatusCode) -> bool {
    !status.is_server_error() && status != StatusCode::TOO_MANY_REQUESTS
}

/// Runs a request the layer does not act on after all (no valid bearer key).
async fn run_plain<S>(mut inner: S, req: Request) -> Response
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    match inner.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// Runs the request holding the claim, in its own task (see the module docs), and stores or
/// releases the claim with its answer. A panicking handler is answered with the 500 of the
/// outer panic catcher, which releases the claim like any server error.
async fn run<S>(
    state: AppState,
    scope: Scope,
    claimed_at: Timestamp,
    req: Request,
    mut inner: S,
) -> Response
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let handler = inner.call(req);
    // In the request's span, so the handler's log lines keep the request's fields.
    let task = tokio::spawn(
        async move {
            let resp = match AssertUnwindSafe(handler).catch_unwind().await {
                Ok(Ok(r)) => r,
                Ok(Err(never)) => match never {},
                Err(panic) => crate::routes::panic_response(panic),
            };
            settle(&state, &scope, claimed_at, resp).await
        }
        .in_current_span(),
    );
    match task.await {
        Ok(r) => r,
        // Only when the runtime shuts down: panics are caught inside the task.
        Err(e) => {
            ApiError::from(Error::internal(format!("idempotent request task: {e}"))).into_response()
        }
    }
}

async fn settle(
    state: &AppState,
    scope: &Scope,
    claimed_at: Timestamp,
    resp: Response,
) -> Response {
    let (parts, body) = resp.into_parts();
    // Answers are JSON built in memory: reading them whole costs a copy at most.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            release(state, scope, claimed_at).await;
            return ApiError::from(Error::internal(format!("reading an answer: {e}")))
                .into_response();
        }
    };
    if is_stored(parts.status) {
        let sealed = match state.keys.seal(SEAL_PURPOSE, &scope.id, &bytes) {
            Ok(s) => s,
            // As when storing fails below: the answer goes out, unstored, and the claim stays.
            Err(e) => {
                tracing::warn!(error = %e, "could not seal an idempotent answer; a retry with its key waits for the claim to be abandoned, then runs again");
                return Response::from_parts(parts, Body::from(bytes));
            }
        };
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let stored = state
            .store
            .complete_idempotency_key(
                &scope.id,
                claimed_at,
                &IdempotencyResponse {
                    status: i64::from(parts.status.as_u16()),
                    content_type,
                    key_id: &sealed.key_id,
                    sealed: &sealed.blob,
                },
            )
            .await;
        match stored {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                api_key_id = %scope.api_key_id,
                "an idempotent request ran longer than the abandoned-claim time and its claim was taken over: its answer was not stored"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "could not store an idempotent answer; a retry with its key waits for the claim to be abandoned, then runs again"
            ),
        }
    } else {
        release(state, scope, claimed_at).await;
    }
    Response::from_parts(parts, Body::from(bytes))
}

async fn release(state: &AppState, scope: &Scope, claimed_at: Timestamp) {
    if let Err(e) = state
        .store
        .release_idempotency_key(&scope.id, claimed_at)
        .await
    {
        tracing::warn!(error = %e, "could not release an idempotency key after a failed request; a retry with it runs once the claim is abandoned");
    }
}

/// Declares the header on every POST operation that takes an API key, with the answers it
/// can add (400 for a bad or reused key, 409 while the first request runs).
pub fn document(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{Ref, RefOr, ResponseBuilder};
    for item in doc.paths.paths.values_mut() {
        let Some(op) = item.post.as_mut() else {
            continue;
        };
        let bearer = op.security.as_ref().is_some_and(|s| {
            s.iter().any(|req| {
                serde_json::to_value(req)
                    .ok()
                    .and_then(|v| v.as_object().map(|o| o.contains_key("bearer")))
                    .unwrap_or(false)
            })
        });
        if !bearer {
            continue;
        }
        let param = ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(utoipa::openapi::Required::False)
            .description(Some(
                "Makes a retry safe: the same request with the same key (per API key, for 24 hours) gets the first answer without running again.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(MAX_KEY_LEN)),
            ))
            .build();
        op.parameters.get_or_insert_with(Vec::new).push(param);
        let responses = &mut op.responses.responses;
        if let Some(RefOr::T(r)) = responses.get_mut("400") {
            r.description
                .push_str("; or an invalid or reused Idempotency-Key");
        }
        responses.entry("400".into()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description("Invalid or reused Idempotency-Key")
                    .content(
                        "application/json",
                        utoipa::openapi::ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        });
        responses.entry("409".into()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description("`idempotency_error`: a request with this Idempotency-Key is still running (`Retry-After`)")
                    .content(
                        "application/json",
                        utoipa::openapi::ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_1_to_255_bytes_of_printable_ascii() {
        let ok = |s: &str| valid_key(&HeaderValue::from_str(s).unwrap()).is_some();
        assert!(ok("a"));
        assert!(ok("retry-6f1c2e9a-2c1b-4d59-9a51-1f0e8c3b7a20"));
        assert!(ok(&"k".repeat(255)));
        assert!(!ok(""));
        assert!(!ok(&"k".repeat(256)));
        assert!(!ok("tab\there"));
        assert!(valid_key(&HeaderValue::from_bytes(b"caf\xe9").unwrap()).is_none());
    }

    #[test]
    fn the_fingerprint_covers_method_path_query_and_body() {
        let fp = |m: Method, u: &str, b: &[u8]| fingerprint(&m, &u.parse().unwrap(), b);
        let base = fp(Method::POST, "/a", b"{}");
        assert_eq!(base, fp(Method::POST, "/a", b"{}"));
        assert_eq!(base.len(), 32);
        for other in [
            fp(Method::PUT, "/a", b"{}"),
            fp(Method::POST, "/b", b"{}"),
            fp(Method::POST, "/a?x=1", b"{}"),
            fp(Method::POST, "/a", b"{ }"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn answers_below_500_are_stored_except_429() {
        for kept in [200, 201, 204, 400, 403, 404, 409, 413, 415, 422] {
            assert!(is_stored(StatusCode::from_u16(kept).unwrap()), "{kept}");
        }
        for not in [429, 500, 502, 503, 504] {
            assert!(!is_stored(StatusCode::from_u16(not).unwrap()), "{not}");
        }
    }
}
