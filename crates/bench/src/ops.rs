//! The measured operations and the closed-loop driver: N tasks, each with its own connection,
//! sending one request after another for a warm-up and then a measured window.
//!
//! Only requests that complete inside the measured window count. A task records the latency
//! of every such request in its own HDR histogram (merged at the end) and counts successes,
//! non-2xx statuses and transport errors separately; an operation that has used up its
//! prepared data ends the task and marks the run as exhausted, so the driver can prepare more
//! and run again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::time::Instant;

use crate::http::{Conn, Target};
use crate::pool::{unix_millis, FactorPool, Slots};
use crate::prep;

/// What a benchmark measures; `--ops` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub(crate) enum Op {
    /// `GET /health`.
    Health,
    /// `POST /user_management/users/:id/auth_factors`, spread over many users.
    Enroll,
    /// `POST /auth/challenges/:id/verify` with the right TOTP code.
    Verify,
    /// `POST /auth/challenges/:id/verify` with a wrong code (201, `valid: false`).
    VerifyWrong,
    /// `GET /user_management/users/:id/auth_factors`.
    List,
    /// `POST /user_management/authenticate`, password grant, users without factors.
    SigninPassword,
    /// Password (403 mfa_challenge) → challenge → TOTP grant (200): one sign-in, 3 requests.
    SigninTotp,
    /// `verify` at 64 connections while 8 more connections sign in with passwords.
    VerifyUnderPasswordLoad,
    /// Process start to a ready `/health` on the existing database.
    Startup,
}

impl Op {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Health => "health",
            Op::Enroll => "enroll",
            Op::Verify => "verify",
            Op::VerifyWrong => "verify-wrong",
            Op::List => "list",
            Op::SigninPassword => "signin-password",
            Op::SigninTotp => "signin-totp",
            Op::VerifyUnderPasswordLoad => "verify-under-password-load",
            Op::Startup => "startup",
        }
    }
}

/// The request loop a task runs (`VerifyUnderPasswordLoad` is two groups of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Health,
    Enroll,
    Verify,
    VerifyWrong,
    List,
    SigninPassword,
    SigninTotp,
}

/// Prepared data shared by the tasks.
pub(crate) struct Shared {
    pub client_id: String,
    pub api_key: String,
    /// Users that enrolment spreads over: `(id, email)`.
    pub enroll_users: Vec<(String, String)>,
    pub enroll_next: AtomicUsize,
    /// Factors with challenges, for the right-code verify (enrolment feeds it too).
    pub verify_pool: FactorPool,
    pub wrong_slots: Slots,
    /// `GET` paths of users with two factors each.
    pub list_paths: Vec<String>,
    pub list_next: AtomicUsize,
    /// Password sign-in bodies of users without factors.
    pub password_bodies: Vec<Bytes>,
    pub password_next: AtomicUsize,
    /// One factor per user, for the full password + TOTP sign-in.
    pub signin_pool: FactorPool,
}

impl Shared {
    pub(crate) fn new(client_id: String, api_key: String) -> Self {
        Shared {
            client_id,
            api_key,
            enroll_users: Vec::new(),
            enroll_next: AtomicUsize::new(0),
            verify_pool: FactorPool::new(true),
            wrong_slots: Slots::default(),
            list_paths: Vec::new(),
            list_next: AtomicUsize::new(0),
            password_bodies: Vec::new(),
            password_next: AtomicUsize::new(0),
            signin_pool: FactorPool::new(false),
        }
    }

    pub(crate) fn password_body(&self, email: &str) -> Bytes {
        Bytes::from(
            json!({
                "grant_type": "password",
                "client_id": self.client_id,
                "client_secret": self.api_key,
                "email": email,
                "password": prep::PASSWORD,
            })
            .to_string(),
        )
    }
}

