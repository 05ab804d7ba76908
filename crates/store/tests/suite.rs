#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The store suite: rules that must hold identically on SQLite and PostgreSQL, checked on
//! both (PostgreSQL when `TESSERA_TEST_DATABASE_URL` is set; required in CI).
//!
//! At its heart `verification_rule`: one table of scripted attempts, run on every backend,
//! checked for the outcome and the resulting rows against the table, and compared between
//! the backends (outcomes, rows and events), since SQLite runs the rule as statements in
//! `mfa.rs` and PostgreSQL as the function in `sql/verify_attempt.pgsql`.

mod common;

use common::backends;
use tessera_core::limits::{gcra_allows, gcra_next, Rate};
use tessera_core::Timestamp;
use tessera_store::{
    AttemptKind, ChallengeRow, EventRow, FactorRow, ListParams, Order, Refusal, Rejection, Store,
    UserRow, VerificationRows, VerifyAttempt, VerifyOutcome,
};

/// The start of every case's clock (2027-01-15T08:00:00Z), in milliseconds.
const T: i64 = 1_800_000_000_000;

/// The store's time for `ms` milliseconds since the epoch.
fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}
/// 4 failures per 40 s per factor, 6 per 60 s per user: 10 s intervals, small bursts.
const FACTOR_RATE: Rate = Rate::new(4, 40_000);
const USER_RATE: Rate = Rate::new(6, 60_000);
const MAX_ATTEMPTS: i64 = 3;
const LOCK_AFTER: i64 = 5;

#[derive(Clone, Copy, Debug)]
enum Code {
    /// A right code, for this TOTP step (`None`: an SMS or generic OTP code, no step).
    Right(Option<i64>),
    Wrong,
}
use Code::{Right, Wrong};

/// One attempt of a script: challenge letter, code, milliseconds after `T`.
#[derive(Clone, Copy, Debug)]
struct Try(char, Code, i64);

/// What a case expects of its last attempt: the outcome, and the rows it leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expect {
    outcome: &'static str,
    /// The last attempt's challenge: `(attempts, verified)`, `None` if it does not exist.
    challenge: Option<(i64, bool)>,
    /// Its factor: `(last_totp_step, fail_tat - T or 0, consecutive_failures, locked_at - T)`.
    factor: (i64, i64, i64, Option<i64>),
    /// The case's user: `mfa_fail_tat - T`, or 0 when never charged.
    user_tat: i64,
}

/// A case: its name, the script, what the last attempt overrides (factor or user id), and
/// the expectation.
struct Case {
    name: &'static str,
    script: Vec<Try>,
    missing: Option<Missing>,
    expect: Expect,
}

#[derive(Clone, Copy)]
enum Missing {
    Factor,
    User,
}

fn ex(
    outcome: &'static str,
    challenge: Option<(i64, bool)>,
    factor: (i64, i64, i64, Option<i64>),
    user_tat: i64,
) -> Expect {
    Expect {
        outcome,
        challenge,
        factor,
        user_tat,
    }
}

fn case(name: &'static str, script: Vec<Try>, expect: Expect) -> Case {
    Case {
        name,
        script,
        missing: None,
        expect,
    }
}

const UNTOUCHED: (i64, i64, i64, Option<i64>) = (-1, 0, 0, None);

