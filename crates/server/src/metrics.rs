//! Prometheus metrics: what is recorded, the HTTP layer that times every request, and the
//! `GET /metrics` router served on its own listener (`--metrics-listen`), never on the API's.
//!
//! Each [`Application`](crate::Application) owns one [`Metrics`] with its own
//! `prometheus-client` registry, carried in `AppState` like everything else: no global
//! recorder, so the many servers a test binary starts in one process count apart, and a
//! test can assert exact amounts.
//!
//! Recording is atomics only. The outcome counters of verifications are resolved once, at
//! start; HTTP requests find their counter by a read lock of the label map (one atomic on
//! the lock word when nobody is inserting) keyed by the route's template, which is the
//! `Arc<str>` axum already holds for the matched route (no string is built per request).
//! Durations go to [`DurationHistogram`], buckets of atomic counters.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, State};
use axum::http::{Method, Request, Response};
use axum::response::IntoResponse;
use axum::Router;
use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};
use tessera_core::Error;
use tessera_store::{DbKind, PoolStats};

use crate::AppState;

// ---- what is counted ----------------------------------------------------------------------

/// The outcome of one verification of a one-time code (`POST /auth/challenges/:id/verify`,
/// the `mfa-totp` grant, the hosted code page and the dashboard's admin sign-in all verify
/// through `services::mfa::verify`, which records it). A challenge that does not exist, or a
/// request without a code, is no verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The code was right and the challenge is now verified.
    Valid,
    /// A wrong code, evaluated and charged (also the one that locks the factor).
    Invalid,
    /// A right TOTP code that was already accepted (the replay guard).
    Replayed,
    /// Refused unevaluated: the factor's or the user's failure limit.
    RateLimited,
    /// Refused: the challenge's time is up.
    Expired,
    /// Refused: the factor is locked after consecutive failures.
    Locked,
    /// Refused: the challenge has had its attempts.
    TooManyAttempts,
    /// Refused: the challenge was verified before.
    AlreadyVerified,
}

impl Verification {
    const ALL: [Verification; 8] = [
        Verification::Valid,
        Verification::Invalid,
        Verification::Replayed,
        Verification::RateLimited,
        Verification::Expired,
        Verification::Locked,
        Verification::TooManyAttempts,
        Verification::AlreadyVerified,
    ];

    fn label(self) -> &'static str {
        match self {
            Verification::Valid => "valid",
            Verification::Invalid => "invalid",
            Verification::Replayed => "replayed",
            Verification::RateLimited => "rate_limited",
            Verification::Expired => "expired",
            Verification::Locked => "locked",
            Verification::TooManyAttempts => "too_many_attempts",
            Verification::AlreadyVerified => "already_verified",
        }
    }
}

/// How a sign-in step was asked for: a grant of `POST /user_management/authenticate`, or a
/// step of the hosted pages (which then end in an `authorization_code` grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Password,
    MfaTotp,
    RefreshToken,
    AuthorizationCode,
    HostedPassword,
    HostedTotp,
}

impl Grant {
    /// The grant of an API request; `None` for an unsupported `grant_type` (a malformed
    /// request, counted by the HTTP metrics only, so that no client-chosen string becomes
    /// a label value).
    pub fn of_grant_type(grant_type: &str) -> Option<Grant> {
        match grant_type {
            "password" => Some(Grant::Password),
            crate::services::signin::MFA_TOTP_GRANT => Some(Grant::MfaTotp),
            "refresh_token" => Some(Grant::RefreshToken),
            crate::services::authkit::CODE_GRANT => Some(Grant::AuthorizationCode),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Grant::Password => "password",
            Grant::MfaTotp => "mfa_totp",
            Grant::RefreshToken => "refresh_token",
            Grant::AuthorizationCode => "authorization_code",
            Grant::HostedPassword => "hosted_password",
            Grant::HostedTotp => "hosted_totp",
        }
    }
}

