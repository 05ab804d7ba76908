//! Pruning: deletes the rows that requests leave behind once they can no longer change any
//! answer (expired throttle rows, dead challenges and pending tokens, events past their
//! retention). Each table is pruned in bounded batches, one short write per batch, so a
//! large backlog never holds the writer (SQLite) or a long transaction (PostgreSQL).
//!
//! Every statement repeats its cut-off in the outer `WHERE`: on PostgreSQL a row that a
//! concurrent request changed between the inner `SELECT` and the `DELETE` (a throttle
//! charged again) is re-checked against its new version and kept.

use tessera_core::Error;

use tessera_core::id::{self, first_id_at};
use tessera_core::Timestamp;

use crate::sql::Arg;
use crate::Store;

/// Where each prune cuts (epoch milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneCutoffs {
    /// Throttle rows whose theoretical arrival time is at or before this are deleted, and
    /// pending tokens that expired at or before it (used ones at once).
    pub now: Timestamp,
    /// Challenges that expired at or before this are deleted.
    pub challenges_expired_by: Timestamp,
    /// Events created before this are deleted; `None` keeps every event.
    pub events_before: Option<Timestamp>,
    /// Idempotency keys created at or before this have expired and are deleted.
    pub idempotency_keys_created_by: Timestamp,
}

/// Rows deleted, per table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub password_limits: u64,
    pub sms_send_limits: u64,
    pub pending_tokens: u64,
    pub challenges: u64,
    pub events: u64,
    pub authorization_codes: u64,
    pub browser_sessions: u64,
    pub idempotency_keys: u64,
}

const PASSWORD_LIMITS: &str = "DELETE FROM password_limits WHERE tat <= $1 AND limit_key IN \
     (SELECT limit_key FROM password_limits WHERE tat <= $1 LIMIT $2)";
const SMS_SEND_LIMITS: &str = "DELETE FROM sms_send_limits WHERE tat <= $1 AND phone_number IN \
     (SELECT phone_number FROM sms_send_limits WHERE tat <= $1 LIMIT $2)";
const PENDING_TOKENS: &str = "DELETE FROM pending_tokens WHERE (used_at IS NOT NULL OR expires_at <= $1) \
     AND token_hash IN (SELECT token_hash FROM pending_tokens WHERE used_at IS NOT NULL OR expires_at <= $1 LIMIT $2)";
// Challenges and events are found by a range of their primary key (ids are ULIDs in the
// clock's time order), not by an index on a time column: such an index would cost every
// enrolment, challenge and verification (each writes an event) one more index insert, for
// a prune that runs every 10 minutes. A challenge expires after it was created, so one that
// expired by the cut-off was created before it; the outer `expires_at` re-checks.
const CHALLENGES: &str = "DELETE FROM auth_challenges WHERE expires_at <= $1 AND id IN \
     (SELECT id FROM auth_challenges WHERE id < $3 AND expires_at <= $1 LIMIT $2)";
// Authorization codes and browser sessions answer nothing once expired (redemption and the
// browser-session lookup both require `expires_at > now`); each row is written once per
// hosted sign-in, so their `expires_at` indexes cost no hot path.
const AUTHORIZATION_CODES: &str =
    "DELETE FROM authorization_codes WHERE expires_at <= $1 AND code_hash IN \
     (SELECT code_hash FROM authorization_codes WHERE expires_at <= $1 LIMIT $2)";
const BROWSER_SESSIONS: &str = "DELETE FROM browser_sessions WHERE expires_at <= $1 AND id IN \
     (SELECT id FROM browser_sessions WHERE expires_at <= $1 LIMIT $2)";
// Idempotency keys are found by their `created_at` index: their primary key holds the
// client's key, in no time order.
const IDEMPOTENCY_KEYS: &str = "DELETE FROM idempotency_keys WHERE created_at <= $1 AND id IN \
     (SELECT id FROM idempotency_keys WHERE created_at <= $1 LIMIT $2)";

const EVENTS: &str = "DELETE FROM events WHERE id < $1 AND id IN \
     (SELECT id FROM events WHERE id < $1 LIMIT $2)";

impl Store {
    /// Deletes everything past `cutoffs`, at most `batch` rows per statement.
    pub async fn prune(&self, cutoffs: &PruneCutoffs, batch: i64) -> Result<Pruned, Error> {
        let batch = batch.max(1);
        Ok(Pruned {
            password_limits: self
                .prune_batches(PASSWORD_LIMITS, cutoffs.now.into(), batch, None)
                .await?,
            sms_send_limits: self
                .prune_batches(SMS_SEND_LIMITS, cutoffs.now.into(), batch, None)
                .await?,
            pending_tokens: self
                .prune_batches(PENDING_TOKENS, cutoffs.now.into(), batch, None)
                .await?,
            challenges: {
                let by = cutoffs.challenges_expired_by;
                let first_after = first_id_at(id::prefix::CHALLENGE, by);
                self.prune_batches(CHALLENGES, by.into(), batch, Some((&first_after).into()))
                    .await?
            },
            authorization_codes: self
                .prune_batches(AUTHORIZATION_CODES, cutoffs.now.into(), batch, None)
                .await?,
            browser_sessions: self
                .prune_batches(BROWSER_SESSIONS, cutoffs.now.into(), batch, None)
                .await?,
            idempotency_keys: self
                .prune_batches(
                    IDEMPOTENCY_KEYS,
                    cutoffs.idempotency_keys_created_by.into(),
                    batch,
                    None,
                )
                .await?,
            events: match cutoffs.events_before {
                Some(before) => {
                    let first_kept = first_id_at(id::prefix::EVENT, before);
                    self.prune_batches(EVENTS, (&first_kept).into(), batch, None)
                        .await?
                }
                None => 0,
            },
        })
    }

    /// Runs one prune statement until a batch comes back short.
    /// `$1` is `cutoff`, `$2` the batch size, `$3` (when given) `extra`.
    async fn prune_batches(
        &self,
        sql: &str,
        cutoff: Arg<'_>,
        batch: i64,
        extra: Option<Arg<'_>>,
    ) -> Result<u64, Error> {
        let full = u64::try_from(batch).unwrap_or(u64::MAX);
        let mut total = 0;
        let mut params = vec![cutoff, Arg::from(batch)];
        params.extend(extra);
        loop {
            let n = self.write_exec(sql, &params).await?;
            total += n;
            if n < full {
                return Ok(total);
            }
            // Between batches, let requests queued for the writer go first.
            tokio::task::yield_now().await;
        }
    }
}