/// The result of one operation.
pub(crate) enum Outcome {
    Ok,
    /// A status other than the expected one (or `valid: false` for a right code: 0).
    Failed(u16),
    /// No answer (connection error).
    Transport,
    /// The prepared data ran out.
    Exhausted,
}

fn expect(status: u16, want: u16) -> Outcome {
    if status == want {
        Outcome::Ok
    } else {
        Outcome::Failed(status)
    }
}

fn pick<T>(items: &[T], next: &AtomicUsize) -> Option<usize> {
    (!items.is_empty()).then(|| next.fetch_add(1, Ordering::Relaxed) % items.len())
}

async fn once(kind: Kind, conn: &mut Conn, s: &Shared) -> anyhow::Result<Outcome> {
    Ok(match kind {
        Kind::Health => expect(conn.get("/health").await?.status, 200),
        Kind::Enroll => {
            let Some(i) = pick(&s.enroll_users, &s.enroll_next) else {
                return Ok(Outcome::Exhausted);
            };
            let (user_id, email) = &s.enroll_users[i];
            let r = conn
                .post(
                    &format!("/user_management/users/{user_id}/auth_factors"),
                    Bytes::from_static(prep::ENROLL_BODY),
                )
                .await?;
            if r.status != 201 {
                return Ok(Outcome::Failed(r.status));
            }
            // Every enrolled factor comes with a challenge: feed the verify pool.
            let f = prep::factor_from_enrolment(&r.json()?, email.clone())?;
            s.verify_pool.add(f);
            Outcome::Ok
        }
        Kind::Verify => {
            let Some(mut f) = s.verify_pool.take() else {
                return Ok(Outcome::Exhausted);
            };
            let (Some(step), Some(challenge)) = (f.next_step(unix_millis()), f.take_challenge())
            else {
                s.verify_pool.give_back(f);
                return Ok(Outcome::Exhausted);
            };
            let body = format!(r#"{{"code":"{}"}}"#, f.use_step(step));
            let r = conn
                .post(
                    &format!("/auth/challenges/{challenge}/verify"),
                    Bytes::from(body),
                )
                .await;
            s.verify_pool.give_back(f);
            let r = r?;
            if r.status != 201 {
                Outcome::Failed(r.status)
            } else if memchr(&r.body, br#""valid":true"#) {
                Outcome::Ok
            } else {
                Outcome::Failed(0)
            }
        }
        Kind::VerifyWrong => {
            let Some(slot) = s.wrong_slots.take() else {
                return Ok(Outcome::Exhausted);
            };
            expect(conn.post(&slot.path, slot.body).await?.status, 201)
        }
        Kind::List => {
            let Some(i) = pick(&s.list_paths, &s.list_next) else {
                return Ok(Outcome::Exhausted);
            };
            expect(conn.get(&s.list_paths[i]).await?.status, 200)
        }
        Kind::SigninPassword => {
            let Some(i) = pick(&s.password_bodies, &s.password_next) else {
                return Ok(Outcome::Exhausted);
            };
            let body = s.password_bodies[i].clone();
            expect(
                conn.post("/user_management/authenticate", body)
                    .await?
                    .status,
                200,
            )
        }
        Kind::SigninTotp => {
            let Some(mut f) = s.signin_pool.take() else {
                return Ok(Outcome::Exhausted);
            };
            let r = signin_totp(conn, s, &mut f).await;
            s.signin_pool.give_back(f);
            r?
        }
    })
}

/// Whether `needle` occurs in `hay`.
fn memchr(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn signin_totp(
    conn: &mut Conn,
    s: &Shared,
    f: &mut crate::pool::Factor,
) -> anyhow::Result<Outcome> {
    let r = conn
        .post("/user_management/authenticate", s.password_body(&f.email))
        .await?;
    if r.status != 403 {
        return Ok(Outcome::Failed(r.status));
    }
    let v = r.json()?;
    let pending = v["pending_authentication_token"]
        .as_str()
        .context("no pending_authentication_token")?;
    let factor_id = v["authentication_factors"][0]["id"]
        .as_str()
        .context("no authentication_factors[0].id")?;
    let r = conn
        .post(
            &format!("/auth/factors/{factor_id}/challenge"),
            Bytes::from_static(b"{}"),
        )
        .await?;
    if r.status != 201 {
        return Ok(Outcome::Failed(r.status));
    }
    let c = r.json()?;
    let challenge = c["id"].as_str().context("challenge without id")?;
    let Some(step) = f.next_step(unix_millis()) else {
        return Ok(Outcome::Exhausted);
    };
    let body = json!({
        "grant_type": "urn:workos:oauth:grant-type:mfa-totp",
        "client_id": s.client_id,
        "client_secret": s.api_key,
        "code": f.use_step(step),
        "pending_authentication_token": pending,
        "authentication_challenge_id": challenge,
    });
    let r = conn
        .post(
            "/user_management/authenticate",
            Bytes::from(body.to_string()),
        )
        .await?;
    Ok(expect(r.status, 200))
}

/// What one group of tasks did in the measured window.
pub(crate) struct GroupResult {
    pub kind: Kind,
    pub hist: Histogram<u64>,
    pub ok: u64,
    /// Unexpected statuses (0: a right code answered `valid: false`).
    pub failed: BTreeMap<u16, u64>,
    pub transport_errors: u64,
    /// When the first task ran out of prepared data, if one did.
    pub exhausted_at: Option<Instant>,
    pub window_start: Instant,
}

/// One measured run: every group's results, the window, and CPU time spent in it.
pub(crate) struct RunResult {
    pub groups: Vec<GroupResult>,
    pub seconds: f64,
    pub server_cpu_s: f64,
    pub client_cpu_s: f64,
    /// CPU time of the local PostgreSQL server's processes (0 on SQLite).
    pub database_cpu_s: f64,
    /// CPU time of everything else on the machine in the window (noise).
    pub other_cpu_s: f64,
    /// Context switches of the server's threads in the window.
    pub server_context_switches: u64,
}

fn new_hist() -> anyhow::Result<Histogram<u64>> {
    // Microseconds, 1 µs to 100 s, 3 significant digits.
    Ok(Histogram::new_with_bounds(1, 100_000_000, 3)?)
}

struct TaskOut {
    hist: Histogram<u64>,
    ok: u64,
    failed: BTreeMap<u16, u64>,
    transport_errors: u64,
    exhausted_at: Option<Instant>,
}

async fn task(
    kind: Kind,
    mut conn: Conn,
    s: Arc<Shared>,
    start: Instant,
    window_start: Instant,
    end: Instant,
) -> anyhow::Result<TaskOut> {
    let mut out = TaskOut {
        hist: new_hist()?,
        ok: 0,
        failed: BTreeMap::new(),
        transport_errors: 0,
        exhausted_at: None,
    };
    tokio::time::sleep_until(start).await;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let outcome = match once(kind, &mut conn, &s).await {
            Ok(o) => o,
            Err(e) => {
                // A malformed answer is a failure of the server, not of the bench: count it.
                if e.downcast_ref::<hyper::Error>().is_some()
                    || e.downcast_ref::<reqwest::Error>().is_some()
                    || e.downcast_ref::<std::io::Error>().is_some()
                {
                    Outcome::Transport
                } else {
                    Outcome::Failed(1)
                }
            }
        };
        let t1 = Instant::now();
        if let Outcome::Exhausted = outcome {
            out.exhausted_at = Some(t1);
            break;
        }
        let counted = t1 >= window_start && t1 <= end;
        match outcome {
            Outcome::Ok if counted => {
                out.ok += 1;
                let us = u64::try_from((t1 - t0).as_micros()).unwrap_or(u64::MAX);
                out.hist.saturating_record(us.max(1));
            }
            Outcome::Failed(st) if counted => *out.failed.entry(st).or_default() += 1,
            Outcome::Transport => {
                if counted {
                    out.transport_errors += 1;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            _ => {}
        }
    }
    Ok(out)
}

/// CPU ticks so far.
struct Cpu {
    server: u64,
    bench: u64,
    /// Local PostgreSQL processes (0 when `postgres` is false).
    database: u64,
    /// The whole machine's busy time.
    machine: u64,
    /// The server's context switches (a count, not ticks).
    switches: u64,
}

fn read_cpu(pid: u32, postgres: bool) -> anyhow::Result<Cpu> {
    Ok(Cpu {
        server: crate::server::cpu_ticks(&format!("/proc/{pid}/stat"))?,
        bench: crate::server::cpu_ticks("/proc/self/stat")?,
        database: if postgres {
            crate::server::postgres_ticks()
        } else {
            0
        },
        machine: crate::server::machine_busy_ticks()?,
        switches: crate::server::context_switches(pid),
    })
}

/// Runs each `(kind, connections)` group at once: `warmup`, then a measured `window`.
/// How to time and account a run.
pub(crate) struct Window {
    pub warmup: Duration,
    pub measured: Duration,
    pub server_pid: u32,
    pub ticks_per_s: f64,
    /// Account local PostgreSQL processes' CPU separately.
    pub postgres: bool,
}

pub(crate) async fn run(
    target: &Target,
    shared: &Arc<Shared>,
    groups: &[(Kind, usize)],
    w: &Window,
) -> anyhow::Result<RunResult> {
    let (warmup, window, server_pid, ticks_per_s, postgres) = (
        w.warmup,
        w.measured,
        w.server_pid,
        w.ticks_per_s,
        w.postgres,
    );
    let mut conns = Vec::new();
    for &(kind, n) in groups {
        for _ in 0..n {
            conns.push((kind, Conn::connect(target).await?));
        }
    }
    let start = Instant::now() + Duration::from_millis(20);
    let window_start = start + warmup;
    let end = window_start + window;
    let mut handles = Vec::new();
    for (kind, conn) in conns {
        handles.push((
            kind,
            tokio::spawn(task(
                kind,
                conn,
                Arc::clone(shared),
                start,
                window_start,
                end,
            )),
        ));
    }
    tokio::time::sleep_until(window_start).await;
    let c0 = read_cpu(server_pid, postgres)?;
    tokio::time::sleep_until(end).await;
    let c1 = read_cpu(server_pid, postgres)?;
    let secs = |a: u64, b: u64| b.saturating_sub(a) as f64 / ticks_per_s;
    let server_cpu_s = secs(c0.server, c1.server);
    let client_cpu_s = secs(c0.bench, c1.bench);
    let database_cpu_s = secs(c0.database, c1.database);
    let other_cpu_s =
        (secs(c0.machine, c1.machine) - server_cpu_s - client_cpu_s - database_cpu_s).max(0.0);
    let mut results: Vec<GroupResult> = Vec::new();
    for &(kind, _) in groups {
        results.push(GroupResult {
            kind,
            hist: new_hist()?,
            ok: 0,
            failed: BTreeMap::new(),
            transport_errors: 0,
            exhausted_at: None,
            window_start,
        });
    }
    for (kind, h) in handles {
        let out = h.await??;
        let Some(g) = results.iter_mut().find(|g| g.kind == kind) else {
            continue;
        };
        g.hist.add(&out.hist)?;
        g.ok += out.ok;
        for (st, n) in out.failed {
            *g.failed.entry(st).or_default() += n;
        }
        g.transport_errors += out.transport_errors;
        g.exhausted_at = match (g.exhausted_at, out.exhausted_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(RunResult {
        groups: results,
        seconds: window.as_secs_f64(),
        server_cpu_s,
        client_cpu_s,
        database_cpu_s,
        other_cpu_s,
        server_context_switches: c1.switches.saturating_sub(c0.switches),
    })
}
