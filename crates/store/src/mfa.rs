//! The MFA rules that must hold across nodes: verification (single use, attempt limits,
//! replay guard, failure rate limits, lockout after consecutive failures) and SMS send
//! limits. Each rule is a conditional write
//! inside one transaction, so concurrent requests on any number of servers are serialised by
//! the database (SQLite: one writer; PostgreSQL: row locks, with READ COMMITTED re-checking
//! the WHERE clause on the locked row), never by an in-process check.

use tessera_core::limits::{gcra_allows, Rate};
use tessera_core::Error;
use tessera_core::Timestamp;

use crate::db::call;
use crate::list::{ById, ListParams, Page};
use crate::queries::{challenge_args, event_args, CHALLENGE_COLS, CHALLENGE_INSERT, EVENT_INSERT};
use crate::rows::{ChallengeRow, EventRow};
use crate::sql::{args, Cols, Conn, DbError, FromRow, Pg, Tx};
use crate::Store;

/// One verification attempt, already evaluated by the caller (the code check is pure).
#[derive(Debug, Clone)]
pub struct VerifyAttempt<'a> {
    pub challenge_id: &'a str,
    pub factor_id: &'a str,
    pub user_id: Option<&'a str>,
    /// The code matched (for TOTP: within the window; replay is decided here).
    pub correct: bool,
    /// For a matching TOTP code, the time step it matched.
    pub totp_step: Option<i64>,
    pub now: Timestamp,
    pub max_attempts: i64,
    pub factor_rate: Rate,
    pub user_rate: Rate,
    /// Consecutive wrong codes that lock the factor until an administrator unlocks it
    /// (NIST SP 800-63B §5.2.2: at most 100).
    pub lock_after: i64,
}

/// Which event an evaluated attempt records. [`Store::verify_attempt`] asks for the events
/// it writes: one of the first three, plus `Locked` when the attempt locked the factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    Succeeded,
    Failed,
    /// The TOTP code was right but its time step was already used (RFC 6238 §5.2).
    Replayed,
    /// This wrong code was the one that locked the factor.
    Locked,
}

/// Why an evaluated code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// A wrong code: charged to the failure limits and the consecutive-failure count.
    Wrong,
    /// A wrong code that reached the consecutive-failure limit: the factor is now locked.
    WrongAndLocked,
    /// A right TOTP code whose step was already used: refused, charged to nothing.
    Replayed,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VerifyOutcome {
    /// The code was right; the challenge is now verified (and the TOTP step consumed).
    Verified(ChallengeRow),
    /// The code was wrong or replayed; one attempt was used.
    Rejected {
        challenge: ChallengeRow,
        why: Rejection,
    },
    /// Nothing was evaluated or changed.
    Refused(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    AlreadyVerified,
    Expired,
    TooManyAttempts,
    /// The factor had too many consecutive failures; only an administrator can unlock it.
    FactorLocked,
    FactorRateLimited {
        retry_after_secs: i64,
    },
    UserRateLimited {
        retry_after_secs: i64,
    },
}

/// Why a challenge cannot take another attempt, judged from its row (`None`: it can).
pub fn challenge_refusal(
    c: Option<&ChallengeRow>,
    now: Timestamp,
    max_attempts: i64,
) -> Option<Refusal> {
    let Some(c) = c else {
        return Some(Refusal::NotFound);
    };
    if c.verified_at.is_some() {
        Some(Refusal::AlreadyVerified)
    } else if c.attempts >= max_attempts {
        Some(Refusal::TooManyAttempts)
    } else if c.expires_at <= now {
        Some(Refusal::Expired)
    } else {
        None
    }
}

/// The lockout state of a factor (see migration 20261201000030).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorLockRow {
    /// Wrong codes since the last accepted one.
    pub consecutive_failures: i64,
    /// When the factor was locked; `None` while it can be used.
    pub locked_at: Option<Timestamp>,
}