fn cases() -> Vec<Case> {
    let w = |ch, at| Try(ch, Wrong, at);
    let r = |ch, step| Try(ch, Right(Some(step)), 0);
    let five_wrong = vec![w('a', 0), w('a', 0), w('a', 0), w('b', 0), w('b', 10_000)];
    let mut locked_then_right = five_wrong.clone();
    locked_then_right.push(Try('c', Right(Some(100)), 1_000_000));
    vec![
        case(
            "right_code",
            vec![r('a', 100)],
            ex("verified", Some((1, true)), (100, 0, 0, None), 0),
        ),
        case(
            "wrong_code",
            vec![w('a', 0)],
            ex("rejected", Some((1, false)), (-1, 10_000, 1, None), 10_000),
        ),
        case(
            "replay_on_the_same_challenge",
            vec![r('a', 100), r('a', 100)],
            ex("already_verified", Some((1, true)), (100, 0, 0, None), 0),
        ),
        case(
            "replay_on_another_challenge",
            vec![r('a', 100), r('b', 100)],
            ex("replayed", Some((1, false)), (100, 0, 0, None), 0),
        ),
        case(
            "an_older_step_is_a_replay",
            vec![r('a', 100), r('b', 99)],
            ex("replayed", Some((1, false)), (100, 0, 0, None), 0),
        ),
        case(
            "a_replay_neither_charges_nor_resets_the_failures",
            vec![r('a', 100), w('b', 0), r('c', 100)],
            ex("replayed", Some((1, false)), (100, 10_000, 1, None), 10_000),
        ),
        case(
            "expired",
            vec![r('x', 100)],
            ex("expired", Some((0, false)), UNTOUCHED, 0),
        ),
        case(
            "attempt_limit",
            vec![w('a', 0), w('a', 0), w('a', 0), r('a', 100)],
            ex(
                "too_many_attempts",
                Some((3, false)),
                (-1, 30_000, 3, None),
                30_000,
            ),
        ),
        case(
            "factor_limit",
            vec![w('a', 0), w('a', 0), w('a', 0), w('b', 0), r('b', 100)],
            ex(
                "factor_limited(10)",
                Some((1, false)),
                (-1, 40_000, 4, None),
                40_000,
            ),
        ),
        case(
            "user_limit",
            vec![
                w('a', 0),
                w('a', 0),
                w('a', 0),
                w('d', 0),
                w('d', 0),
                w('d', 0),
                r('e', 100),
            ],
            ex(
                "user_limited(10)",
                Some((0, false)),
                (-1, 30_000, 3, None),
                60_000,
            ),
        ),
        case(
            "the_fifth_consecutive_failure_locks",
            five_wrong,
            ex(
                "rejected_and_locked",
                Some((2, false)),
                (-1, 50_000, 5, Some(10_000)),
                50_000,
            ),
        ),
        case(
            "a_locked_factor_refuses_the_right_code",
            locked_then_right,
            ex(
                "locked",
                Some((0, false)),
                (-1, 50_000, 5, Some(10_000)),
                50_000,
            ),
        ),
        case(
            "success_resets_the_failures",
            vec![w('a', 0), w('a', 0), r('b', 100)],
            ex("verified", Some((1, true)), (100, 20_000, 0, None), 20_000),
        ),
        Case {
            name: "missing_factor",
            script: vec![r('a', 100)],
            missing: Some(Missing::Factor),
            expect: ex("not_found", Some((0, false)), UNTOUCHED, 0),
        },
        Case {
            name: "missing_user",
            script: vec![r('a', 100)],
            missing: Some(Missing::User),
            expect: ex("not_found", Some((0, false)), UNTOUCHED, 0),
        },
        case(
            "missing_challenge",
            vec![r('z', 100)],
            ex("not_found", None, UNTOUCHED, 0),
        ),
        case(
            "a_factor_without_user_charges_no_user",
            vec![w('s', 0)],
            ex("rejected", Some((1, false)), (-1, 10_000, 1, None), 0),
        ),
        case(
            "codes_without_a_step_have_no_replay_guard",
            vec![Try('a', Right(None), 0), Try('b', Right(None), 0)],
            ex("verified", Some((1, true)), UNTOUCHED, 0),
        ),
    ]
}

fn label(o: &VerifyOutcome) -> String {
    match o {
        VerifyOutcome::Verified(_) => "verified".into(),
        VerifyOutcome::Rejected { why, .. } => match why {
            Rejection::Wrong => "rejected".into(),
            Rejection::WrongAndLocked => "rejected_and_locked".into(),
            Rejection::Replayed => "replayed".into(),
        },
        VerifyOutcome::Refused(r) => match r {
            Refusal::NotFound => "not_found".into(),
            Refusal::AlreadyVerified => "already_verified".into(),
            Refusal::Expired => "expired".into(),
            Refusal::TooManyAttempts => "too_many_attempts".into(),
            Refusal::FactorLocked => "locked".into(),
            Refusal::FactorRateLimited { retry_after_secs } => {
                format!("factor_limited({retry_after_secs})")
            }
            Refusal::UserRateLimited { retry_after_secs } => {
                format!("user_limited({retry_after_secs})")
            }
        },
    }
}

fn user_id(case: &str) -> String {
    format!("user_{case}")
}

/// Challenges `a`, `b`, `c` and the expired `x` belong to factor 1, `d` and `e` to factor 2
/// (both of the case's user), `s` to factor 3 (no user).
fn factor_of(case: &str, ch: char) -> String {
    let n = match ch {
        'd' | 'e' => 2,
        's' => 3,
        _ => 1,
    };
    format!("auth_factor_{case}_{n}")
}

fn challenge_id(case: &str, ch: char) -> String {
    format!("auth_challenge_{case}_{ch}")
}

