//! The MFA rules that must hold across nodes: verification (single use, attempt limits,
//! replay guard, failure rate limits) and SMS send limits. Each rule is a conditional write
//! inside one transaction, so concurrent requests on any number of servers are serialised by
//! the database (SQLite: one writer; PostgreSQL: row locks, with READ COMMITTED re-checking
//! the WHERE clause on the locked row), never by an in-process check.

use tessera_core::limits::Rate;
use tessera_core::Error;

use crate::db::on_db;
use crate::list::{ListParams, Page};
use crate::queries::{challenge_args, event_args, CHALLENGE_COLS, CHALLENGE_INSERT, EVENT_INSERT};
use crate::rows::{ChallengeRow, EventRow};
use crate::sql::{args, Arg, Cols, DbError, FromRow, Pg, Tx};
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

/// What `tessera_verify_attempt` answered: the outcome, a limit's TAT, and the challenge
/// as updated (for an evaluated attempt).
struct PgVerifyRow {
    outcome: String,
    tat: Option<i64>,
    challenge: Option<ChallengeRow>,
}

impl FromRow for PgVerifyRow {
    const WIDTH: usize = 2 + ChallengeRow::WIDTH;
    fn from_cols(r: &impl Cols, at: usize) -> Result<Self, DbError> {
        let outcome: String = r.col(at)?;
        let tat: Option<i64> = r.col(at + 1)?;
        let evaluated = matches!(outcome.as_str(), "verified" | "rejected" | "replayed");
        let challenge = if evaluated {
            Some(ChallengeRow::from_cols(r, at + 2)?)
        } else {
            None
        };
        Ok(PgVerifyRow {
            outcome,
            tat,
            challenge,
        })
    }
}