/// A factor's columns that the verification rule reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorGuardRow {
    pub last_totp_step: i64,
    pub fail_tat: i64,
    pub consecutive_failures: i64,
    pub locked_at: Option<Timestamp>,
}
crate::sql::from_row!(FactorGuardRow {
    last_totp_step,
    fail_tat,
    consecutive_failures,
    locked_at
});
const FACTOR_GUARD: &str = "SELECT last_totp_step, fail_tat, consecutive_failures, locked_at FROM auth_factors WHERE id = $1";

/// Every column the verification rule reads or writes for one attempt: what an audit (and
/// the store tests that compare the two backends) looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationRows {
    pub challenge: Option<ChallengeRow>,
    pub factor: Option<FactorGuardRow>,
    /// `mfa_fail_tat` of the user.
    pub user_fail_tat: Option<i64>,
}

/// One result of the rule, named as `tessera_verify_attempt` names it: the one decoding of
/// PostgreSQL's answer, and what SQLite's path reports too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Verified,
    Rejected,
    RejectedAndLocked,
    Replayed,
    NotFound,
    Locked,
    FactorLimited,
    UserLimited,
    ChallengeRefused,
}

impl Step {
    fn from_code(code: &str) -> Option<Step> {
        Some(match code {
            "verified" => Step::Verified,
            "rejected" => Step::Rejected,
            "rejected_and_locked" => Step::RejectedAndLocked,
            "replayed" => Step::Replayed,
            "not_found" => Step::NotFound,
            "locked" => Step::Locked,
            "factor_limited" => Step::FactorLimited,
            "user_limited" => Step::UserLimited,
            "challenge_refused" => Step::ChallengeRefused,
            _ => return None,
        })
    }

    /// The outcome, from the step, the limit's TAT (for a limit) and the challenge row (as
    /// updated for an evaluated attempt; as it is now for `ChallengeRefused`).
    fn outcome(
        self,
        a: &VerifyAttempt<'_>,
        tat: Option<i64>,
        challenge: Option<ChallengeRow>,
    ) -> Result<VerifyOutcome, Error> {
        let evaluated = |c: Option<ChallengeRow>| {
            c.ok_or_else(|| {
                Error::Internal("verification evaluated a challenge it did not return".into())
            })
        };
        let refused = |r| Ok(VerifyOutcome::Refused(r));
        let rejected = |challenge, why| Ok(VerifyOutcome::Rejected { challenge, why });
        match self {
            Step::Verified => Ok(VerifyOutcome::Verified(evaluated(challenge)?)),
            Step::Rejected => rejected(evaluated(challenge)?, Rejection::Wrong),
            Step::RejectedAndLocked => rejected(evaluated(challenge)?, Rejection::WrongAndLocked),
            Step::Replayed => rejected(evaluated(challenge)?, Rejection::Replayed),
            Step::NotFound => refused(Refusal::NotFound),
            Step::Locked => refused(Refusal::FactorLocked),
            Step::FactorLimited => refused(Refusal::FactorRateLimited {
                retry_after_secs: a
                    .factor_rate
                    .retry_after_secs(tat.unwrap_or(a.now.millis()), a.now.millis()),
            }),
            Step::UserLimited => refused(Refusal::UserRateLimited {
                retry_after_secs: a
                    .user_rate
                    .retry_after_secs(tat.unwrap_or(a.now.millis()), a.now.millis()),
            }),
            // The UPDATE's conditions failed, so one of these holds (a row passing them all
            // cannot change between two statements of one transaction).
            Step::ChallengeRefused => refused(
                challenge_refusal(challenge.as_ref(), a.now, a.max_attempts)
                    .unwrap_or(Refusal::TooManyAttempts),
            ),
        }
    }
}

/// The challenge's attempt: one more, and verified by an accepted code, only while
/// unverified, unexpired and under the attempt limit.
const CHALLENGE_ATTEMPT: &str = "UPDATE auth_challenges SET attempts = attempts + 1, verified_at = CASE WHEN $2 THEN $3 ELSE verified_at END, updated_at = $3 \
     WHERE id = $1 AND verified_at IS NULL AND expires_at > $3 AND attempts < $4 \
     RETURNING id, factor_id, code_hash, expires_at, verified_at, attempts, created_at, updated_at";