async fn seed(store: &Store, case: &str) {
    store
        .insert_user(&UserRow {
            id: user_id(case),
            email: format!("{case}@example.com"),
            email_verified: false,
            first_name: None,
            last_name: None,
            name: None,
            profile_picture_url: None,
            external_id: None,
            metadata: "{}".into(),
            locale: None,
            password_hash: None,
            last_sign_in_at: None,
            created_at: ts(T),
            updated_at: ts(T),
        })
        .await
        .unwrap();
    for n in 1..=3 {
        let factor = FactorRow {
            id: format!("auth_factor_{case}_{n}"),
            user_id: (n != 3).then(|| user_id(case)),
            r#type: tessera_core::FactorKind::Totp,
            totp_issuer: Some("Test".into()),
            totp_user: Some("test".into()),
            secret_key_id: None,
            secret_sealed: None,
            phone_number: None,
            last_totp_step: -1,
            created_at: ts(T),
            updated_at: ts(T),
        };
        store.insert_factor(&factor, None, &[]).await.unwrap();
    }
    for ch in ['a', 'b', 'c', 'd', 'e', 's', 'x'] {
        store
            .insert_challenge(&ChallengeRow {
                id: challenge_id(case, ch),
                factor_id: factor_of(case, ch),
                code_hash: None,
                expires_at: ts(if ch == 'x' { T } else { T + 600_000 }),
                verified_at: None,
                attempts: 0,
                created_at: ts(T),
                updated_at: ts(T),
            })
            .await
            .unwrap();
    }
}

/// Everything one case produced on one backend.
#[derive(Debug, PartialEq)]
struct Run {
    outcomes: Vec<VerifyOutcome>,
    rows: VerificationRows,
    events: Vec<EventRow>,
}

async fn run_case(store: &Store, c: &Case) -> Run {
    seed(store, c.name).await;
    let mut outcomes = vec![];
    let (mut last_ch, mut last_factor, mut last_user) = (String::new(), String::new(), None);
    for (i, t) in c.script.iter().enumerate() {
        let Try(ch, code, at) = *t;
        let cid = challenge_id(c.name, ch);
        let mut fid = factor_of(c.name, ch);
        let mut uid = (ch != 's').then(|| user_id(c.name));
        let last = i + 1 == c.script.len();
        match c.missing.filter(|_| last) {
            Some(Missing::Factor) => fid = format!("auth_factor_{}_none", c.name),
            Some(Missing::User) => uid = Some(format!("user_{}_none", c.name)),
            None => {}
        }
        let (correct, totp_step) = match code {
            Right(step) => (true, step),
            Wrong => (false, None),
        };
        let attempt = VerifyAttempt {
            challenge_id: &cid,
            factor_id: &fid,
            user_id: uid.as_deref(),
            correct,
            totp_step,
            now: ts(T + at),
            max_attempts: MAX_ATTEMPTS,
            factor_rate: FACTOR_RATE,
            user_rate: USER_RATE,
            lock_after: LOCK_AFTER,
        };
        let name = c.name;
        let event = move |k: AttemptKind| EventRow {
            id: format!("event_{name}_{i:02}_{k:?}"),
            event: format!("{name}.{k:?}"),
            data: format!("{{\"attempt\":{i}}}"),
            created_at: ts(T + at),
        };
        outcomes.push(store.verify_attempt(&attempt, &event).await.unwrap());
        (last_ch, last_factor, last_user) = (cid, factor_of(c.name, ch), Some(user_id(c.name)));
    }
    let rows = store
        .verification_rows(&last_ch, &last_factor, last_user.as_deref())
        .await
        .unwrap();
    let names: Vec<String> = ["Succeeded", "Failed", "Replayed", "Locked"]
        .iter()
        .map(|k| format!("{}.{k}", c.name))
        .collect();
    let params = ListParams {
        limit: 100,
        before: None,
        after: None,
        order: Order::Asc,
    };
    let events = store
        .list_events(&names, None, None, &params)
        .await
        .unwrap()
        .data;
    Run {
        outcomes,
        rows,
        events,
    }
}

/// The rows of a run in the table's terms.
fn observed(run: &Run) -> Expect {
    let rel = |v: i64| if v == 0 { 0 } else { v - T };
    let f = run.rows.factor.expect("the case's factor exists");
    Expect {
        outcome: "",
        challenge: run
            .rows
            .challenge
            .as_ref()
            .map(|c| (c.attempts, c.verified_at.is_some())),
        factor: (
            f.last_totp_step,
            rel(f.fail_tat),
            f.consecutive_failures,
            f.locked_at.map(|t| rel(t.millis())),
        ),
        user_tat: rel(run.rows.user_fail_tat.expect("the case's user exists")),
    }
}