/// [`Store::verify_attempt`] on PostgreSQL: the same rule in one call of the
/// `tessera_verify_attempt` function (migration 20261129000004), one round trip instead of
/// eight.
async fn verify_attempt_pg(
    pool: &sqlx::PgPool,
    a: &VerifyAttempt<'_>,
    event: &(dyn Fn(AttemptKind) -> EventRow + Sync),
) -> Result<VerifyOutcome, Error> {
    const SQL: &str = "SELECT * FROM tessera_verify_attempt($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)";
    let (ok, fail, replay) = (
        event(AttemptKind::Succeeded),
        event(AttemptKind::Failed),
        event(AttemptKind::Replayed),
    );
    let c = &mut Pg::Pool(pool);
    let row: PgVerifyRow = c
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
                ok.created_at,
                &ok.id,
                &ok.event,
                &ok.data,
                &fail.id,
                &fail.event,
                &fail.data,
                &replay.id,
                &replay.event,
                &replay.data
            ],
        )
        .await?;
    let refused = |r| Ok(VerifyOutcome::Refused(r));
    match (row.outcome.as_str(), row.challenge) {
        ("verified", Some(challenge)) => Ok(VerifyOutcome::Verified(challenge)),
        ("rejected", Some(challenge)) => Ok(VerifyOutcome::Rejected {
            challenge,
            replayed: false,
        }),
        ("replayed", Some(challenge)) => Ok(VerifyOutcome::Rejected {
            challenge,
            replayed: true,
        }),
        ("not_found", _) => refused(Refusal::NotFound),
        ("factor_limited", _) => refused(Refusal::FactorRateLimited {
            retry_after_secs: a
                .factor_rate
                .retry_after_secs(row.tat.unwrap_or(a.now), a.now),
        }),
        ("user_limited", _) => refused(Refusal::UserRateLimited {
            retry_after_secs: a
                .user_rate
                .retry_after_secs(row.tat.unwrap_or(a.now), a.now),
        }),
        ("challenge_refused", _) => {
            let current: Option<ChallengeRow> = c
                .opt(
                    &format!("SELECT {CHALLENGE_COLS} FROM auth_challenges WHERE id = $1"),
                    args![a.challenge_id],
                )
                .await?;
            refused(
                challenge_refusal(current.as_ref(), a.now, a.max_attempts)
                    .unwrap_or(Refusal::TooManyAttempts),
            )
        }
        (other, _) => Err(Error::Internal(format!(
            "tessera_verify_attempt answered {other:?}"
        ))),
    }
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
        if let crate::db::Db::Postgres(pool) = &*self.db {
            return verify_attempt_pg(pool, a, event).await;
        }
        let challenge_update = format!(
            "UPDATE auth_challenges SET attempts = attempts + 1, verified_at = CASE WHEN $2 THEN $3 ELSE verified_at END, updated_at = $3 \
             WHERE id = $1 AND verified_at IS NULL AND expires_at > $3 AND attempts < $4 RETURNING {CHALLENGE_COLS}"
        );
        on_db!(self, transaction, |c| {
            let mut correct = a.correct;
            let mut replayed = false;
            if let (true, Some(step)) = (correct, a.totp_step) {
                let n = c
                    .exec(
                        "UPDATE auth_factors SET last_totp_step = $2 WHERE id = $1 AND last_totp_step < $2",
                        args![a.factor_id, step],
                    )
                    .await?;
                if n == 0 {
                    correct = false;
                    replayed = true;
                }
            }
            let gate = args![
                a.factor_id,
                !correct,
                a.now,
                a.factor_rate.interval_ms(),
                a.factor_rate.window_ms
            ];
            if c.exec(FACTOR_GATE, gate).await? == 0 {
                let tat: Option<i64> = c
                    .opt(
                        "SELECT fail_tat FROM auth_factors WHERE id = $1",
                        args![a.factor_id],
                    )
                    .await?;
                return Ok(Tx::Rollback(VerifyOutcome::Refused(match tat {
                    Some(tat) => Refusal::FactorRateLimited {
                        retry_after_secs: a.factor_rate.retry_after_secs(tat, a.now),
                    },
                    None => Refusal::NotFound,
                })));
            }
            if let Some(uid) = a.user_id {
                let gate = args![
                    uid,
                    !correct,
                    a.now,
                    a.user_rate.interval_ms(),
                    a.user_rate.window_ms
                ];
                if c.exec(USER_GATE, gate).await? == 0 {
                    let tat: Option<i64> = c
                        .opt("SELECT mfa_fail_tat FROM users WHERE id = $1", args![uid])
                        .await?;
                    return Ok(Tx::Rollback(VerifyOutcome::Refused(
                        Refusal::UserRateLimited {
                            retry_after_secs: a
                                .user_rate
                                .retry_after_secs(tat.unwrap_or(a.now), a.now),
                        },
                    )));
                }
            }
            let updated: Option<ChallengeRow> = c
                .opt(
                    &challenge_update,
                    args![a.challenge_id, correct, a.now, a.max_attempts],
                )
                .await?;
            let Some(challenge) = updated else {
                let current: Option<ChallengeRow> = c
                    .opt(
                        &format!("SELECT {CHALLENGE_COLS} FROM auth_challenges WHERE id = $1"),
                        args![a.challenge_id],
                    )
                    .await?;
                let why = challenge_refusal(current.as_ref(), a.now, a.max_attempts)
                    .unwrap_or(Refusal::TooManyAttempts);
                return Ok(Tx::Rollback(VerifyOutcome::Refused(why)));
            };
            let kind = match (correct, replayed) {
                (true, _) => AttemptKind::Succeeded,
                (false, true) => AttemptKind::Replayed,
                (false, false) => AttemptKind::Failed,
            };
            let e = event(kind);
            c.exec(EVENT_INSERT, &event_args(&e)).await?;
            Ok(Tx::Commit(if correct {
                VerifyOutcome::Verified(challenge)
            } else {
                VerifyOutcome::Rejected {
                    challenge,
                    replayed,
                }
            }))
        })
    }

    /// Charges one SMS to `phone` against `rate`; `Err(retry_after_secs)` when the number has
    /// had its share. One upsert, so parallel sends cannot overshoot.
    pub async fn charge_sms_send(
        &self,
        phone: &str,
        now: i64,
        rate: Rate,
    ) -> Result<Result<(), i64>, Error> {
        on_db!(self, write, |c| {
            let tat: Option<i64> = c
                .opt(
                    SMS_CHARGE,
                    args![phone, now, rate.interval_ms(), rate.window_ms],
                )
                .await?;
            if tat.is_some() {
                return Ok(Ok(()));
            }
            let tat: i64 = c
                .one(
                    "SELECT tat FROM sms_send_limits WHERE phone_number = $1",
                    args![phone],
                )
                .await?;
            Ok(Err(rate.retry_after_secs(tat, now)))
        })
    }

    pub async fn insert_challenge(&self, ch: &ChallengeRow) -> Result<(), Error> {
        on_db!(self, write, |c| {
            c.exec(CHALLENGE_INSERT, &challenge_args(ch)).await?;
            Ok(())
        })
    }

    pub async fn insert_event(&self, e: &EventRow) -> Result<(), Error> {
        on_db!(self, write, |c| {
            c.exec(EVENT_INSERT, &event_args(e)).await?;
            Ok(())
        })
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
        let mut params: Vec<Arg<'_>> = vec![];
        let mut sql = String::from("SELECT id, event, data, created_at FROM events WHERE 1 = 1");
        if !names.is_empty() {
            let first = params.len() + 1;
            let marks: Vec<String> = (first..first + names.len())
                .map(|i| format!("${i}"))
                .collect();
            sql += &format!(" AND event IN ({})", marks.join(", "));
            params.extend(names.iter().map(Arg::from));
        }
        if let Some(t) = start {
            params.push(Arg::from(t));
            sql += &format!(" AND created_at >= ${}", params.len());
        }
        if let Some(t) = end {
            params.push(Arg::from(t));
            sql += &format!(" AND created_at < ${}", params.len());
        }
        if let (Some(cmp), Some(c)) = (s.cmp, &s.cursor) {
            params.push(Arg::from(c));
            sql += &format!(" AND id {cmp} ${}", params.len());
        }
        params.push(Arg::from(p.limit + 1));
        sql += &format!(" ORDER BY id {} LIMIT ${}", s.dir, params.len());
        let rows = on_db!(self, read, |c| Ok(c.all(&sql, &params).await?))?;
        Ok(p.page(&s, rows, |r: &EventRow| r.id.as_str()))
    }
}
