//! `tessera-bench`: starts the `tessera` server on a fresh database, prepares data over its
//! API, drives each operation at fixed concurrencies for fixed times, and reports throughput,
//! latency, server CPU per operation, peak memory and start-up time (table on stdout, JSON
//! with `--json`). See docs/performance.md.
//!
//! Build both binaries first: `cargo build --release -p tessera-server -p tessera-bench`.

mod http;
mod ops;
mod pool;
mod prep;
mod report;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use tessera_core::totp::code_for_step;

use crate::http::{ClientKind, Conn, Target};
use crate::ops::{Kind, Op, RunResult, Shared};
use crate::pool::Slot;
use crate::prep::Prep;
use crate::report::{OpResult, RunStats, SideStats, Startup};
use crate::server::{Db, Server};

#[derive(Debug, Parser)]
#[command(
    name = "tessera-bench",
    about = "Benchmarks the tessera server (target/release/tessera) on a fresh database"
)]
struct Args {
    /// A PostgreSQL server (any database on it): the bench creates its own database there and
    /// drops it at the end. Without it: SQLite in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Warm-up seconds before each measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Runs per operation and concurrency (the table shows their median, min and max).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Concurrent connections (comma-separated); each is one task sending requests in a loop.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    connections: Vec<usize>,
    /// Operations to run (comma-separated); default: all.
    #[arg(long, value_delimiter = ',', value_enum)]
    ops: Vec<Op>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The server binary; default: `tessera` next to this executable.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The load generator's HTTP client.
    #[arg(long, value_enum, default_value = "hyper")]
    client: ClientKind,
    /// Send a fresh `Idempotency-Key` (UUID-shaped, as the Python and Go SDKs do) on every
    /// POST, to measure what the key's claim and stored answer cost.
    #[arg(long)]
    idempotency_keys: bool,
}

