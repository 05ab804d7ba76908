//! The maintenance task: prunes what requests leave behind, so storage does not grow without
//! bound from request data. Expired throttle rows, used or expired pending tokens,
//! challenges a day past their expiry, idempotency keys after their 24 hours, and events older
//! than `--event-retention-days`.
//!
//! Cut-offs come from the injected clock ([`prune`] is what tests call, with a manual one);
//! only the period between runs is real time. Every node runs the task: the deletes are
//! idempotent, so nodes pruning at once only share the work.

use tessera_core::Error;
use tessera_store::{PruneCutoffs, Pruned};

use crate::AppState;

/// Rows per DELETE: small enough that one batch holds the SQLite writer for a few
/// milliseconds at most.
pub const BATCH: i64 = 1000;

/// How long a challenge is kept after its expiry: within it, verifying it again still
/// answers "expired" or "already verified" instead of 404.
pub const CHALLENGE_GRACE_MS: i64 = 24 * 60 * 60 * 1000;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Where each table is cut at the state's current time.
pub fn cutoffs(state: &AppState) -> PruneCutoffs {
    let now = state.now();
    let days = i64::from(state.config.event_retention_days);
    PruneCutoffs {
        now,
        challenges_expired_by: now.minus_millis(CHALLENGE_GRACE_MS),
        events_before: (days > 0).then(|| now.minus_millis(days.saturating_mul(DAY_MS))),
        idempotency_keys_created_by: now.minus_millis(crate::idempotency::TTL_MS),
    }
}

/// One pass over every table, in batches of `batch` rows.
pub async fn prune(state: &AppState, batch: i64) -> Result<Pruned, Error> {
    state.store.prune(&cutoffs(state), batch).await
}

/// Starts the periodic task (the first pass runs at once). Abort the handle to stop it.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(state.config.maintenance_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match prune(&state, BATCH).await {
                Ok(p) if p != Pruned::default() => tracing::info!(?p, "pruned expired rows"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning failed; retried next period"),
            }
        }
    })
}