/// `$1` factor, `$2` accepted, `$3` wrong, `$4` step, `$5` now, `$6` interval, `$7` locks.
const FACTOR_AFTER_ATTEMPT: &str = "UPDATE auth_factors SET \
     last_totp_step = CASE WHEN $2 AND $4 IS NOT NULL THEN $4 ELSE last_totp_step END, \
     fail_tat = CASE WHEN $3 THEN tessera_gcra_next(fail_tat, $5, $6) ELSE fail_tat END, \
     consecutive_failures = CASE WHEN $2 THEN 0 WHEN $3 THEN consecutive_failures + 1 ELSE consecutive_failures END, \
     locked_at = CASE WHEN $7 THEN $5 ELSE locked_at END \
     WHERE id = $1";
/// One SMS charged to a phone number: `$1` number, `$2` now, `$3` interval, `$4` window; no
/// row returned means the number has had its share.
const SMS_CHARGE: &str =
    "INSERT INTO sms_send_limits (phone_number, tat) VALUES ($1, tessera_gcra_next($2, $2, $3)) \
     ON CONFLICT (phone_number) DO UPDATE SET tat = tessera_gcra_next(sms_send_limits.tat, $2, $3) \
     WHERE tessera_gcra_allows(sms_send_limits.tat, $2, $3, $4) RETURNING tat";

/// The JSON of the events `tessera_verify_attempt` may write, keyed by outcome.
fn events_json(event: &(dyn Fn(AttemptKind) -> EventRow + Sync)) -> String {
    let one = |k| {
        let e: EventRow = event(k);
        serde_json::json!({ "id": e.id, "event": e.event, "data": e.data, "created_at": e.created_at.millis() })
    };
    serde_json::json!({
        "succeeded": one(AttemptKind::Succeeded),
        "failed": one(AttemptKind::Failed),
        "replayed": one(AttemptKind::Replayed),
        "locked": one(AttemptKind::Locked),
    })
    .to_string()
}

/// What `tessera_verify_attempt` answered: the outcome code, a limit's TAT, and a challenge
/// row (absent when its columns are NULL).
struct PgVerifyRow {
    outcome: String,
    tat: Option<i64>,
    challenge: Option<ChallengeRow>,
}

impl FromRow for PgVerifyRow {
    const WIDTH: usize = 2 + ChallengeRow::WIDTH;
    fn from_cols(r: &impl Cols, at: usize) -> Result<Self, DbError> {
        let id: Option<String> = r.col(at + 2)?;
        Ok(PgVerifyRow {
            outcome: r.col(at)?,
            tat: r.col(at + 1)?,
            challenge: match id {
                Some(_) => Some(ChallengeRow::from_cols(r, at + 2)?),
                None => None,
            },
        })
    }
}

/// [`Store::verify_attempt`] on PostgreSQL: the rule in one call of `tessera_verify_attempt`
/// (`crates/store/sql/verify_attempt.pgsql`), one round trip instead of eight. The call
/// names its arguments, so their order here cannot silently drift from the function's.
async fn verify_attempt_pg(
    conn: &mut sqlx::PgConnection,
    a: &VerifyAttempt<'_>,
    event: &(dyn Fn(AttemptKind) -> EventRow + Sync),
) -> Result<VerifyOutcome, Error> {
    const SQL: &str = "SELECT * FROM tessera_verify_attempt(\
         p_challenge => $1, p_factor => $2, p_user => $3, p_correct => $4, p_step => $5, \
         p_now => $6, p_max_attempts => $7, p_factor_interval => $8, p_factor_window => $9, \
         p_user_interval => $10, p_user_window => $11, p_lock_after => $12, p_events => $13::jsonb)";
    let events = events_json(event);
    let row: PgVerifyRow = Pg(conn)
        .one(
            SQL,
            args![
                a.challenge_id,
                a.factor_id,
                a.user_id,
                a.correct,
                a.totp_step,
                a.now,
                a.max_attempts,
                a.factor_rate.interval_ms(),
                a.factor_rate.window_ms,
                a.user_rate.interval_ms(),
                a.user_rate.window_ms,
                a.lock_after,
                &events
            ],
        )
        .await?;
    let step = Step::from_code(&row.outcome).ok_or_else(|| {
        Error::Internal(format!("tessera_verify_attempt answered {:?}", row.outcome))
    })?;
    step.outcome(a, row.tat, row.challenge)
}