/// Connections of `verify-under-password-load`: verify, and password sign-in beside it.
const LOAD_VERIFY_CONNS: usize = 64;
const LOAD_PASSWORD_CONNS: usize = 8;
/// Users that enrolment (and the verify pool) spreads over.
const ENROLL_USERS: usize = 256;
/// Users listed by `list`, with two factors each.
const LIST_USERS: usize = 256;
/// Users without factors for `signin-password`.
const PASSWORD_USERS: usize = 64;
/// Wrong codes per challenge (the server evaluates 5, then answers 400) and factors per user
/// (100 failures per user per hour, so 19 × 5 = 95 stay under it; 5 per factor stay under
/// the factor's 10 per 15 minutes).
const WRONG_PER_CHALLENGE: usize = 5;
const WRONG_FACTORS_PER_USER: usize = 19;

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(main_async(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn main_async(mut args: Args) -> anyhow::Result<()> {
    let bin = server::server_bin(args.server_bin.clone())?;
    if args.ops.is_empty() {
        args.ops = <Op as clap::ValueEnum>::value_variants().to_vec();
    }
    args.ops.sort();
    args.ops.dedup();
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    anyhow::ensure!(args.seconds > 0.0, "--seconds must be positive");
    anyhow::ensure!(
        !args.connections.is_empty() && args.connections.iter().all(|c| *c > 0),
        "--connections must be positive numbers"
    );
    let db = Db::create(args.database_url.as_deref()).await?;
    eprintln!("database: {} ({})", db.kind, db.url);
    let r = tokio::select! {
        r = bench(&args, &bin, &db) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    db.remove().await;
    r
}

/// Per-operation guesses of throughput, to size prepared data; raised as runs measure it.
struct Estimates {
    verify: f64,
    wrong: f64,
    signin: f64,
    other: f64,
}

struct Bench<'a> {
    args: &'a Args,
    target: Target,
    prep: Prep,
    shared: Arc<Shared>,
    server_pid: u32,
    ticks: f64,
    /// PostgreSQL backend: its processes' CPU is measured, not counted as noise.
    postgres: bool,
    est: Estimates,
}

async fn bench(args: &Args, bin: &std::path::Path, db: &Db) -> anyhow::Result<()> {
    let load_start = server::load_average();
    let (_, master_key) = tessera_core::seal::MasterKey::generate();
    let mut srv = Server::spawn(bin, &db.url, &master_key, "127.0.0.1:0")?;
    let started = tokio::task::block_in_place(|| srv.wait_listening(Duration::from_secs(120)))?;
    let api_key = started
        .api_key
        .context("the server printed no API key: the database was not fresh")?;
    let client_id = match started.client_id {
        Some(c) => c,
        None => server::client_id_command(bin, &db.url, &master_key)?,
    };
    eprintln!(
        "server pid {} listening on {}, client id {client_id}",
        srv.pid, started.addr
    );
    let target = Target {
        addr: started.addr,
        api_key: api_key.clone(),
        kind: args.client,
        idempotency_keys: args.idempotency_keys,
    };
    if args.idempotency_keys {
        eprintln!("every POST carries a fresh Idempotency-Key");
    }
    Conn::connect(&target)
        .await?
        .get("/health")
        .await?
        .expect(200)?;
    let password_hash =
        tokio::task::spawn_blocking(|| tessera_core::password::hash(prep::PASSWORD))
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let prep = Prep::new(target.clone(), password_hash);
    let shared = prepare_fixed(args, &prep, Shared::new(client_id, api_key)).await?;
    let mut b = Bench {
        args,
        target,
        prep,
        shared: Arc::new(shared),
        server_pid: srv.pid,
        ticks: server::clock_ticks_per_second(),
        postgres: db.kind == "postgres",
        est: Estimates {
            verify: 2000.0,
            wrong: 2000.0,
            signin: 50.0,
            other: 0.0,
        },
    };
    let mut results: Vec<OpResult> = Vec::new();
    let mut rss_after = serde_json::Map::new();
    for &op in &args.ops {
        let levels: Vec<Vec<(Kind, usize)>> = match op {
            Op::Startup => continue,
            Op::VerifyUnderPasswordLoad => vec![vec![
                (Kind::Verify, LOAD_VERIFY_CONNS),
                (Kind::SigninPassword, LOAD_PASSWORD_CONNS),
            ]],
            _ => args
                .connections
                .iter()
                .map(|&c| vec![(kind_of(op), c)])
                .collect(),
        };
        for groups in levels {
            let r = b
                .measure(op, &groups)
                .await
                .with_context(|| format!("{} at {} connections", op.name(), groups[0].1));
            let r = match r {
                Ok(r) => r,
                Err(e) => return Err(e.context(format!("server log:\n{}", srv.log_tail()))),
            };
            eprintln!(
                "  {} @{}: {:.0} ok/s median, p99 {:.2} ms",
                op.name(),
                r.connections,
                r.median_ok_per_s(),
                r.p99_ms()
            );
            results.push(r);
        }
        let rss = srv.peak_rss_kib()?;
        rss_after.insert(op.name().to_owned(), json!(rss));
    }
    let peak_rss_kib = srv.peak_rss_kib().ok();
    tokio::task::block_in_place(|| srv.stop())?;
    let startup = if args.ops.contains(&Op::Startup) {
        Some(measure_startup(args, bin, db, &master_key).await?)
    } else {
        None
    };

    let table = report::table(&results);
    println!("\n{table}");
    println!(
        "ok/s: successful operations per second (med/min/max of the runs); p50/p99: all runs' requests; \
         srv/bench/db µs/op: CPU time of the server/bench/PostgreSQL per successful operation; \
         cs/op: the server's context switches per operation; \
         other%: highest share of the machine's CPU used by other processes during a run"
    );
    if let Some(k) = peak_rss_kib {
        println!(
            "peak RSS (VmHWM) of the server: {:.1} MiB",
            k as f64 / 1024.0
        );
    }
    if let Some(s) = &startup {
        println!(
            "start to ready /health on the existing database: median {:.0} ms (min {:.0}, max {:.0}; {} starts)",
            report::median(&s.ms),
            s.ms.iter().copied().fold(f64::INFINITY, f64::min),
            s.ms.iter().copied().fold(0.0, f64::max),
            s.ms.len()
        );
    }
    let targets = report::targets(db.kind, &results, peak_rss_kib, startup.as_ref());
    println!(
        "\ntargets ({}):\n{}",
        db.kind,
        report::targets_table(&targets)
    );
    if let Some(path) = &args.json {
        let v = json!({
            "machine": server::machine(),
            "load_average": { "start": load_start, "end": server::load_average() },
            "backend": db.kind,
            "settings": {
                "seconds": args.seconds,
                "warmup_seconds": args.warmup,
                "runs": args.runs,
                "connections": args.connections,
                "client": format!("{:?}", args.client).to_lowercase(),
                "server_bin": bin.display().to_string(),
            },
            "results": results.iter().map(OpResult::to_json).collect::<Vec<_>>(),
            "peak_rss_kib": peak_rss_kib,
            "peak_rss_kib_after_op": rss_after,
            "startup": startup.as_ref().map(|s| json!({
                "ms": s.ms,
                "median_ms": report::median(&s.ms),
                "idle_peak_rss_kib": s.idle_rss_kib,
            })),
            "targets": report::targets_json(&targets),
        });
        std::fs::write(path, serde_json::to_string_pretty(&v)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn kind_of(op: Op) -> Kind {
    match op {
        Op::Health | Op::Startup => Kind::Health,
        Op::Enroll => Kind::Enroll,
        Op::Verify | Op::VerifyUnderPasswordLoad => Kind::Verify,
        Op::VerifyWrong => Kind::VerifyWrong,
        Op::List => Kind::List,
        Op::SigninPassword => Kind::SigninPassword,
        Op::SigninTotp => Kind::SigninTotp,
    }
}

/// The data that does not run out: users to enrol, users to list, password users.
async fn prepare_fixed(args: &Args, prep: &Prep, mut s: Shared) -> anyhow::Result<Shared> {
    let has = |op| args.ops.contains(&op);
    if has(Op::Enroll) || has(Op::Verify) || has(Op::VerifyUnderPasswordLoad) {
        eprintln!("preparing {ENROLL_USERS} users to enrol factors for");
        s.enroll_users = prep
            .users("enroll", ENROLL_USERS)
            .await?
            .into_iter()
            .map(|u| (u.id, u.email))
            .collect();
    }
    if has(Op::List) {
        eprintln!("preparing {LIST_USERS} users with 2 factors each to list");
        let users = prep.users("list", LIST_USERS).await?;
        let pairs: Vec<(String, String)> = users
            .iter()
            .flat_map(|u| {
                [
                    (u.id.clone(), u.email.clone()),
                    (u.id.clone(), u.email.clone()),
                ]
            })
            .collect();
        prep.enroll(pairs).await?;
        s.list_paths = users
            .iter()
            .map(|u| format!("/user_management/users/{}/auth_factors", u.id))
            .collect();
    }
    if has(Op::SigninPassword) || has(Op::VerifyUnderPasswordLoad) {
        eprintln!("preparing {PASSWORD_USERS} users without factors to sign in");
        let users = prep.users("password", PASSWORD_USERS).await?;
        s.password_bodies = users.iter().map(|u| s.password_body(&u.email)).collect();
    }
    Ok(s)
}

impl Bench<'_> {
    fn duration(&self) -> f64 {
        self.args.warmup + self.args.seconds
    }

    /// All runs of one operation at one concurrency.
    async fn measure(&mut self, op: Op, groups: &[(Kind, usize)]) -> anyhow::Result<OpResult> {
        let conns = groups[0].1;
        let mut result = OpResult {
            op,
            connections: conns,
            runs: Vec::new(),
            hist: hdrhistogram::Histogram::new_with_bounds(1, 100_000_000, 3)?,
            side: (groups.len() > 1)
                .then(|| -> anyhow::Result<SideStats> {
                    Ok(SideStats {
                        connections: groups[1].1,
                        ok_per_s: Vec::new(),
                        hist: hdrhistogram::Histogram::new_with_bounds(1, 100_000_000, 3)?,
                        failed: Default::default(),
                    })
                })
                .transpose()?,
        };
        for run in 1..=self.args.runs {
            let mut attempt = 0;
            let r = loop {
                attempt += 1;
                self.prepare(op, conns).await?;
                let window = ops::Window {
                    warmup: Duration::from_secs_f64(self.args.warmup),
                    measured: Duration::from_secs_f64(self.args.seconds),
                    server_pid: self.server_pid,
                    ticks_per_s: self.ticks,
                    postgres: self.postgres,
                };
                let r = ops::run(&self.target, &self.shared, groups, &window).await?;
                let main = &r.groups[0];
                let Some(at) = main.exhausted_at else {
                    break r;
                };
                // Ran out of prepared data: size it from the rate seen before that, and redo.
                let seen = at
                    .saturating_duration_since(main.window_start)
                    .as_secs_f64();
                let rate = if seen > 0.2 {
                    main.ok as f64 / seen
                } else {
                    0.0
                };
                let est = self.estimate(op);
                *est = (*est * 2.0).max(rate * 1.3);
                eprintln!(
                    "  {} run {run}: prepared data ran out; preparing for {:.0} ok/s and running again",
                    op.name(),
                    *est
                );
                anyhow::ensure!(attempt < 5, "prepared data keeps running out");
            };
            self.record(op, &r, &mut result)?;
        }
        Ok(result)
    }

    /// The estimate that sizes `op`'s prepared data (a scratch value for the operations
    /// whose data does not run out).
    fn estimate(&mut self, op: Op) -> &mut f64 {
        match op {
            Op::VerifyWrong => &mut self.est.wrong,
            Op::SigninTotp => &mut self.est.signin,
            Op::Verify | Op::VerifyUnderPasswordLoad => &mut self.est.verify,
            _ => &mut self.est.other,
        }
    }

    fn record(&mut self, op: Op, r: &RunResult, result: &mut OpResult) -> anyhow::Result<()> {
        let main = &r.groups[0];
        // CPU per operation counts every operation the server completed in the window.
        let all_ok: u64 = r.groups.iter().map(|g| g.ok).sum();
        let stats = RunStats::from_group(main, r, all_ok);
        let est = self.estimate(op);
        *est = est.max(stats.ok_per_s);
        eprintln!(
            "  {} @{} run: {:.0} ok/s, p99 {:.2} ms, server {:.0} µs/op",
            op.name(),
            result.connections,
            stats.ok_per_s,
            stats.p99_ms,
            stats.server_cpu_us_per_op
        );
        if stats.other_cpu_pct > 15.0 {
            eprintln!(
                "  warning: other processes used {:.0}% of the machine's CPU during this run; its figures are not reliable",
                stats.other_cpu_pct
            );
        }
        result.hist.add(&main.hist)?;
        result.runs.push(stats);
        if let (Some(side), Some(g)) = (result.side.as_mut(), r.groups.get(1)) {
            side.ok_per_s.push(g.ok as f64 / r.seconds);
            side.hist.add(&g.hist)?;
            for (st, n) in &g.failed {
                *side.failed.entry(*st).or_default() += n;
            }
        }
        Ok(())
    }

    /// Makes sure the operation's consumable data will last one run (estimate × 1.3).
    async fn prepare(&mut self, op: Op, conns: usize) -> anyhow::Result<()> {
        let need = |rate: f64, d: f64| (rate * d * 1.3) as usize + 2 * conns;
        match op {
            Op::Verify | Op::VerifyUnderPasswordLoad => {
                self.top_up_verify(need(self.est.verify, self.duration()))
                    .await
            }
            Op::VerifyWrong => {
                self.top_up_wrong(need(self.est.wrong, self.duration()))
                    .await
            }
            Op::SigninTotp => {
                self.top_up_signin(need(self.est.signin, self.duration()))
                    .await
            }
            _ => Ok(()),
        }
    }

    /// Right-code verifies: spare steps of known factors get new challenges first, then new
    /// factors are enrolled (their first challenge plus one more: two codes each).
    async fn top_up_verify(&mut self, need: usize) -> anyhow::Result<()> {
        let pool = &self.shared.verify_pool;
        let have = pool.capacity();
        if have >= need {
            return Ok(());
        }
        let mut deficit = need - have;
        eprintln!(
            "  preparing {deficit} more right-code verifies (pool: {have} in {} factors)",
            pool.len()
        );
        let mut ids = Vec::new();
        for (id, missing) in pool.missing_challenges() {
            for _ in 0..missing {
                ids.push(id.clone());
            }
            if ids.len() >= deficit {
                break;
            }
        }
        ids.truncate(deficit);
        if !ids.is_empty() {
            let made = self.prep.challenges(ids).await?;
            deficit = deficit.saturating_sub(made.len());
            pool.add_challenges(made);
        }
        if deficit > 0 {
            let users = &self.shared.enroll_users;
            anyhow::ensure!(!users.is_empty(), "no users to enrol factors for");
            let n = deficit.div_ceil(2);
            let start = self
                .shared
                .enroll_next
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            let pairs = (start..start + n)
                .map(|i| users[i % users.len()].clone())
                .collect();
            let factors = self.prep.enroll(pairs).await?;
            let ids: Vec<String> = factors.iter().map(|f| f.id.clone()).collect();
            for f in factors {
                pool.add(f);
            }
            let made = self.prep.challenges(ids).await?;
            pool.add_challenges(made);
        }
        Ok(())
    }

    /// Wrong-code verifies: fresh users with 19 factors each, 5 attempts per factor's
    /// challenge.
    async fn top_up_wrong(&mut self, need: usize) -> anyhow::Result<()> {
        let slots = &self.shared.wrong_slots;
        let have = slots.len();
        if have >= need {
            return Ok(());
        }
        let factors = (need - have).div_ceil(WRONG_PER_CHALLENGE);
        let users = factors.div_ceil(WRONG_FACTORS_PER_USER);
        eprintln!(
            "  preparing {} more wrong-code verifies ({users} users, {factors} factors)",
            need - have
        );
        let users = self.prep.users("wrong", users).await?;
        let pairs: Vec<(String, String)> = users
            .iter()
            .flat_map(|u| (0..WRONG_FACTORS_PER_USER).map(|_| (u.id.clone(), u.email.clone())))
            .collect();
        let factors = self.prep.enroll(pairs).await?;
        let batch: Vec<Slot> = factors
            .into_iter()
            .filter_map(|mut f| {
                // A fixed step's code: right now only by a one-in-a-million coincidence.
                let code = code_for_step(&f.secret, 1);
                let c = f.take_challenge()?;
                Some(Slot {
                    path: format!("/auth/challenges/{c}/verify"),
                    body: bytes::Bytes::from(format!(r#"{{"code":"{code}"}}"#)),
                })
            })
            .collect();
        slots.add(&batch, WRONG_PER_CHALLENGE);
        Ok(())
    }

    /// Full sign-ins: fresh users with one factor each (two codes per factor at first).
    async fn top_up_signin(&mut self, need: usize) -> anyhow::Result<()> {
        let pool = &self.shared.signin_pool;
        let have = pool.capacity();
        if have >= need {
            return Ok(());
        }
        let n = (need - have).div_ceil(2);
        eprintln!("  preparing {n} users with a factor for full sign-ins (pool: {have})");
        let users = self.prep.users("mfa", n).await?;
        let factors = self
            .prep
            .enroll(users.into_iter().map(|u| (u.id, u.email)).collect())
            .await?;
        for f in factors {
            pool.add(f);
        }
        Ok(())
    }
}

/// Restarts the server on the (now populated) database and times spawn → first 200 from
/// `/health`, polling every millisecond.
async fn measure_startup(
    args: &Args,
    bin: &std::path::Path,
    db: &Db,
    master_key: &str,
) -> anyhow::Result<Startup> {
    let mut s = Startup {
        ms: Vec::new(),
        idle_rss_kib: Vec::new(),
    };
    for _ in 0..args.runs.max(3) {
        let port = server::free_port()?;
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let target = Target {
            addr,
            api_key: String::new(),
            kind: ClientKind::Hyper,
            idempotency_keys: false,
        };
        let t0 = tokio::time::Instant::now();
        let srv = Server::spawn(bin, &db.url, master_key, &addr.to_string())?;
        loop {
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(60),
                "the restarted server was not ready within 60 s:\n{}",
                srv.log_tail()
            );
            let ready = match Conn::connect(&target).await {
                Ok(mut c) => matches!(c.get("/health").await, Ok(r) if r.status == 200),
                Err(_) => false,
            };
            if ready {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        s.ms.push(ms);
        s.idle_rss_kib.push(srv.peak_rss_kib().unwrap_or(0));
        eprintln!("  startup: ready after {ms:.0} ms");
        tokio::task::block_in_place(|| srv.stop())?;
    }
    Ok(s)
}