/// The outcome of a sign-in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInResult {
    /// Tokens issued (or, on the hosted pages, the step passed).
    Success,
    /// The password was right and MFA must follow (`mfa_challenge`, `mfa_enrollment`).
    MfaRequired,
    /// Wrong credentials, code, token, client or request.
    Failed,
    /// Refused by a throttle (429).
    RateLimited,
    /// Refused: the TOTP factor is locked.
    Locked,
    /// The server failed (500).
    Error,
    /// The database could not be reached (503).
    Unavailable,
}

impl SignInResult {
    /// The outcome a failed step's error stands for.
    pub fn of_error(e: &Error) -> SignInResult {
        match e {
            Error::AuthenticationFlow(_) => SignInResult::MfaRequired,
            Error::RateLimited { .. } => SignInResult::RateLimited,
            Error::FactorLocked(_) => SignInResult::Locked,
            Error::Internal(_) => SignInResult::Error,
            Error::Unavailable(_) => SignInResult::Unavailable,
            Error::NotFound { .. }
            | Error::Validation(_)
            | Error::MalformedJson(_)
            | Error::EmailNotAvailable(_)
            | Error::ExternalIdAlreadyUsed(_)
            | Error::PasswordStrength(_)
            | Error::InvalidPhoneNumber(_)
            | Error::ChallengeExpired(_)
            | Error::ChallengePreviouslyVerified(_)
            | Error::TooManyAttempts(_)
            | Error::SmsDeliveryFailed(_)
            | Error::InvalidClient
            | Error::InvalidGrant(_)
            | Error::UnsupportedGrantType(_)
            | Error::InvalidIdempotencyKey
            | Error::IdempotencyKeyReused
            | Error::IdempotencyKeyInProgress { .. }
            | Error::AuthenticationFailed { .. }
            | Error::AuthorizationRefused(_)
            | Error::Unauthorized => SignInResult::Failed,
        }
    }

    /// The outcome of a step that answers `Ok` on success.
    pub fn of<T>(r: &Result<T, Error>) -> SignInResult {
        match r {
            Ok(_) => SignInResult::Success,
            Err(e) => SignInResult::of_error(e),
        }
    }

    fn label(self) -> &'static str {
        match self {
            SignInResult::Success => "success",
            SignInResult::MfaRequired => "mfa_required",
            SignInResult::Failed => "failed",
            SignInResult::RateLimited => "rate_limited",
            SignInResult::Locked => "locked",
            SignInResult::Error => "error",
            SignInResult::Unavailable => "unavailable",
        }
    }
}

/// What became of an SMS code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsResult {
    /// The provider accepted the message.
    Sent,
    /// The provider refused it or could not be reached (502 `sms_delivery_failed`).
    Failed,
    /// Not sent: the phone number's limit (SMS pumping shows here first).
    RateLimited,
}

impl SmsResult {
    fn label(self) -> &'static str {
        match self {
            SmsResult::Sent => "sent",
            SmsResult::Failed => "failed",
            SmsResult::RateLimited => "rate_limited",
        }
    }
}

// ---- labels -------------------------------------------------------------------------------

/// HTTP methods as a closed set: a client-chosen method cannot add label values.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

impl HttpMethod {
    fn of(m: &Method) -> HttpMethod {
        match *m {
            Method::GET => HttpMethod::Get,
            Method::HEAD => HttpMethod::Head,
            Method::POST => HttpMethod::Post,
            Method::PUT => HttpMethod::Put,
            Method::PATCH => HttpMethod::Patch,
            Method::DELETE => HttpMethod::Delete,
            Method::OPTIONS => HttpMethod::Options,
            _ => HttpMethod::Other,
        }
    }
}

impl EncodeLabelValue for HttpMethod {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Other => "OTHER",
        })
    }
}

/// The label of a request's route: the matched route's template (`/auth/factors/{id}`),
/// never the path with its ids, or `unmatched` for the fallback (any path a client makes up
/// is one label value).
#[derive(Debug, Clone)]
enum Route {
    /// axum's `MatchedPath`: a shared `Arc<str>`, cloned without allocating.
    Template(MatchedPath),
    Unmatched,
}

