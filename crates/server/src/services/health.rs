//! Whether the database answers, for `GET /health`, probed at most about once a second.
//!
//! `/health` is polled by load balancers and benchmarked at ~100k requests/s: a database
//! round trip per call would make it cost as much as an API request and load the database
//! with probes. So the result of one probe (`SELECT 1`, bounded by the database timeout) is
//! reused for [`FRESH_MS`] of the injected clock. While one probe runs, other calls answer
//! with the last result instead of queueing behind it (or piling onto a database that is
//! down).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crate::AppState;

/// How long a probe's result is reused.
pub const FRESH_MS: i64 = 1000;

/// The last probe's result and time.
#[derive(Debug)]
pub struct DbHealth {
    /// When the last probe ended (ms of the injected clock); `i64::MIN`: never.
    checked_at: AtomicI64,
    is_up: AtomicBool,
    probing: tokio::sync::Mutex<()>,
}

impl Default for DbHealth {
    /// Up, never probed: the server starts only after the database answered, and the first
    /// `/health` probes anyway.
    fn default() -> Self {
        DbHealth {
            checked_at: AtomicI64::new(i64::MIN),
            is_up: AtomicBool::new(true),
            probing: tokio::sync::Mutex::new(()),
        }
    }
}

impl DbHealth {
    /// The last result if it is recent at `now` (a clock that went back counts as stale).
    fn fresh(&self, now: i64) -> Option<bool> {
        let at = self.checked_at.load(Ordering::Acquire);
        (at != i64::MIN && now >= at && now - at < FRESH_MS)
            .then(|| self.is_up.load(Ordering::Acquire))
    }
}

/// Whether the database answered its latest probe; probes again when that is older than
/// [`FRESH_MS`].
pub async fn database_is_up(state: &AppState) -> bool {
    let health = &state.db_health;
    if let Some(up) = health.fresh(state.now().millis()) {
        return up;
    }
    let Ok(_probing) = health.probing.try_lock() else {
        return health.is_up.load(Ordering::Acquire);
    };
    // A probe may have ended between the check above and taking the lock.
    if let Some(up) = health.fresh(state.now().millis()) {
        return up;
    }
    let up = match state.store.ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "health check: the database does not answer");
            false
        }
    };
    health.is_up.store(up, Ordering::Release);
    health
        .checked_at
        .store(state.now().millis(), Ordering::Release);
    up
}