/// The events a script must leave: one per evaluated attempt, plus one for a lock.
fn expected_events(run: &Run, case: &str) -> Vec<String> {
    let mut v = vec![];
    for (i, o) in run.outcomes.iter().enumerate() {
        match o {
            VerifyOutcome::Verified(_) => v.push(format!("{case}.Succeeded#{i}")),
            VerifyOutcome::Rejected { why, .. } => match why {
                Rejection::Wrong => v.push(format!("{case}.Failed#{i}")),
                Rejection::WrongAndLocked => {
                    v.push(format!("{case}.Failed#{i}"));
                    v.push(format!("{case}.Locked#{i}"));
                }
                Rejection::Replayed => v.push(format!("{case}.Replayed#{i}")),
            },
            VerifyOutcome::Refused(_) => {}
        }
    }
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_rule() {
    let table = cases();
    let mut runs: Vec<(&'static str, Vec<Run>)> = vec![];
    for b in backends().await {
        let mut per_case = vec![];
        for c in &table {
            let run = run_case(&b.store, c).await;
            let last = run.outcomes.last().unwrap();
            assert_eq!(
                Expect {
                    outcome: "",
                    ..c.expect.clone()
                },
                observed(&run),
                "{}: case {}: rows",
                b.name,
                c.name
            );
            assert_eq!(
                label(last),
                c.expect.outcome,
                "{}: case {}: outcomes {:?}",
                b.name,
                c.name,
                run.outcomes.iter().map(label).collect::<Vec<_>>()
            );
            let mut events: Vec<String> = run
                .events
                .iter()
                .map(|e| {
                    let i = &e.id[format!("event_{}_", c.name).len()..][..2];
                    format!("{}#{}", e.event, i.parse::<usize>().unwrap())
                })
                .collect();
            events.sort();
            assert_eq!(
                events,
                expected_events(&run, c.name),
                "{}: case {}",
                b.name,
                c.name
            );
            per_case.push(run);
        }
        runs.push((b.name, per_case));
        b.close().await;
    }
    // Both backends: the same outcomes, rows (every column) and events, case by case.
    if let [(_, lite), (_, pg)] = &runs[..] {
        for ((c, l), p) in table.iter().zip(lite).zip(pg) {
            assert_eq!(l, p, "case {}: SQLite and PostgreSQL differ", c.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlocked_factor_verifies_again_and_the_unlock_is_recorded() {
    let c = &cases()[10];
    assert_eq!(c.name, "the_fifth_consecutive_failure_locks");
    for b in backends().await {
        let run = run_case(&b.store, c).await;
        assert_eq!(label(run.outcomes.last().unwrap()), "rejected_and_locked");
        let fid = factor_of(c.name, 'a');
        let lock = b.store.find_factor_lock(&fid).await.unwrap().unwrap();
        assert_eq!(
            (lock.consecutive_failures, lock.locked_at),
            (5, Some(ts(T + 10_000)))
        );
        let unlocked = EventRow {
            id: format!("event_{}_unlocked", c.name),
            event: "authentication_factor.unlocked".into(),
            data: "{}".into(),
            created_at: ts(T + 20_000),
        };
        assert!(b.store.unlock_factor(&fid, &unlocked).await.unwrap());
        assert!(!b
            .store
            .unlock_factor("auth_factor_none", &unlocked)
            .await
            .unwrap());
        let lock = b.store.find_factor_lock(&fid).await.unwrap().unwrap();
        assert_eq!((lock.consecutive_failures, lock.locked_at), (0, None));
        let names = vec!["authentication_factor.unlocked".to_owned()];
        let params = ListParams {
            limit: 10,
            before: None,
            after: None,
            order: Order::Asc,
        };
        let events = b
            .store
            .list_events(&names, None, None, &params)
            .await
            .unwrap();
        assert_eq!(events.data, vec![unlocked.clone()], "{}", b.name);
        let cid = challenge_id(c.name, 'c');
        let uid = user_id(c.name);
        let attempt = VerifyAttempt {
            challenge_id: &cid,
            factor_id: &fid,
            user_id: Some(&uid),
            correct: true,
            totp_step: Some(100),
            now: ts(T + 100_000),
            max_attempts: MAX_ATTEMPTS,
            factor_rate: FACTOR_RATE,
            user_rate: USER_RATE,
            lock_after: LOCK_AFTER,
        };
        let event = |k: AttemptKind| EventRow {
            id: format!("event_after_unlock_{k:?}"),
            event: "after_unlock".into(),
            data: "{}".into(),
            created_at: ts(T + 100_000),
        };
        let o = b.store.verify_attempt(&attempt, &event).await.unwrap();
        assert_eq!(label(&o), "verified", "{}", b.name);
        b.close().await;
    }
}

/// The GCRA as SQL (`tessera_gcra_*`: PostgreSQL's functions, SQLite's registered Rust)
/// agrees with `tessera_core::limits` on a table of cases, on every backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gcra_in_sql_agrees_with_the_rust() {
    let now = T;
    // (tat, now, interval, window)
    let table = [
        (0, now, 10_000, 40_000),
        (now - 1, now, 10_000, 40_000),
        (now, now, 10_000, 40_000),
        (now + 29_999, now, 10_000, 40_000),
        (now + 30_000, now, 10_000, 40_000),
        (now + 30_001, now, 10_000, 40_000),
        (now + 40_000, now, 10_000, 40_000),
        (now + 90_000, now, 90_000, 900_000),
        (now + 810_000, now, 90_000, 900_000),
        (now + 810_001, now, 90_000, 900_000),
        (now, now, 1, 1),
        (now + 1, now, 1, 1),
        (now, now, 50_000, 40_000),
        (-5, 0, 3, 3),
    ];
    for b in backends().await {
        for &(tat, now, interval, window) in &table {
            let sql = b
                .store
                .gcra_in_sql(tat, now, interval, window)
                .await
                .unwrap();
            let rust = (
                gcra_allows(tat, now, interval, window),
                gcra_next(tat, now, interval),
            );
            assert_eq!(
                sql, rust,
                "{}: tat {tat}, now {now}, interval {interval}, window {window}",
                b.name
            );
        }
        // And the rate helpers the services use are the same rule.
        let r = Rate::new(4, 40_000);
        for tat in [0, T, T + 30_000, T + 30_001] {
            assert_eq!(r.allows(tat, T), gcra_allows(tat, T, 10_000, 40_000));
            assert_eq!(r.charge(tat, T), gcra_next(tat, T, 10_000));
        }
        b.close().await;
    }
}

/// A multi-statement body is all or nothing on both backends: a session whose refresh token
/// cannot be stored (its second statement fails) leaves no session behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_whose_second_statement_fails_leaves_nothing_of_the_first() {
    for b in backends().await {
        seed(&b.store, "atomic").await;
        let uid = user_id("atomic");
        b.store
            .create_session(&tessera_store::NewSession {
                id: "session_1",
                user_id: &uid,
                auth_method: "password",
                ip_address: None,
                user_agent: None,
                browser_session_id: None,
                refresh_hash: &b"hash-1"[..],
                now: ts(T),
                expires_at: ts(T + 86_400_000),
            })
            .await
            .unwrap();
        let again = b
            .store
            .create_session(&tessera_store::NewSession {
                id: "session_2",
                user_id: &uid,
                auth_method: "password",
                ip_address: None,
                user_agent: None,
                browser_session_id: None,
                refresh_hash: &b"hash-1"[..],
                now: ts(T),
                expires_at: ts(T + 86_400_000),
            })
            .await;
        assert!(
            again.is_err(),
            "{}: the refresh token is a duplicate",
            b.name
        );
        assert_eq!(
            b.store.find_session_revoked_at("session_2").await.unwrap(),
            None,
            "{}: the session of the failed body is gone",
            b.name
        );
        assert_eq!(
            b.store.find_session_revoked_at("session_1").await.unwrap(),
            Some(None)
        );
        b.close().await;
    }
}

/// A transaction whose future is dropped after its first write (a cancelled request) leaves
/// nothing of it, and the next write goes through: SQLite undoes the savepoint when the
/// writer is let go, PostgreSQL rolls back the transaction that never committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_dropped_half_way_leaves_nothing_behind() {
    let event = |id: &str| EventRow {
        id: id.into(),
        event: "test.dropped".into(),
        data: "{}".into(),
        created_at: ts(T),
    };
    let names = ["test.dropped".to_owned()];
    let page = ListParams {
        limit: 10,
        ..Default::default()
    };
    for b in backends().await {
        let (inserted, is_inserted) = tokio::sync::oneshot::channel();
        let task = {
            let store = b.store.clone();
            let e = event("event_dropped");
            tokio::spawn(async move {
                store
                    .insert_event_then_wait(&e, async move {
                        let _ = inserted.send(());
                        std::future::pending::<()>().await
                    })
                    .await
            })
        };
        is_inserted.await.unwrap();
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        b.store.insert_event(&event("event_next")).await.unwrap();
        let ids: Vec<String> = b
            .store
            .list_events(&names, None, None, &page)
            .await
            .unwrap()
            .data
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, vec!["event_next".to_owned()], "{}", b.name);
        b.close().await;
    }
}

/// Each unique constraint a client can run into maps to its own domain error on both
/// backends, by the constraint that failed (not by words in the database's message): a
/// user's email and external id on insert and on update, an admin's email. Any other
/// unique violation (here a duplicate primary key) stays an internal error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_unique_violation_maps_to_its_domain_error() {
    use tessera_core::Error;
    use tessera_store::{AdminRow, UserPatch};
    let user = |id: &str, email: &str, external_id: Option<&str>| UserRow {
        id: id.into(),
        email: email.into(),
        email_verified: false,
        first_name: None,
        last_name: None,
        name: None,
        profile_picture_url: None,
        external_id: external_id.map(Into::into),
        metadata: "{}".into(),
        locale: None,
        password_hash: None,
        last_sign_in_at: None,
        created_at: ts(T),
        updated_at: ts(T),
    };
    let admin = |id: &str, email: &str| AdminRow {
        id: id.into(),
        email: email.into(),
        password_hash: "$argon2id$x".into(),
        factor_id: None,
        created_at: ts(T),
    };
    let event = |id: &str| EventRow {
        id: id.into(),
        event: "admin.created".into(),
        data: "{}".into(),
        created_at: ts(T),
    };
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        s.insert_user(&user("user_a", "a@example.com", Some("ext-a")))
            .await
            .unwrap();
        s.insert_user(&user("user_b", "b@example.com", None))
            .await
            .unwrap();
        let r = s
            .insert_user(&user("user_c", "a@example.com", Some("ext-c")))
            .await;
        assert!(
            matches!(&r, Err(Error::EmailNotAvailable(e)) if e == "a@example.com"),
            "{n}: insert, email: {r:?}"
        );
        let r = s
            .insert_user(&user("user_c", "c@example.com", Some("ext-a")))
            .await;
        assert!(
            matches!(&r, Err(Error::ExternalIdAlreadyUsed(e)) if e == "ext-a"),
            "{n}: insert, external id: {r:?}"
        );
        let r = s
            .insert_user(&user("user_a", "other@example.com", None))
            .await;
        assert!(
            matches!(&r, Err(Error::Internal(_))),
            "{n}: insert, primary key: {r:?}"
        );
        let patch = |email: Option<&str>, external_id: Option<&str>| UserPatch {
            email: email.map(Into::into),
            external_id: external_id.map(|x| Some(x.into())),
            updated_at: ts(T),
            ..Default::default()
        };
        let r = s
            .update_user("user_b", &patch(Some("a@example.com"), None), None)
            .await;
        assert!(
            matches!(&r, Err(Error::EmailNotAvailable(e)) if e == "a@example.com"),
            "{n}: update, email: {r:?}"
        );
        let r = s
            .update_user("user_b", &patch(None, Some("ext-a")), None)
            .await;
        assert!(
            matches!(&r, Err(Error::ExternalIdAlreadyUsed(e)) if e == "ext-a"),
            "{n}: update, external id: {r:?}"
        );
        s.insert_admin(&admin("admin_a", "root@example.com"), &event("event_a1"))
            .await
            .unwrap();
        let r = s
            .insert_admin(&admin("admin_b", "root@example.com"), &event("event_a2"))
            .await;
        assert!(
            matches!(&r, Err(Error::EmailNotAvailable(e)) if e == "root@example.com"),
            "{n}: admin email: {r:?}"
        );
        // An admin may share a user's email: the two tables are unrelated.
        s.insert_admin(&admin("admin_c", "a@example.com"), &event("event_a3"))
            .await
            .unwrap();
        b.close().await;
    }
}