/// The label value of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

impl Route {
    fn as_str(&self) -> &str {
        match self {
            Route::Template(m) => m.as_str(),
            Route::Unmatched => UNMATCHED,
        }
    }
}

impl std::hash::Hash for Route {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: HttpMethod,
    route: Route,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Route,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignInLabels {
    grant: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SmsLabels {
    provider: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

// ---- the request-duration histogram -------------------------------------------------------

/// Upper bounds (seconds) of the request-duration buckets: from a cached read (well under a
/// millisecond) through verifications and enrolments (milliseconds) to password hashing
/// and SMS delivery (up to seconds).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of durations whose observation is two atomic additions.
///
/// Written here rather than taken from `prometheus-client`, whose `Histogram` locks a mutex
/// on every observation (its source says so, with a TODO to use atomics); every request
/// observes one. The library still encodes it (`encode_histogram`), so the exposition format
/// is not ours.
#[derive(Debug, Clone, Default)]
pub struct DurationHistogram(Arc<HistogramCells>);

#[derive(Debug, Default)]
struct HistogramCells {
    /// Observations per bucket (not cumulative); the last one is above every bound.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = DURATION_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counts: Vec<u64> = self
            .0
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        // The count is the buckets' sum, so the two agree however observations interleave
        // with this read.
        let count = counts.iter().sum();
        let buckets: Vec<(f64, u64)> = DURATION_BUCKETS.iter().copied().zip(counts).collect();
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

// ---- the registry -------------------------------------------------------------------------

/// One application's metrics (see the module header). Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: Family<RouteLabels, DurationHistogram>,
    /// By `Verification as usize`, resolved at start.
    verifications: Vec<Counter>,
    sign_ins: Family<SignInLabels, Counter>,
    sms: Family<SmsLabels, Counter>,
    pool_connections: Family<StateLabels, Gauge>,
    pool_max: Gauge,
    writer_queue: Gauge,
}

impl Metrics {
    /// The metrics of a server on a database of this kind (whose pool gauges it carries).
    pub fn new(db: DbKind) -> Metrics {
        let mut registry = Registry::with_prefix("tessera");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            http_requests.clone(),
        );
        let http_duration = Family::<RouteLabels, DurationHistogram>::default();
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's head to its response's head, by route template",
            Unit::Seconds,
            http_duration.clone(),
        );
        let verification_family = Family::<ResultLabels, Counter>::default();
        registry.register(
            "mfa_verifications",
            "Verifications of one-time codes, by outcome",
            verification_family.clone(),
        );
        // Resolved (and so shown at 0) from the start: the hot path is one atomic addition.
        let verifications = Verification::ALL
            .iter()
            .map(|v| {
                verification_family
                    .get_or_create(&ResultLabels { result: v.label() })
                    .clone()
            })
            .collect();
        let sign_ins = Family::<SignInLabels, Counter>::default();
        registry.register(
            "sign_ins",
            "Sign-in attempts, by grant (or hosted-page step) and outcome",
            sign_ins.clone(),
        );
        let sms = Family::<SmsLabels, Counter>::default();
        registry.register(
            "sms_sent",
            "SMS codes, by provider and outcome",
            sms.clone(),
        );
        let pool_connections = Family::<StateLabels, Gauge>::default();
        let pool_max = Gauge::default();
        let writer_queue = Gauge::default();
        match db {
            DbKind::Postgres => {
                registry.register(
                    "db_pool_connections",
                    "PostgreSQL pool connections, in use or idle",
                    pool_connections.clone(),
                );
                registry.register(
                    "db_pool_max_connections",
                    "The PostgreSQL pool's ceiling (--max-connections)",
                    pool_max.clone(),
                );
            }
            DbKind::Sqlite => {
                registry.register(
                    "db_pool_connections",
                    "SQLite reader connections, in use or idle",
                    pool_connections.clone(),
                );
                registry.register(
                    "db_writer_queue_depth",
                    "Writes waiting for SQLite's single writer connection",
                    writer_queue.clone(),
                );
            }
        }
        let build_info = Family::<VersionLabels, Gauge>::default();
        registry.register(
            "build_info",
            "Always 1, labelled with the version of this server",
            build_info.clone(),
        );
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        Metrics {
            registry,
            http_requests,
            http_duration,
            verifications,
            sign_ins,
            sms,
            pool_connections,
            pool_max,
            writer_queue,
        }
    }

    pub fn verification(&self, v: Verification) {
        if let Some(c) = self.verifications.get(v as usize) {
            c.inc();
        }
    }

    pub fn sign_in(&self, grant: Grant, result: SignInResult) {
        self.sign_ins
            .get_or_create(&SignInLabels {
                grant: grant.label(),
                result: result.label(),
            })
            .inc();
    }

    pub fn sms(&self, provider: &'static str, result: SmsResult) {
        self.sms
            .get_or_create(&SmsLabels {
                provider,
                result: result.label(),
            })
            .inc();
    }

    fn request(&self, method: HttpMethod, route: Route, status: u16, took: Duration) {
        // The duration first, while `route` can be moved into the counter's key after.
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(took);
        self.http_requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// The exposition text (Prometheus text format 0.0.4), with the pool gauges as of now.
    pub fn render(&self, pools: PoolStats) -> Result<String, std::fmt::Error> {
        let gauge = |n: u32| i64::from(n);
        let (in_use, idle) = match pools {
            PoolStats::Postgres { open, idle, max } => {
                self.pool_max.set(gauge(max));
                (open.saturating_sub(idle), idle)
            }
            PoolStats::Sqlite {
                readers_in_use,
                readers_idle,
                writer_queue,
            } => {
                self.writer_queue.set(gauge(writer_queue));
                (readers_in_use, readers_idle)
            }
        };
        self.pool_connections
            .get_or_create(&StateLabels { state: "in_use" })
            .set(gauge(in_use));
        self.pool_connections
            .get_or_create(&StateLabels { state: "idle" })
            .set(gauge(idle));
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

// ---- the HTTP layer -----------------------------------------------------------------------

/// Counts and times every request. Added with `Router::layer`, which wraps each route (and
/// the fallback) after routing, so the matched route's template is in the request.
#[derive(Debug, Clone)]
pub struct HttpMetricsLayer(Arc<Metrics>);

impl HttpMetricsLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        HttpMetricsLayer(metrics)
    }
}

impl<S> tower::Layer<S> for HttpMetricsLayer {
    type Service = HttpMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpMetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> tower::Service<Request<B>> for HttpMetricsService<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let route = match req.extensions().get::<MatchedPath>() {
            Some(m) => Route::Template(m.clone()),
            None => Route::Unmatched,
        };
        let method = HttpMethod::of(req.method());
        ResponseFuture {
            // A duration, not a time of day: the monotonic clock, not the injected `Clock`
            // (which tests stop).
            started: Instant::now(),
            labels: Some((method, route)),
            metrics: self.metrics.clone(),
            inner: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// Records the request when its response is ready.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        labels: Option<(HttpMethod, Route)>,
        metrics: Arc<Metrics>,
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let (Ok(res), Some((method, route))) = (&out, this.labels.take()) {
            this.metrics
                .request(method, route, res.status().as_u16(), this.started.elapsed());
        }
        Poll::Ready(out)
    }
}

// ---- GET /metrics -------------------------------------------------------------------------

/// The metrics listener's application: `GET /metrics` and 404 for anything else.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .fallback(|| async { crate::error::ApiError::RouteNotFound })
        .with_state(state)
}

async fn scrape(State(state): State<AppState>) -> axum::response::Response {
    match state.metrics.render(state.store.pool_stats()) {
        Ok(body) => (
            [(
                axum::http::header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the metrics");
            crate::error::ApiError::from(Error::internal(e)).into_response()
        }
    }
}
