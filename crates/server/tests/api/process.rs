//! Real `tessera` processes, for tests that an in-process [`crate::helpers::TestApp`] cannot
//! be: several servers on one database, a server killed with SIGKILL and started again.
//!
//! [`ServerProcess::start`] runs the binary built by cargo (`CARGO_BIN_EXE_tessera`) with a
//! given database URL, master key and extra flags, on a free port (`--listen 127.0.0.1:0`,
//! the address read back from its log), and returns once it listens, or panics with its log
//! after [`READY_DEADLINE`]. The log (stderr and stdout) is kept and shown by every panic of
//! the harness; [`ServerProcess::kill`] is SIGKILL (nothing flushed, nothing closed: a
//! crash), [`ServerProcess::stop`] is SIGTERM (graceful), [`ServerProcess::restart`] starts
//! the same command again (on a new port). A process still running when its value is dropped
//! (a failing test) is killed. [`ServerOptions::cli`] runs a management command against the
//! same database and key. Real processes read the wall clock, so tests that wait for one use
//! [`poll_until`], bounded, never a sleep.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a server may take from spawn to listening (a start is ~10 ms; a loaded CI
/// machine and a PostgreSQL migration lock get a generous margin).
pub(crate) const READY_DEADLINE: Duration = Duration::from_secs(30);

/// How to run a server: the same options serve every (re)start and the CLI.
#[derive(Clone, Debug)]
pub(crate) struct ServerOptions {
    /// `--database-url`: a SQLite path or a `postgres://` URL.
    pub database_url: String,
    /// `TESSERA_MASTER_KEY` (required with PostgreSQL; SQLite uses its key file without it).
    pub master_key: Option<String>,
    /// More `tessera serve` flags, e.g. `["--api-key-cache-ms", "300"]`.
    pub args: Vec<String>,
    /// `TESSERA_LOG` (default `info`: the start-up lines are what readiness looks for).
    pub log_filter: String,
}

impl ServerOptions {
    pub(crate) fn new(database_url: &str, master_key: Option<String>) -> Self {
        ServerOptions {
            database_url: database_url.to_owned(),
            master_key,
            args: Vec::new(),
            log_filter: "info".into(),
        }
    }

    pub(crate) fn arg(mut self, flag: &str, value: &str) -> Self {
        self.args.push(flag.to_owned());
        self.args.push(value.to_owned());
        self
    }

    /// `tessera` with this database and key, nothing else from the environment.
    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.args(["--database-url", &self.database_url])
            .env_remove("TESSERA_DATABASE_URL")
            .env_remove("TESSERA_MASTER_KEY")
            .env_remove("TESSERA_OLD_MASTER_KEYS")
            .env_remove("TESSERA_LISTEN")
            .env_remove("TESSERA_LOG_FORMAT");
        if let Some(k) = &self.master_key {
            cmd.env("TESSERA_MASTER_KEY", k);
        }
        cmd
    }

    /// Runs a management command (`["settings", "mfa-required", "on"]`) on this database;
    /// panics with its output when it fails.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        let out = self.command().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "tessera {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// One running (or killed) `tessera serve`.
pub(crate) struct ServerProcess {
    pub opts: ServerOptions,
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` of the current run.
    pub base: String,
    /// The API key a first start on an empty database logs, when this run logged one.
    pub first_key: Option<String>,
    /// Everything every run of this server wrote, runs separated by a marker line.
    log: Arc<Mutex<String>>,
    /// Where the current run's output starts in `log`.
    run_start: usize,
}

impl ServerProcess {
    /// Starts `tessera serve` and waits until it listens.
    pub(crate) fn start(opts: ServerOptions) -> ServerProcess {
        let mut p = ServerProcess {
            opts,
            child: None,
            base: String::new(),
            first_key: None,
            log: Arc::new(Mutex::new(String::new())),
            run_start: 0,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        {
            let mut log = self.log.lock().unwrap();
            if !log.is_empty() {
                log.push_str("---- restart ----\n");
            }
            self.run_start = log.len();
        }
        let mut child = self
            .opts
            .command()
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(&self.opts.args)
            .env("TESSERA_LOG", &self.opts.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Reader threads keep draining both pipes (a full pipe would block the server) and
        // report the listening address; they end when the process does.
        let (tx, rx) = mpsc::channel::<String>();
        for pipe in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let (log, tx) = (self.log.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    log.lock().unwrap().push_str(&format!("{line}\n"));
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        self.child = Some(child);
        let deadline = Instant::now() + READY_DEADLINE;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(i) = line.find("sk_") {
                        self.first_key = line[i..].split_whitespace().next().map(str::to_owned);
                    }
                    if line.contains("tessera is listening") {
                        if let Some(a) = line
                            .split("address=")
                            .nth(1)
                            .and_then(|s| s.split_whitespace().next())
                        {
                            break a.to_owned();
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.fail(&format!("not listening after {READY_DEADLINE:?}"))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().and_then(|c| c.wait().ok());
                    self.child = None;
                    self.fail(&format!("exited before listening ({status:?})"))
                }
            }
        };
        self.base = format!("http://{addr}");
    }

    /// Panics with `msg` and the server's log.
    pub(crate) fn fail(&self, msg: &str) -> ! {
        panic!(
            "{msg}\n---- log of tessera {} ----\n{}",
            self.opts.database_url,
            self.log()
        )
    }

    /// Everything the server wrote so far, every run.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// What the current (or last) run wrote.
    pub(crate) fn run_log(&self) -> String {
        self.log.lock().unwrap()[self.run_start..].to_owned()
    }

    /// SIGKILL: the process ends at once, mid-request, without flushing or closing anything.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // `Child::kill` is SIGKILL on Unix.
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, then waits (bounded) for the graceful exit; its status.
    pub(crate) fn stop(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                self.fail("still running 40 s after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the same command again on the same database (after [`Self::kill`] or
    /// [`Self::stop`]); the new run listens on a new port.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Retries `check` until it returns true, for at most `limit`; returns how long it took, or
/// panics naming `what`. For changes made by another process, whose documented delays run on
/// the wall clock.
pub(crate) async fn poll_until<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not seen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A small HTTP client for one server process and API key.
#[derive(Clone)]
pub(crate) struct Api {
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl Api {
    pub(crate) fn new(server: &ServerProcess, key: &str) -> Api {
        Api {
            base: server.base.clone(),
            key: key.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// A request with the API key and, when given, a JSON body; `Err` when no answer came
    /// (the server was killed, say). A body that is not JSON becomes a JSON string.
    pub(crate) async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(reqwest::StatusCode, serde_json::Value), reqwest::Error> {
        let mut rb = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        let v = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Ok((status, v))
    }

    pub(crate) async fn get(&self, path: &str) -> (reqwest::StatusCode, serde_json::Value) {
        self.try_call(reqwest::Method::GET, path, None)
            .await
            .unwrap_or_else(|e| panic!("GET {}{path}: {e}", self.base))
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        self.try_call(reqwest::Method::POST, path, Some(body))
            .await
            .unwrap_or_else(|e| panic!("POST {}{path}: {e}", self.base))
    }
}

/// The TOTP code for `secret_b32` at the wall clock (real servers read the wall clock), and
/// its step.
pub(crate) fn totp_now(secret_b32: &str) -> (String, i64) {
    use tessera_core::Clock;
    let s = tessera_core::totp::TotpSecret::from_base32(secret_b32).unwrap();
    let step = tessera_core::totp::step_at(tessera_core::clock::SystemClock.now().unix_seconds());
    (tessera_core::totp::code_for_step(&s, step), step)
}