/// The SMS and password limits, now written with the shared SQL GCRA, still stop at their
/// count and say how long to wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_password_limits_stop_at_their_count() {
    for b in backends().await {
        let r = Rate::new(5, 600_000);
        for i in 0..5 {
            assert_eq!(
                b.store
                    .charge_sms_send("+15555550100", ts(T), r)
                    .await
                    .unwrap(),
                Ok(()),
                "{} sms {i}",
                b.name
            );
        }
        assert_eq!(
            b.store
                .charge_sms_send("+15555550100", ts(T), r)
                .await
                .unwrap(),
            Err(120)
        );
        let p = Rate::new(10, 900_000);
        for i in 0..10 {
            assert_eq!(
                b.store
                    .charge_password_attempt(&[("account:a", p)], ts(T))
                    .await
                    .unwrap(),
                Ok(()),
                "{} password {i}",
                b.name
            );
        }
        assert_eq!(
            b.store
                .charge_password_attempt(&[("account:a", p)], ts(T))
                .await
                .unwrap(),
            Err(90)
        );
        b.close().await;
    }
}

/// The readiness probe behind `/health` answers on both backends (it used to decode
/// PostgreSQL's INT4 `1` as i64 and fail there), and a PostgreSQL pool that can give no
/// connection is "unavailable" (a 503), not an internal error (a 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readiness_probe_answers_and_a_pool_without_connections_is_unavailable() {
    for b in backends().await {
        let name = b.name;
        b.store
            .ping()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let store = b.store.clone();
        b.close().await;
        if name == "postgres" {
            let e = store.ping().await.unwrap_err();
            assert!(
                matches!(e, tessera_core::Error::Unavailable(_)),
                "{name}: {e:?}"
            );
        }
    }
}

