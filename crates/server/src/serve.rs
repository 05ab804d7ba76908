//! The accept loop: hyper with the limits a public-facing server needs, which `axum::serve`
//! does not set, the same for HTTP/1 and HTTP/2 (auto-detected, or with prior knowledge):
//!
//! * a bounded number of open connections: past it a new connection is closed at once (and
//!   a rate-limited line says so), so idle sockets cannot exhaust file descriptors and starve
//!   `/health` and the database;
//! * every connection must complete a request head within `header_read_timeout` of being
//!   accepted, whatever it sends (nothing, one byte, only the HTTP/2 preface): hyper's
//!   protocol detection and HTTP/2 have no such timeout of their own;
//! * a connection with no request in flight is closed after `idle_timeout` (HTTP/1
//!   keep-alive and HTTP/2 alike; HTTP/2 PINGs do not count as activity);
//! * at most [`MAX_HEADERS`] request headers (431) on both protocols, and an HTTP/2 header
//!   list of at most [`MAX_HEADER_LIST_BYTES`];
//! * a failed `accept` (out of file descriptors) backs off, up to a second, and is logged at
//!   most every few seconds; the open connections keep being served;
//! * every request knows its peer address (`ConnectInfo`, for events and throttling);
//! * on shutdown, accepting stops and open connections finish their in-flight requests.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::time::Instant;
use tower::ServiceExt;

/// Request headers allowed per request (HTTP/1 counts them while parsing; HTTP/2 requests
/// are counted before routing). A real client sends a dozen or two.
pub const MAX_HEADERS: usize = 100;
/// Largest HTTP/2 header list (HPACK-decoded, 32 bytes of overhead per field); h2 answers a
/// larger one with 431 itself.
pub const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;
/// How often the "connection limit reached" and "accept failed" lines may be logged.
const LOG_EVERY: Duration = Duration::from_secs(5);
/// How long an idle connection is given to close after the server said goodbye.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long in-flight requests may take to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// File descriptors kept for everything but client connections (database files and
/// connections, the listener, the runtime, outgoing SMS requests).
const RESERVED_FDS: u64 = 128;