impl Store {
    /// Records one verification attempt atomically, by the rule stated (and numbered) in
    /// `crates/store/sql/verify_attempt.pgsql`: on PostgreSQL that function, on SQLite the
    /// same steps below, in one transaction on the single writer. In short: a locked factor
    /// and a full failure limit refuse every attempt; a right TOTP code is accepted only for
    /// a step newer than the last accepted one (else it is a replay, refused but not
    /// charged); a wrong code charges both failure limits and the consecutive-failure count,
    /// which locks the factor at `lock_after`; the challenge takes one attempt while open;
    /// the events are appended. Any refusal rolls everything back.
    pub async fn verify_attempt(
        &self,
        a: &VerifyAttempt<'_>,
        event: &(dyn Fn(AttemptKind) -> EventRow + Sync),
    ) -> Result<VerifyOutcome, Error> {
        if let crate::db::Db::Postgres(pool) = &*self.db {
            // Not through `call!`: SQLite has no such function. Bounded the same way.
            return crate::outage::bounded(self.deadline, async {
                let mut conn = crate::outage::Checkout::acquire(pool).await?;
                let r = verify_attempt_pg(conn.conn(), a, event).await;
                conn.finish();
                r
            })
            .await;
        }
        let (step, tat, challenge) = call!(self, transaction, |c| verify_attempt(c, a, event))?;
        step.outcome(a, tat, challenge)
    }

    /// The lockout state of a factor; `None` if there is no such factor.
    pub async fn find_factor_lock(&self, factor_id: &str) -> Result<Option<FactorLockRow>, Error> {
        let row: Option<(i64, Option<Timestamp>)> = self
            .read_opt(
                "SELECT consecutive_failures, locked_at FROM auth_factors WHERE id = $1",
                args![factor_id],
            )
            .await?;
        Ok(row.map(|(consecutive_failures, locked_at)| FactorLockRow {
            consecutive_failures,
            locked_at,
        }))
    }

    /// Unlocks a factor and clears its consecutive failures (an administrator's decision),
    /// recording `event` in the same transaction. `Ok(false)`: no such factor.
    pub async fn unlock_factor(&self, factor_id: &str, event: &EventRow) -> Result<bool, Error> {
        call!(self, transaction, |c| unlock_factor(c, factor_id, event))
    }

    /// Every column the verification rule touches for this challenge, factor and user.
    pub async fn verification_rows(
        &self,
        challenge_id: &str,
        factor_id: &str,
        user_id: Option<&str>,
    ) -> Result<VerificationRows, Error> {
        let challenge_sql = format!("SELECT {CHALLENGE_COLS} FROM auth_challenges WHERE id = $1");
        call!(self, read, |c| verification_rows(
            c,
            &challenge_sql,
            challenge_id,
            factor_id,
            user_id
        ))
    }

    /// Evaluates the GCRA rule in SQL (`tessera_gcra_allows`, `tessera_gcra_next`) on this
    /// backend: `(allows, next tat)`. For the store test that the SQL and the Rust agree.
    pub async fn gcra_in_sql(
        &self,
        tat: i64,
        now: i64,
        interval_ms: i64,
        window_ms: i64,
    ) -> Result<(bool, i64), Error> {
        let (allows, next): (i64, i64) = self
            .read_one(
                "SELECT CASE WHEN tessera_gcra_allows($1, $2, $3, $4) THEN CAST(1 AS BIGINT) ELSE CAST(0 AS BIGINT) END, tessera_gcra_next($1, $2, $3)",
                args![tat, now, interval_ms, window_ms],
            )
            .await?;
        Ok((allows == 1, next))
    }