#[tokio::test]
#[should_panic(expected = "not reachable")]
async fn an_unreachable_test_database_fails_instead_of_skipping() {
    common::pg::create_database("postgres://postgres@127.0.0.1:1/test").await;
}

/// An event named `name` with an empty payload, created at `T`.
fn event_at_t(id: &str, name: &str) -> EventRow {
    EventRow {
        id: id.into(),
        event: name.into(),
        data: "{}".into(),
        created_at: ts(T),
    }
}

/// A challenge and its `created` event are one write: when the event cannot be stored (here
/// a duplicate id), the challenge is not stored either, so a crash or failure between them
/// cannot leave a challenge missing from the audit trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_whose_event_fails_is_not_stored() {
    for b in backends().await {
        seed(&b.store, "chev").await;
        let event = |id: &str| event_at_t(id, "authentication_challenge.created");
        let challenge = |id: &str| ChallengeRow {
            id: id.into(),
            factor_id: factor_of("chev", 'a'),
            code_hash: None,
            expires_at: ts(T + 600_000),
            verified_at: None,
            attempts: 0,
            created_at: ts(T),
            updated_at: ts(T),
        };
        b.store.insert_event(&event("event_taken")).await.unwrap();
        let failed = b
            .store
            .insert_challenge_with_events(
                &challenge("auth_challenge_chev_1"),
                &[event("event_taken")],
            )
            .await;
        assert!(failed.is_err(), "{}: the event id is taken", b.name);
        assert!(
            b.store
                .find_challenge("auth_challenge_chev_1")
                .await
                .unwrap()
                .is_none(),
            "{}: no challenge without its event",
            b.name
        );
        b.store
            .insert_challenge_with_events(
                &challenge("auth_challenge_chev_2"),
                &[event("event_new")],
            )
            .await
            .unwrap();
        assert!(b
            .store
            .find_challenge("auth_challenge_chev_2")
            .await
            .unwrap()
            .is_some());
        b.close().await;
    }
}