/// The limits of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// From accept to a complete first request head.
    pub header_read_timeout: Duration,
    /// With no request in flight, how long a connection stays open.
    pub idle_timeout: Duration,
    /// Open client connections at most.
    pub max_open_connections: usize,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (at most 30 s).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cap = limits.max_open_connections.clamp(1, u32::MAX as usize);
    let slots = Arc::new(tokio::sync::Semaphore::new(cap));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_LIST_BYTES);
    let builder = Arc::new(builder);
    let mut refused_log = RateLimitedLog::default();
    let mut accept_log = RateLimitedLog::default();
    let mut backoff = Duration::ZERO;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    backoff = Duration::ZERO;
                    a
                }
                Err(e) => {
                    // Out of file descriptors and the like: the failing connection stays
                    // queued, so retrying at once would spin. Back off, keep serving the
                    // open connections, and say so now and then, not on every retry.
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    if let Some(suppressed) = accept_log.hit(Instant::now()) {
                        tracing::warn!(error = %e, suppressed, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // At the cap: close at once (the client sees the connection end) rather than
            // leaving it in the kernel's queue, where it would hold a slot of the backlog.
            drop(stream);
            if let Some(suppressed) = refused_log.hit(Instant::now()) {
                tracing::warn!(
                    limit = cap,
                    suppressed,
                    "open-connection limit reached: new connections are closed until others end (--max-open-connections)"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let svc = tower::service_fn({
            let app = app.clone();
            let activity = activity.clone();
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                let app = app.clone();
                let busy = activity.begin();
                async move {
                    let _busy = busy;
                    if req.headers().len() > MAX_HEADERS {
                        return Ok(too_many_headers());
                    }
                    req.extensions_mut().insert(ConnectInfo(peer));
                    app.oneshot(req).await
                }
            }
        });
        let builder = builder.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                hyper_util::service::TowerToHyperService::new(svc),
            );
            tokio::pin!(conn);
            let mut draining = false;
            let mut idle_deadline: Option<Instant> = None;
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    () = activity.idle(limits), if idle_deadline.is_none() => {
                        if !activity.has_served() {
                            // Never sent a complete request head in time: nothing to be
                            // polite about.
                            break;
                        }
                        // Say goodbye (an HTTP/2 GOAWAY tells the client to open a new
                        // connection for its next request), then close shortly after
                        // whatever the client does: h2 waits for the client to end an idle
                        // connection that it still holds.
                        conn.as_mut().graceful_shutdown();
                        idle_deadline =
                            Some(Instant::now() + limits.idle_timeout.min(GOODBYE_TIMEOUT));
                    }
                    () = sleep_until_some(idle_deadline) => break,
                    _ = stop.changed(), if !draining => {
                        conn.as_mut().graceful_shutdown();
                        draining = true;
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it ends: all slots back means all drained.
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within 30 s");
    }
    Ok(())
}

/// Raises the soft limit of open files to the hard limit (as Go's runtime does) and returns
/// how many client connections fit under it, at most `wanted`, so the connection cap is
/// reached before `accept` runs out of file descriptors.
pub fn connection_cap_within_fd_limit(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut lim = getrlimit(Resource::Nofile);
        if lim.current < lim.maximum {
            let raised = rustix::process::Rlimit {
                current: lim.maximum,
                maximum: lim.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                lim = getrlimit(Resource::Nofile);
            }
        }
        if let Some(soft) = lim.current {
            let fit = usize::try_from(soft.saturating_sub(RESERVED_FDS).max(16)).unwrap_or(wanted);
            if fit < wanted {
                tracing::warn!(
                    wanted,
                    open_files_limit = soft,
                    using = fit,
                    "the open-files limit (ulimit -n) is too low for --max-open-connections; the connection limit is lowered to fit"
                );
                return fit;
            }
        }
    }
    wanted
}

/// 431 in our error shape, for an HTTP/2 request with too many headers (HTTP/1 requests
/// are refused by the parser, with an empty 431).
fn too_many_headers() -> Response {
    (
        axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        axum::Json(serde_json::json!({
            "code": "request_header_fields_too_large",
            "message": format!("A request may carry at most {MAX_HEADERS} headers."),
        })),
    )
        .into_response()
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// What a connection is doing, for its idle deadline: requests in flight, whether one has
/// been served, and when the last one ended (ms since the connection was accepted).
struct Activity {
    accepted: Instant,
    in_flight: AtomicUsize,
    served: AtomicBool,
    last_ms: AtomicU64,
    /// Signalled when a request begins or ends, so the deadline is computed again.
    changed: tokio::sync::Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            last_ms: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn has_served(&self) -> bool {
        self.served.load(Ordering::Acquire)
    }

    /// A request head is complete and the request is being handled until the guard drops.
    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served.store(true, Ordering::Release);
        self.changed.notify_one();
        Busy(self.clone())
    }

    /// Resolves once the connection has had nothing in flight for its limit: the header
    /// timeout before the first request, the idle timeout after.
    async fn idle(&self, limits: ServeLimits) {
        loop {
            let limit = if self.has_served() {
                limits.idle_timeout
            } else {
                limits.header_read_timeout
            };
            let last = Duration::from_millis(self.last_ms.load(Ordering::Acquire));
            let deadline = self.accepted + last + limit;
            if self.in_flight.load(Ordering::Acquire) == 0 && Instant::now() >= deadline {
                return;
            }
            // Wait for the deadline or for a request to begin or end (a stored
            // notification is not lost between the check above and this wait).
            if self.in_flight.load(Ordering::Acquire) > 0 {
                self.changed.notified().await;
            } else {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = self.changed.notified() => {}
                }
            }
        }
    }
}

/// Marks one request in flight; its drop records when the connection last did something.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        let since = u64::try_from(a.accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
        a.last_ms.fetch_max(since, Ordering::AcqRel);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
        a.changed.notify_one();
    }
}

/// Lets a line through at most every [`LOG_EVERY`], counting the ones held back.
#[derive(Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    /// `Some(lines held back since the last one)` when this one may be logged.
    fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < LOG_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limited_log_lets_one_line_through_per_period_and_counts_the_rest() {
        let mut log = RateLimitedLog::default();
        let t0 = Instant::now();
        assert_eq!(log.hit(t0), Some(0));
        for i in 1..=50 {
            assert_eq!(log.hit(t0 + Duration::from_millis(i * 50)), None);
        }
        assert_eq!(log.hit(t0 + LOG_EVERY), Some(50));
        assert_eq!(log.hit(t0 + LOG_EVERY + Duration::from_millis(1)), None);
    }
}
