//! The MFA rules that must hold across nodes: verification (single use, attempt limits,
//! replay guard, failure rate limits) and SMS send limits. Each rule is a conditional write
//! inside one transaction, so concurrent requests on any number of servers are serialised by
//! the database (SQLite: one writer; PostgreSQL: row locks, with READ COMMITTED re-checking
//! the WHERE clause on the locked row), never by an in-process check.

use tessera_core::limits::Rate;
use tessera_core::Error;

use crate::db::{internal, on_db};
use crate::list::{ListParams, Page};
use crate::rows::{ChallengeRow, EventRow};
use crate::Store;

const CHALLENGE_COLS: &str =
    "id, factor_id, code_hash, expires_at, verified_at, attempts, created_at, updated_at";

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
    pub now: i64,
    pub max_attempts: i64,
    pub factor_rate: Rate,
    pub user_rate: Rate,
}

/// What the event for an evaluated attempt should say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    Succeeded,
    Failed,
    /// The TOTP code was right but its time step was already used (RFC 6238 §5.2).
    Replayed,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VerifyOutcome {
    /// The code was right; the challenge is now verified (and the TOTP step consumed).
    Verified(ChallengeRow),
    /// The code was wrong or replayed; one attempt was used.
    Rejected {
        challenge: ChallengeRow,
        replayed: bool,
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
    FactorRateLimited { retry_after_secs: i64 },
    UserRateLimited { retry_after_secs: i64 },
}

/// Why a challenge cannot take another attempt, judged from its row (`None`: it can).
pub fn challenge_refusal(c: Option<&ChallengeRow>, now: i64, max_attempts: i64) -> Option<Refusal> {
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

/// `GREATEST(tat, now)` spelled so both SQLite and PostgreSQL accept it.
macro_rules! later_of {
    ($col:literal, $now:literal) => {
        concat!(
            "(CASE WHEN ",
            $col,
            " > ",
            $now,
            " THEN ",
            $col,
            " ELSE ",
            $now,
            " END)"
        )
    };
}

/// Checks (and, for a failure, charges) a GCRA limit held in `$col` of `$table`. `$1` id,
/// `$2` charge?, `$3` now, `$4` interval, `$5` window. Zero rows updated means the limit is
/// reached; a correct code is refused too, otherwise the limit would not stop a lucky guess.
macro_rules! failure_gate {
    ($table:literal, $col:literal) => {
        concat!(
            "UPDATE ",
            $table,
            " SET ",
            $col,
            " = CASE WHEN $2 THEN ",
            later_of!($col, "$3"),
            " + $4 ELSE ",
            $col,
            " END WHERE id = $1 AND ",
            later_of!($col, "$3"),
            " + $4 - $3 <= $5"
        )
    };
}
const FACTOR_GATE: &str = failure_gate!("auth_factors", "fail_tat");
const USER_GATE: &str = failure_gate!("users", "mfa_fail_tat");
const SMS_CHARGE: &str = concat!(
    "INSERT INTO sms_send_limits (phone_number, tat) VALUES ($1, $2 + $3) ",
    "ON CONFLICT (phone_number) DO UPDATE SET tat = ",
    later_of!("sms_send_limits.tat", "$2"),
    " + $3 WHERE ",
    later_of!("sms_send_limits.tat", "$2"),
    " + $3 - $2 <= $4 RETURNING tat"
);

/// A dynamically assembled statement's parameters.
enum Param {
    Text(String),
    Int(i64),
}

impl Store {
    /// Records one verification attempt atomically:
    /// 1. a matching TOTP code advances the factor's `last_totp_step` only if its step is
    ///    newer (`WHERE last_totp_step < $step`); otherwise it counts as a failure (replay);
    /// 2. the per-factor and per-user failure limits are checked and, for a failure, charged;
    /// 3. the challenge takes one attempt only while unverified, unexpired and under the
    ///    attempt limit, and becomes verified on success;
    /// 4. the event is appended.
    ///
    /// Any refusal rolls everything back.
    pub async fn verify_attempt(
        &self,
        a: &VerifyAttempt<'_>,
        event: &(dyn Fn(AttemptKind) -> EventRow + Sync),
    ) -> Result<VerifyOutcome, Error> {
        let challenge_update = format!(
            "UPDATE auth_challenges SET attempts = attempts + 1, verified_at = CASE WHEN $2 THEN $3 ELSE verified_at END, updated_at = $3 \
             WHERE id = $1 AND verified_at IS NULL AND expires_at > $3 AND attempts < $4 RETURNING {CHALLENGE_COLS}"
        );
        let outcome = on_db!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(internal)?;
            let mut correct = a.correct;
            let mut replayed = false;
            if let (true, Some(step)) = (correct, a.totp_step) {
                let n = sqlx::query("UPDATE auth_factors SET last_totp_step = $2 WHERE id = $1 AND last_totp_step < $2")
                    .bind(a.factor_id)
                    .bind(step)
                    .execute(&mut *tx)
                    .await
                    .map_err(internal)?
                    .rows_affected();
                if n == 0 {
                    correct = false;
                    replayed = true;
                }
            }
            let n = sqlx::query(FACTOR_GATE)
                .bind(a.factor_id)
                .bind(!correct)
                .bind(a.now)
                .bind(a.factor_rate.interval_ms())
                .bind(a.factor_rate.window_ms)
                .execute(&mut *tx)
                .await
                .map_err(internal)?
                .rows_affected();
            if n == 0 {
                drop(tx);
                let tat: Option<i64> =
                    sqlx::query_scalar("SELECT fail_tat FROM auth_factors WHERE id = $1")
                        .bind(a.factor_id)
                        .fetch_optional(pool)
                        .await
                        .map_err(internal)?;
                return Ok(VerifyOutcome::Refused(match tat {
                    Some(tat) => Refusal::FactorRateLimited {
                        retry_after_secs: a.factor_rate.retry_after_secs(tat, a.now),
                    },
                    None => Refusal::NotFound,
                }));
            }
            if let Some(uid) = a.user_id {
                let n = sqlx::query(USER_GATE)
                    .bind(uid)
                    .bind(!correct)
                    .bind(a.now)
                    .bind(a.user_rate.interval_ms())
                    .bind(a.user_rate.window_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(internal)?
                    .rows_affected();
                if n == 0 {
                    drop(tx);
                    let tat: i64 =
                        sqlx::query_scalar("SELECT mfa_fail_tat FROM users WHERE id = $1")
                            .bind(uid)
                            .fetch_optional(pool)
                            .await
                            .map_err(internal)?
                            .unwrap_or(a.now);
                    return Ok(VerifyOutcome::Refused(Refusal::UserRateLimited {
                        retry_after_secs: a.user_rate.retry_after_secs(tat, a.now),
                    }));
                }
            }
            let updated = sqlx::query_as::<_, ChallengeRow>(&challenge_update)
                .bind(a.challenge_id)
                .bind(correct)
                .bind(a.now)
                .bind(a.max_attempts)
                .fetch_optional(&mut *tx)
                .await
                .map_err(internal)?;
            let Some(challenge) = updated else {
                drop(tx);
                let current = sqlx::query_as::<_, ChallengeRow>(&format!(
                    "SELECT {CHALLENGE_COLS} FROM auth_challenges WHERE id = $1"
                ))
                .bind(a.challenge_id)
                .fetch_optional(pool)
                .await
                .map_err(internal)?;
                let why = challenge_refusal(current.as_ref(), a.now, a.max_attempts)
                    .unwrap_or(Refusal::TooManyAttempts);
                return Ok(VerifyOutcome::Refused(why));
            };
            let kind = match (correct, replayed) {
                (true, _) => AttemptKind::Succeeded,
                (false, true) => AttemptKind::Replayed,
                (false, false) => AttemptKind::Failed,
            };
            let e = event(kind);
            sqlx::query("INSERT INTO events (id, event, data, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&e.id)
                .bind(&e.event)
                .bind(&e.data)
                .bind(e.created_at)
                .execute(&mut *tx)
                .await
                .map_err(internal)?;
            tx.commit().await.map_err(internal)?;
            Ok::<_, Error>(if correct {
                VerifyOutcome::Verified(challenge)
            } else {
                VerifyOutcome::Rejected {
                    challenge,
                    replayed,
                }
            })
        })?;
        Ok(outcome)
    }

    /// Charges one SMS to `phone` against `rate`; `Err(retry_after_secs)` when the number has
    /// had its share. One upsert, so parallel sends cannot overshoot.
    pub async fn charge_sms_send(
        &self,
        phone: &str,
        now: i64,
        rate: Rate,
    ) -> Result<Result<(), i64>, Error> {
        on_db!(self, write, |pool| {
            let tat: Option<i64> = sqlx::query_scalar(SMS_CHARGE)
                .bind(phone)
                .bind(now)
                .bind(rate.interval_ms())
                .bind(rate.window_ms)
                .fetch_optional(pool)
                .await
                .map_err(internal)?;
            if tat.is_some() {
                return Ok(Ok(()));
            }
            let tat: i64 =
                sqlx::query_scalar("SELECT tat FROM sms_send_limits WHERE phone_number = $1")
                    .bind(phone)
                    .fetch_one(pool)
                    .await
                    .map_err(internal)?;
            Ok(Err(rate.retry_after_secs(tat, now)))
        })
    }

    pub async fn insert_challenge(&self, c: &ChallengeRow) -> Result<(), Error> {
        let sql = format!("INSERT INTO auth_challenges ({CHALLENGE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
        on_db!(self, write, |pool| sqlx::query(&sql)
            .bind(&c.id)
            .bind(&c.factor_id)
            .bind(&c.code_hash)
            .bind(c.expires_at)
            .bind(c.verified_at)
            .bind(c.attempts)
            .bind(c.created_at)
            .bind(c.updated_at)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(internal))
    }

    pub async fn insert_event(&self, e: &EventRow) -> Result<(), Error> {
        on_db!(self, write, |pool| sqlx::query(
            "INSERT INTO events (id, event, data, created_at) VALUES ($1, $2, $3, $4)"
        )
        .bind(&e.id)
        .bind(&e.event)
        .bind(&e.data)
        .bind(e.created_at)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(internal))
    }

    /// Events, optionally only those named in `names` and created in `[start, end)`.
    pub async fn list_events(
        &self,
        names: &[String],
        start: Option<i64>,
        end: Option<i64>,
        p: &ListParams,
    ) -> Result<Page<EventRow>, Error> {
        let s = p.scan();
        let mut params: Vec<Param> = vec![];
        let mut sql = String::from("SELECT id, event, data, created_at FROM events WHERE 1 = 1");
        if !names.is_empty() {
            let first = params.len() + 1;
            let marks: Vec<String> = (first..first + names.len())
                .map(|i| format!("${i}"))
                .collect();
            sql += &format!(" AND event IN ({})", marks.join(", "));
            params.extend(names.iter().cloned().map(Param::Text));
        }
        if let Some(t) = start {
            params.push(Param::Int(t));
            sql += &format!(" AND created_at >= ${}", params.len());
        }
        if let Some(t) = end {
            params.push(Param::Int(t));
            sql += &format!(" AND created_at < ${}", params.len());
        }
        if let (Some(cmp), Some(c)) = (s.cmp, &s.cursor) {
            params.push(Param::Text(c.clone()));
            sql += &format!(" AND id {cmp} ${}", params.len());
        }
        params.push(Param::Int(p.limit + 1));
        sql += &format!(" ORDER BY id {} LIMIT ${}", s.dir, params.len());
        let rows = on_db!(self, read, |pool| {
            let mut q = sqlx::query_as::<_, EventRow>(&sql);
            for prm in &params {
                q = match prm {
                    Param::Text(t) => q.bind(t),
                    Param::Int(i) => q.bind(*i),
                };
            }
            q.fetch_all(pool).await.map_err(internal)
        })?;
        Ok(p.page(&s, rows, |r| r.id.as_str()))
    }
}
