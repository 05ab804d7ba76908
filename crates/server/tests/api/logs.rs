//! The log an operator ships: `TESSERA_LOG_FORMAT=json` gives one JSON object per line, and
//! every line logged while a request is handled carries that request's id, also lines from
//! work the request hands to another task. The real binary, on port 0; every wait is bounded.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Generous for a debug binary on a busy 2-core machine; a healthy run takes about a second.
const DEADLINE: Duration = Duration::from_secs(30);

/// A `tessera` server process whose stderr and stdout lines arrive on a channel.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(dir: &std::path::Path, envs: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env_remove("TESSERA_DATABASE_URL")
            .env_remove("TESSERA_MASTER_KEY")
            .env_remove("TESSERA_LOG_FORMAT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        for pipe in [stderr, stdout] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Server {
            child,
            lines,
            seen: vec![],
        }
    }

    /// Reads lines until one satisfies `found`, within the deadline; returns that line.
    fn wait_for(&mut self, found: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if found(&line) {
                        return line;
                    }
                }
                Err(e) => panic!("no such log line ({e}); so far:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Stops the server with SIGTERM and returns every line it wrote, once both pipes closed.
    fn stop(mut self) -> Vec<String> {
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("the server did not stop: {e}"),
            }
        }
        assert!(self.child.wait().unwrap().success(), "graceful exit");
        self.seen
    }
}

/// The request ids of the spans a JSON log line was logged in.
fn request_ids(line: &Value) -> Vec<&str> {
    line["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["request_id"].as_str())
        .collect()
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()["x-request-id"].to_str().unwrap().to_owned()
}

#[cfg(unix)]
#[test]
fn json_logs_are_one_object_per_line_and_each_line_of_a_request_carries_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &[
            ("TESSERA_LOG_FORMAT", "json"),
            // Requests log their start and end at DEBUG: two lines each at least.
            ("TESSERA_LOG", "info,tower_http=debug"),
        ],
    );
    let key_line = server.wait_for(|l| l.contains("sk_"));
    let key: Value = serde_json::from_str(&key_line).unwrap();
    let message = key["fields"]["message"].as_str().unwrap();
    let api_key = message[message.find("sk_").unwrap()..].to_owned();
    let ready = server.wait_for(|l| l.contains("tessera is listening"));
    let ready: Value = serde_json::from_str(&ready).unwrap();
    let addr = ready["fields"]["address"].as_str().unwrap().to_owned();
    let client_id = ready["fields"]["client_id"].as_str().unwrap().to_owned();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (health_id, update_id, own_id) = rt.block_on(async {
        let http = reqwest::Client::new();
        let base = format!("http://{addr}");
        let health = http.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let user: Value = http
            .post(format!("{base}/user_management/users"))
            .bearer_auth(&api_key)
            .json(&json!({ "email": "log@example.com", "password": "correct horse battery" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let user_id = user["id"].as_str().unwrap();
        let signed_in = http
            .post(format!("{base}/user_management/authenticate"))
            .json(&json!({
                "grant_type": "password", "client_id": client_id, "client_secret": api_key,
                "email": "log@example.com", "password": "correct horse battery",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), 200);
        // A new password ends the session in a task of its own, which logs that it did.
        let update = http
            .put(format!("{base}/user_management/users/{user_id}"))
            .bearer_auth(&api_key)
            .json(&json!({ "password": "another horse battery" }))
            .send()
            .await
            .unwrap();
        assert_eq!(update.status(), 200);
        // A client's own request id is the one logged (and answered).
        let own = http
            .get(format!("{base}/health"))
            .header("x-request-id", "client-chosen-42")
            .send()
            .await
            .unwrap();
        assert_eq!(request_id(&own), "client-chosen-42");
        (request_id(&health), request_id(&update), request_id(&own))
    });
    let lines = server.stop();

    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
            assert!(v.is_object(), "{l}");
            for key in ["timestamp", "level", "target"] {
                assert!(v[key].is_string(), "{key} in {l}");
            }
            v
        })
        .collect();
    let of = |id: &str| -> Vec<&Value> {
        parsed
            .iter()
            .filter(|v| request_ids(v).contains(&id))
            .collect()
    };
    let messages = |id: &str| -> Vec<String> {
        of(id)
            .iter()
            .map(|v| v["fields"]["message"].as_str().unwrap_or("").to_owned())
            .collect()
    };

    let health = messages(&health_id);
    assert!(
        health.contains(&"started processing request".to_owned())
            && health.contains(&"finished processing request".to_owned()),
        "the health request's lines carry its id {health_id}: {health:?}\n{}",
        lines.join("\n")
    );
    let finished = of(&health_id)
        .into_iter()
        .find(|v| v["fields"]["message"] == "finished processing request")
        .unwrap();
    assert_eq!(finished["fields"]["status"], 200);
    assert_eq!(finished["span"]["path"], "/health");

    let update = messages(&update_id);
    assert!(
        update.contains(&"ended the user's sessions".to_owned()),
        "a line logged by the task the request spawned carries its id {update_id}: {update:?}\n{}",
        lines.join("\n")
    );
    assert!(update.len() >= 3, "{update:?}");
    assert_eq!(messages(&own_id).len(), 2, "{}", lines.join("\n"));
    // Exactly one request span around each request's lines (no leak into the next one).
    for v in &parsed {
        if v["target"].as_str().unwrap().starts_with("tower_http")
            || v["fields"]["message"] == "ended the user's sessions"
        {
            assert_eq!(request_ids(v).len(), 1, "{v}");
        }
    }
}

#[cfg(unix)]
#[test]
fn text_logs_show_the_request_id_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &[
            ("TESSERA_LOG_FORMAT", "text"),
            ("TESSERA_LOG", "info,tower_http=debug"),
        ],
    );
    let ready = server.wait_for(|l| l.contains("tessera is listening"));
    let addr = ready
        .split("address=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let r = reqwest::get(format!("http://{addr}/health")).await.unwrap();
        assert_eq!(r.status(), 200);
        request_id(&r)
    });
    let lines = server.stop();
    let tagged: Vec<&String> = lines
        .iter()
        .filter(|l| {
            l.contains(&format!(
                "request{{request_id={id} method=GET path=/health}}"
            ))
        })
        .collect();
    assert_eq!(tagged.len(), 2, "{}", lines.join("\n"));
    assert!(
        lines.iter().all(|l| !l.trim_start().starts_with('{')),
        "text, not JSON"
    );
}

#[test]
fn an_unknown_log_format_is_refused_at_start_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let by_env = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("TESSERA_DATABASE_URL")
        .env("TESSERA_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    let by_flag = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["--log-format", "JSON", "client-id"])
        .current_dir(dir.path())
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_LOG_FORMAT")
        .output()
        .unwrap();
    for (out, value) in [(by_env, "xml"), (by_flag, "JSON")] {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("unknown log format '{value}'"))
                && err.contains("TESSERA_LOG_FORMAT")
                && err.contains("use text or json"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "refused before anything was opened"
    );
}
