//! The server under test as a child process: a fresh database for it (a SQLite file in a
//! temporary directory, or a PostgreSQL database created on the given server and dropped
//! afterwards), starting `tessera serve` and reading its address and first API key from its
//! log, stopping it with SIGTERM, and reading its CPU time and peak memory from `/proc`.

use std::collections::VecDeque;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context};

/// A database that exists only for this bench run.
pub(crate) struct Db {
    pub url: String,
    pub kind: &'static str,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the admin URL and the database name to drop at the end.
    pg: Option<(String, String)>,
}

impl Db {
    /// SQLite in a temporary directory when `database_url` is `None`; otherwise a new
    /// database on the PostgreSQL server that `database_url` points to (any database on it
    /// will do to connect).
    pub(crate) async fn create(database_url: Option<&str>) -> anyhow::Result<Db> {
        let Some(admin) = database_url else {
            let dir = tempfile::Builder::new().prefix("tessera-bench").tempdir()?;
            let path = dir.path().join("bench.db");
            return Ok(Db {
                url: path.to_string_lossy().into_owned(),
                kind: "sqlite",
                _dir: Some(dir),
                pg: None,
            });
        };
        if !(admin.starts_with("postgres://") || admin.starts_with("postgresql://")) {
            bail!("--database-url must be postgres://... (SQLite is the default: leave it out)");
        }
        use sqlx::Connection;
        let name = format!(
            "tessera_bench_{}_{}",
            std::process::id(),
            crate::pool::unix_millis()
        );
        let mut c = sqlx::PgConnection::connect(admin)
            .await
            .with_context(|| format!("cannot connect to {admin}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .with_context(|| format!("cannot create the database {name}"))?;
        let _ = c.close().await;
        let mut url = reqwest::Url::parse(admin)?;
        url.set_path(&format!("/{name}"));
        Ok(Db {
            url: url.to_string(),
            kind: "postgres",
            _dir: None,
            pg: Some((admin.to_owned(), name)),
        })
    }

    /// Drops the PostgreSQL database (the SQLite directory goes with `self`).
    pub(crate) async fn remove(mut self) {
        if let Some((admin, name)) = self.pg.take() {
            use sqlx::Connection;
            match sqlx::PgConnection::connect(&admin).await {
                Ok(mut c) => {
                    if let Err(e) =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut c)
                            .await
                    {
                        eprintln!("warning: could not drop the bench database {name}: {e}");
                    }
                    let _ = c.close().await;
                }
                Err(e) => eprintln!("warning: could not drop the bench database {name}: {e}"),
            }
        }
    }
}

/// What the server's log told us at start.
#[derive(Debug, Clone)]
pub(crate) struct Started {
    pub addr: SocketAddr,
    pub client_id: Option<String>,
    /// Only on a fresh database: the bootstrap API key.
    pub api_key: Option<String>,
}

enum LogEvent {
    Key(String),
    Listening {
        addr: SocketAddr,
        client_id: Option<String>,
    },
}

pub(crate) struct Server {
    child: Child,
    pub pid: u32,
    events: mpsc::Receiver<LogEvent>,
    /// The last lines of the server's stderr, for error messages.
    tail: Arc<Mutex<VecDeque<String>>>,
}

/// The value after `name=` up to the next space.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let pat = format!("{name}=");
    let i = line.find(&pat)? + pat.len();
    line[i..].split_whitespace().next()
}

fn parse_line(line: &str) -> Option<LogEvent> {
    if let Some(i) = line.find("store it now: ") {
        let key = line[i + "store it now: ".len()..]
            .split_whitespace()
            .next()?;
        return Some(LogEvent::Key(key.to_owned()));
    }
    if line.contains("tessera is listening") {
        let addr = field(line, "address")?.parse().ok()?;
        return Some(LogEvent::Listening {
            addr,
            client_id: field(line, "client_id").map(str::to_owned),
        });
    }
    None
}