    /// Charges one SMS to `phone` against `rate`; `Err(retry_after_secs)` when the number has
    /// had its share. One upsert, so parallel sends cannot overshoot.
    pub async fn charge_sms_send(
        &self,
        phone: &str,
        now: Timestamp,
        rate: Rate,
    ) -> Result<Result<(), i64>, Error> {
        let charged: Option<i64> = self
            .write_opt(
                SMS_CHARGE,
                args![phone, now, rate.interval_ms(), rate.window_ms],
            )
            .await?;
        if charged.is_some() {
            return Ok(Ok(()));
        }
        // Refused: the TAT that refused it, for Retry-After (a read of its own; a write body
        // runs one statement).
        let tat: i64 = self
            .read_one(
                "SELECT tat FROM sms_send_limits WHERE phone_number = $1",
                args![phone],
            )
            .await?;
        Ok(Err(rate.retry_after_secs(tat, now.millis())))
    }

    pub async fn insert_challenge(&self, ch: &ChallengeRow) -> Result<(), Error> {
        self.write_exec(CHALLENGE_INSERT, &challenge_args(ch))
            .await?;
        Ok(())
    }

    pub async fn insert_event(&self, e: &EventRow) -> Result<(), Error> {
        self.write_exec(EVENT_INSERT, &event_args(e)).await?;
        Ok(())
    }

    /// For the tests of cancellation: inserts `e` in a transaction that then waits for `wait`
    /// before it commits, so a test can drop it half-way.
    #[doc(hidden)]
    pub async fn insert_event_then_wait(
        &self,
        e: &EventRow,
        wait: impl std::future::Future<Output = ()>,
    ) -> Result<(), Error> {
        call!(self, transaction, |c| insert_event_then_wait(c, e, wait))
    }

    /// Events, optionally only those named in `names` and created in `[start, end)`.
    pub async fn list_events(
        &self,
        names: &[String],
        start: Option<Timestamp>,
        end: Option<Timestamp>,
        p: &ListParams,
    ) -> Result<Page<EventRow>, Error> {
        let mut q = ById::new("SELECT id, event, data, created_at FROM events WHERE 1 = 1");
        if !names.is_empty() {
            let marks: Vec<String> = names.iter().map(|n| q.bind(n)).collect();
            q.and(&format!("event IN ({})", marks.join(", ")));
        }
        if let Some(t) = start {
            let n = q.bind(t);
            q.and(&format!("created_at >= {n}"));
        }
        if let Some(t) = end {
            let n = q.bind(t);
            q.and(&format!("created_at < {n}"));
        }
        q.page(self, p, |r: &EventRow| r.id.as_str()).await
    }
}