/// A factor's deletion and its `deleted` event are one write: when the event cannot be stored
/// (here a duplicate id), the factor stays, so a crash or failure between them cannot leave a
/// deletion missing from the audit trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_factor_whose_deletion_event_fails_is_not_deleted() {
    for b in backends().await {
        seed(&b.store, "fdel").await;
        let event = |id: &str| event_at_t(id, "authentication_factor.deleted");
        let factor = factor_of("fdel", 'a');
        b.store
            .insert_event(&event("event_fdel_taken"))
            .await
            .unwrap();
        assert!(
            b.store
                .delete_factor(&factor, &event("event_fdel_taken"))
                .await
                .is_err(),
            "{}: the event id is taken",
            b.name
        );
        assert!(
            b.store.find_factor(&factor).await.unwrap().is_some(),
            "{}: no deletion without its event",
            b.name
        );
        b.store
            .delete_factor(&factor, &event("event_fdel_new"))
            .await
            .unwrap();
        assert!(b.store.find_factor(&factor).await.unwrap().is_none());
        let err = b
            .store
            .delete_factor(&factor, &event("event_fdel_again"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, tessera_core::Error::NotFound { .. }),
            "{}: {err:?}",
            b.name
        );
        b.close().await;
    }
}

/// Idempotency keys: one claim at a time, answered rows are kept until they expire, an
/// abandoned claim is taken over by the same request only and by exactly one of many racing
/// takeovers, and only the claim's holder stores or releases it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_claims_hold_one_request_at_a_time() {
    use tessera_store::{IdempotencyClaim, IdempotencyResponse};
    const ABANDONED: i64 = 60_000;
    const TTL: i64 = 86_400_000;
    let claim = |id: &'static str, fp: &'static [u8], now: i64| IdempotencyClaim {
        id,
        fingerprint: fp,
        now: ts(now),
        expired_by: ts(now - TTL),
        abandoned_by: ts(now - ABANDONED),
    };
    let answer = IdempotencyResponse {
        status: 201,
        content_type: Some("application/json"),
        key_id: "k",
        sealed: b"sealed",
    };
    for b in backends().await {
        let s = &b.store;
        let n = b.name;
        assert!(s
            .claim_idempotency_key(&claim("key_1:a", b"one", T))
            .await
            .unwrap());
        assert!(
            !s.claim_idempotency_key(&claim("key_1:a", b"one", T))
                .await
                .unwrap(),
            "{n}"
        );
        let other_api_key = IdempotencyClaim {
            id: "key_2:a",
            ..claim("key_1:a", b"one", T)
        };
        assert!(
            s.claim_idempotency_key(&other_api_key).await.unwrap(),
            "{n}: per API key"
        );
        let row = s.find_idempotency_key("key_1:a").await.unwrap().unwrap();
        assert_eq!(
            (
                row.fingerprint.as_slice(),
                row.created_at,
                row.response_status
            ),
            (b"one".as_slice(), ts(T), None)
        );
        assert!(
            !s.complete_idempotency_key("key_1:a", ts(T + 1), &answer)
                .await
                .unwrap(),
            "{n}: not this claim"
        );
        assert!(
            s.complete_idempotency_key("key_1:a", ts(T), &answer)
                .await
                .unwrap(),
            "{n}"
        );
        assert!(
            !s.complete_idempotency_key("key_1:a", ts(T), &answer)
                .await
                .unwrap(),
            "{n}: once"
        );
        let row = s.find_idempotency_key("key_1:a").await.unwrap().unwrap();
        assert_eq!(row.response_status, Some(201));
        assert_eq!(row.response_sealed.as_deref(), Some(b"sealed".as_slice()));
        // An answered row is not "abandoned", however old, until it expires; then any
        // request may have the key.
        assert!(
            !s.claim_idempotency_key(&claim("key_1:a", b"one", T + TTL - 1))
                .await
                .unwrap(),
            "{n}"
        );
        assert!(
            s.claim_idempotency_key(&claim("key_1:a", b"two", T + TTL))
                .await
                .unwrap(),
            "{n}"
        );
        let row = s.find_idempotency_key("key_1:a").await.unwrap().unwrap();
        assert_eq!(
            (row.fingerprint.as_slice(), row.response_status),
            (b"two".as_slice(), None)
        );

        // An abandoned claim: only the same request takes it over, and only one of many.
        assert!(s
            .claim_idempotency_key(&claim("key_1:b", b"one", T))
            .await
            .unwrap());
        let later = T + ABANDONED;
        assert!(
            !s.claim_idempotency_key(&claim("key_1:b", b"one", later - 1))
                .await
                .unwrap(),
            "{n}"
        );
        assert!(
            !s.claim_idempotency_key(&claim("key_1:b", b"other", later))
                .await
                .unwrap(),
            "{n}"
        );
        let racers = (0..10).map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.claim_idempotency_key(&claim("key_1:b", b"one", later))
                    .await
                    .unwrap()
            })
        });
        let mut won = 0;
        for r in racers {
            won += usize::from(r.await.unwrap());
        }
        assert_eq!(won, 1, "{n}: one takeover wins");
        assert!(
            !s.complete_idempotency_key("key_1:b", ts(T), &answer)
                .await
                .unwrap(),
            "{n}: the old holder lost it"
        );
        assert!(
            !s.release_idempotency_key("key_1:b", ts(T)).await.unwrap(),
            "{n}"
        );
        assert!(
            s.release_idempotency_key("key_1:b", ts(later))
                .await
                .unwrap(),
            "{n}"
        );
        assert!(
            s.find_idempotency_key("key_1:b").await.unwrap().is_none(),
            "{n}"
        );
        b.close().await;
    }
}