impl Server {
    /// Starts `bin serve --listen LISTEN` on `database_url` with `master_key`; returns at
    /// once (see [`Server::wait_listening`]).
    pub(crate) fn spawn(
        bin: &Path,
        database_url: &str,
        master_key: &str,
        listen: &str,
    ) -> anyhow::Result<Server> {
        let mut cmd = Command::new(bin);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("TESSERA_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .args(["--database-url", database_url, "serve", "--listen", listen])
            .env("TESSERA_MASTER_KEY", master_key)
            .env("TESSERA_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let (tx, events) = mpsc::channel();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail2 = Arc::clone(&tail);
        // Drain stderr for the server's whole life, or it would block once the pipe fills.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("server: {line}");
                }
                if let Some(ev) = parse_line(&line) {
                    let _ = tx.send(ev);
                }
                let mut t = tail2.lock().unwrap_or_else(PoisonError::into_inner);
                if t.len() == 40 {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
        Ok(Server {
            pid: child.id(),
            child,
            events,
            tail,
        })
    }

    /// The last lines the server logged.
    pub(crate) fn log_tail(&self) -> String {
        let t = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        t.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Waits for the `tessera is listening address=...` line (and, before it, the API key
    /// line on a fresh database).
    pub(crate) fn wait_listening(&mut self, timeout: Duration) -> anyhow::Result<Started> {
        let deadline = std::time::Instant::now() + timeout;
        let mut api_key = None;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(left) {
                Ok(LogEvent::Key(k)) => api_key = Some(k),
                Ok(LogEvent::Listening { addr, client_id }) => {
                    return Ok(Started {
                        addr,
                        client_id,
                        api_key,
                    })
                }
                Err(_) => {
                    // Give the drain thread a moment to store the last lines.
                    std::thread::sleep(Duration::from_millis(50));
                    let status = self.child.try_wait().ok().flatten();
                    bail!(
                        "the server did not report its address ({}); its log:\n{}",
                        match status {
                            Some(s) => format!("it exited: {s}"),
                            None => "timed out".to_owned(),
                        },
                        self.log_tail()
                    );
                }
            }
        }
    }

    /// SIGTERM, then up to 15 s for in-flight requests to finish, then SIGKILL.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("the server exited with {status}:\n{}", self.log_tail());
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        bail!("the server did not stop within 15 s of SIGTERM; killed it")
    }

    /// Peak resident set size (VmHWM) in KiB.
    pub(crate) fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmHWM in /proc/PID/status")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// utime + stime (fields 14 and 15 of `/proc/PID/stat`), in clock ticks.
pub(crate) fn cpu_ticks(stat_path: &str) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(stat_path)?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).context("no utime")?.parse()?;
    let stime: u64 = f.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// Context switches (voluntary + involuntary) of all live threads of process `pid`.
pub(crate) fn context_switches(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|status| {
            status
                .lines()
                .filter_map(|l| {
                    l.strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                })
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// Busy CPU ticks of the whole machine (all CPUs; `/proc/stat` minus idle and iowait).
pub(crate) fn machine_busy_ticks() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    anyhow::ensure!(v.len() >= 5, "malformed /proc/stat");
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v.iter().take(8).sum();
    Ok(total - v[3] - v[4])
}

/// utime + stime of every process named `postgres` (a local PostgreSQL server's backends),
/// in clock ticks, so that the database's CPU is not counted as noise.
pub(crate) fn postgres_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            let path = e.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            (comm.trim() == "postgres")
                .then(|| cpu_ticks(&path.join("stat").to_string_lossy()).ok())
                .flatten()
        })
        .sum()
}

/// The load averages (1, 5, 15 minutes).
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux in practice).
pub(crate) fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// The server binary: `--server-bin`, else `tessera` next to this executable (both are
/// built into `target/release` by `cargo build --release`).
pub(crate) fn server_bin(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match explicit {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("tessera"),
    };
    if !bin.is_file() {
        bail!(
            "the server binary {} does not exist: run `cargo build --release -p tessera-server -p tessera-bench` first, or pass --server-bin",
            bin.display()
        );
    }
    Ok(bin)
}

/// A free local port, for restarts whose readiness is polled from outside.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// `tessera client-id` on the same database, when the log line did not carry it.
pub(crate) fn client_id_command(
    bin: &Path,
    database_url: &str,
    master_key: &str,
) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(["--database-url", database_url, "client-id"])
        .env("TESSERA_MASTER_KEY", master_key)
        .stderr(Stdio::null())
        .output()?;
    let id = String::from_utf8(out.stdout)?.trim().to_owned();
    if !out.status.success() || id.is_empty() {
        bail!("`tessera client-id` failed: {}", out.status);
    }
    Ok(id)
}

/// The machine, for the report.
pub(crate) fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    serde_json::json!({
        "cpus": cpus,
        "cpu_model": model,
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_lines_are_parsed() {
        let key = "2026-01-01T00:00:00.000000Z  WARN tessera_server::startup: no API key existed, so one was created. It is shown only this once; store it now: sk_abc_def key_id=key_01";
        assert!(matches!(parse_line(key), Some(LogEvent::Key(k)) if k == "sk_abc_def"));
        let listening = "2026-01-01T00:00:00.000000Z  INFO tessera_server::startup: tessera is listening address=127.0.0.1:41234 client_id=client_01ABC";
        match parse_line(listening) {
            Some(LogEvent::Listening { addr, client_id }) => {
                assert_eq!(addr.port(), 41234);
                assert_eq!(client_id.as_deref(), Some("client_01ABC"));
            }
            _ => panic!("not parsed"),
        }
        assert!(parse_line("INFO something else").is_none());
    }

    #[test]
    fn cpu_ticks_of_this_process_and_the_machine_can_be_read() {
        assert!(cpu_ticks("/proc/self/stat").is_ok());
        assert!(machine_busy_ticks().is_ok());
    }
}