/// [`Store::verify_attempt`] on SQLite: the steps of `tessera_verify_attempt`, numbered as
/// there, in one transaction on the single writer.
async fn verify_attempt<C: Conn>(
    c: &mut C,
    a: &VerifyAttempt<'_>,
    event: &(dyn Fn(AttemptKind) -> EventRow + Sync),
) -> Result<Tx<(Step, Option<i64>, Option<ChallengeRow>)>, Error> {
    let rollback = |step, tat| Ok(Tx::Rollback((step, tat, None)));
    // 1. SQLite has one writer, and this body holds it: what it reads stays true.
    let f: Option<FactorGuardRow> = c.opt(FACTOR_GUARD, args![a.factor_id]).await?;
    let Some(f) = f else {
        return rollback(Step::NotFound, None);
    };
    // 2.
    if f.locked_at.is_some() {
        return rollback(Step::Locked, None);
    }
    // 3.
    let fr = a.factor_rate;
    if !gcra_allows(f.fail_tat, a.now.millis(), fr.interval_ms(), fr.window_ms) {
        return rollback(Step::FactorLimited, Some(f.fail_tat));
    }
    if let Some(uid) = a.user_id {
        let u: Option<i64> = c
            .opt("SELECT mfa_fail_tat FROM users WHERE id = $1", args![uid])
            .await?;
        let Some(u_tat) = u else {
            return rollback(Step::NotFound, None);
        };
        let ur = a.user_rate;
        if !gcra_allows(u_tat, a.now.millis(), ur.interval_ms(), ur.window_ms) {
            return rollback(Step::UserLimited, Some(u_tat));
        }
    }
    // 4.
    let accepted = a.correct
        && match a.totp_step {
            Some(step) => f.last_totp_step < step,
            None => true,
        };
    let wrong = !a.correct;
    let locks = wrong && f.consecutive_failures + 1 >= a.lock_after;
    // 5.
    let updated: Option<ChallengeRow> = c
        .opt(
            CHALLENGE_ATTEMPT,
            args![a.challenge_id, accepted, a.now, a.max_attempts],
        )
        .await?;
    let Some(challenge) = updated else {
        let current: Option<ChallengeRow> = c
            .opt(
                &format!("SELECT {CHALLENGE_COLS} FROM auth_challenges WHERE id = $1"),
                args![a.challenge_id],
            )
            .await?;
        return Ok(Tx::Rollback((Step::ChallengeRefused, None, current)));
    };
    // 6.
    c.exec(
        FACTOR_AFTER_ATTEMPT,
        args![
            a.factor_id,
            accepted,
            wrong,
            a.totp_step,
            a.now,
            fr.interval_ms(),
            locks
        ],
    )
    .await?;
    if let (Some(uid), true) = (a.user_id, wrong) {
        c.exec(
            "UPDATE users SET mfa_fail_tat = tessera_gcra_next(mfa_fail_tat, $2, $3) WHERE id = $1",
            args![uid, a.now, a.user_rate.interval_ms()],
        )
        .await?;
    }
    // 7.
    let (step, kind) = match (accepted, wrong, locks) {
        (true, _, _) => (Step::Verified, AttemptKind::Succeeded),
        (false, true, false) => (Step::Rejected, AttemptKind::Failed),
        (false, true, true) => (Step::RejectedAndLocked, AttemptKind::Failed),
        (false, false, _) => (Step::Replayed, AttemptKind::Replayed),
    };
    c.exec(EVENT_INSERT, &event_args(&event(kind))).await?;
    if locks {
        c.exec(EVENT_INSERT, &event_args(&event(AttemptKind::Locked)))
            .await?;
    }
    Ok(Tx::Commit((step, None, Some(challenge))))
}

async fn unlock_factor<C: Conn>(
    c: &mut C,
    factor_id: &str,
    event: &EventRow,
) -> Result<Tx<bool>, Error> {
    let n = c
        .exec(
            "UPDATE auth_factors SET consecutive_failures = 0, locked_at = NULL WHERE id = $1",
            args![factor_id],
        )
        .await?;
    if n == 0 {
        return Ok(Tx::Rollback(false));
    }
    c.exec(EVENT_INSERT, &event_args(event)).await?;
    Ok(Tx::Commit(true))
}

async fn verification_rows<C: Conn>(
    c: &mut C,
    challenge_sql: &str,
    challenge_id: &str,
    factor_id: &str,
    user_id: Option<&str>,
) -> Result<VerificationRows, Error> {
    let challenge: Option<ChallengeRow> = c.opt(challenge_sql, args![challenge_id]).await?;
    let factor: Option<FactorGuardRow> = c.opt(FACTOR_GUARD, args![factor_id]).await?;
    let user_fail_tat: Option<i64> = match user_id {
        Some(u) => {
            c.opt("SELECT mfa_fail_tat FROM users WHERE id = $1", args![u])
                .await?
        }
        None => None,
    };
    Ok(VerificationRows {
        challenge,
        factor,
        user_fail_tat,
    })
}

async fn insert_event_then_wait<C: Conn>(
    c: &mut C,
    e: &EventRow,
    wait: impl std::future::Future<Output = ()>,
) -> Result<Tx<()>, Error> {
    c.exec(EVENT_INSERT, &event_args(e)).await?;
    wait.await;
    Ok(Tx::Commit(()))
}
