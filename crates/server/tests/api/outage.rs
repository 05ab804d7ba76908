//! The database goes away and comes back (issue 13, point 5). The shared PostgreSQL is never
//! stopped: the server reaches it through a TCP proxy run by the test, which can close every
//! connection and refuse new ones (PostgreSQL down), or black-hole them (a network that drops
//! everything: no reset, no answer), then forward again. The server is never restarted.
//!
//! PostgreSQL only: a SQLite database is a local file, with no network to lose.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_core::{ManualClock, Timestamp};
use tessera_store::DatabaseUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{config_for, Backend, TestApp, TestDb, T0};

/// The database timeout of these servers: short, so the test is quick.
const DB_TIMEOUT: Duration = Duration::from_secs(1);
/// What a 503 may take: the timeout plus room for a loaded CI machine. Without a bound a
/// request would wait for the kernel to give up on the connection (minutes).
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// When the test stops waiting for an answer (and fails).
const GIVE_UP: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    /// PostgreSQL is down: open connections are closed, new ones refused (nothing listens).
    Down,
    /// The network drops everything. Connections opened before stay dead for good (as when
    /// a firewall or NAT lost their state); connections opened during it are held and
    /// forwarded once it ends.
    BlackHole,
}

/// A TCP proxy in front of PostgreSQL whose behaviour the test switches.
struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, rx) = watch::channel(Mode::Forward);
        let task = tokio::spawn(accept_loop(listener, addr, upstream, rx));
        Proxy { addr, mode, task }
    }

    fn set(&self, m: Mode) {
        self.mode.send_replace(m);
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url_through(&self, url: &DatabaseUrl) -> DatabaseUrl {
        let s = url.expose();
        let (scheme, rest) = s.split_once("://").unwrap();
        let (authority, path) = rest.split_once('/').unwrap();
        let user = authority
            .rsplit_once('@')
            .map(|(u, _)| format!("{u}@"))
            .unwrap_or_default();
        DatabaseUrl::parse(&format!("{scheme}://{user}{}/{path}", self.addr)).unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    mut listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
) {
    loop {
        let current = *mode.borrow_and_update();
        if current == Mode::Down {
            // Refuse: nothing listens on the port until PostgreSQL is "back".
            drop(listener);
            while *mode.borrow_and_update() == Mode::Down {
                if mode.changed().await.is_err() {
                    return;
                }
            }
            listener = TcpListener::bind(addr).await.unwrap();
            continue;
        }
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let mode = mode.clone();
                tokio::spawn(relay(client, upstream, mode));
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// One proxied connection. Opened during a black hole, it is held (not forwarded) until the
/// black hole ends; opened before one, it goes silent for good when one begins.
async fn relay(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    loop {
        let now = *mode.borrow_and_update();
        match now {
            Mode::Forward => break,
            Mode::Down => return,
            Mode::BlackHole => {
                if mode.changed().await.is_err() {
                    return;
                }
            }
        }
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::join!(pump(cr, sw, mode.clone()), pump(sr, cw, mode));
}

/// Copies one direction until EOF, Down (closes), or a black hole (stops for good, keeping
/// the socket open and silent).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            n = from.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = *mode.borrow_and_update();
                match now {
                    Mode::Forward => {}
                    Mode::Down => return,
                    Mode::BlackHole => {
                        // Silent forever: hold both halves, forward nothing.
                        let _hold = (from, to);
                        std::future::pending::<()>().await;
                        return;
                    }
                }
            }
        }
    }
}

/// A server on a fresh PostgreSQL database reached through a proxy; `None` without
/// PostgreSQL.
async fn spawn_behind_proxy(max_connections: u32) -> Option<(TestApp, Proxy)> {
    let db = Arc::new(TestDb::new(Backend::Postgres).await?);
    let upstream = upstream_of(&db.url).await;
    let proxy = Proxy::start(upstream).await;
    let mut cfg = config_for(&db);
    cfg.database_url = proxy.url_through(&db.url);
    cfg.database_timeout = DB_TIMEOUT;
    cfg.max_connections = max_connections;
    let app = TestApp::spawn_with(db, cfg, ManualClock::new(Timestamp(T0))).await;
    Some((app, proxy))
}

async fn upstream_of(url: &DatabaseUrl) -> SocketAddr {
    let opts: sqlx::postgres::PgConnectOptions = url.expose().parse().unwrap();
    let found = tokio::net::lookup_host((opts.get_host(), opts.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    found
}

/// One request's outcome: status, `Retry-After`, body, and how long it took.
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

/// Sends one request with the API key, on a task of its own (so several run at once).
fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> tokio::task::JoinHandle<Answer> {
    // A client-side limit far above the bound, so a hang fails the test instead of stalling it.
    let mut rb = app
        .http
        .request(method, app.url(path))
        .bearer_auth(&app.key)
        .timeout(GIVE_UP);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    tokio::spawn(async move {
        let started = Instant::now();
        let r = rb.send().await.unwrap();
        answer(r, started).await
    })
}

async fn answer(r: reqwest::Response, started: Instant) -> Answer {
    let status = r.status();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    Answer {
        status,
        retry_after,
        body: r.json().await.unwrap_or(Value::Null),
        took: started.elapsed(),
    }
}

/// Asserts the WorkOS-shaped 503 within the bound.
fn assert_unavailable(what: &str, a: &Answer) {
    assert_eq!(
        a.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        a.body
    );
    assert_eq!(a.body["code"], "service_unavailable", "{what}: {}", a.body);
    assert!(a.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        !a.body.to_string().contains("database:"),
        "{what}: no internal detail in the body: {}",
        a.body
    );
    assert_eq!(a.retry_after.as_deref(), Some("1"), "{what}");
    assert!(a.took < ANSWER_WITHIN, "{what} took {:?}", a.took);
}

/// The API calls made during an outage: reads, writes, a transaction, a verification.
async fn calls_during_outage(app: &TestApp, user_id: &str, challenge_id: &str) {
    use reqwest::Method;
    let calls = [
        (
            Method::GET,
            format!("/user_management/users/{user_id}"),
            None,
        ),
        (Method::GET, "/user_management/users".to_owned(), None),
        (
            Method::POST,
            "/user_management/users".to_owned(),
            Some(json!({ "email": "during@example.com" })),
        ),
        (
            Method::PUT,
            format!("/user_management/users/{user_id}"),
            Some(json!({ "first_name": "Ada" })),
        ),
        (
            Method::POST,
            format!("/auth/challenges/{challenge_id}/verify"),
            Some(json!({ "code": "000000" })),
        ),
    ];
    // In parallel: the outage must not serialise them behind one another either.
    let running: Vec<_> = calls
        .into_iter()
        .map(|(m, p, b)| send(app, m, &p, b))
        .collect();
    let mut answers = Vec::new();
    for r in running {
        answers.push(r.await.unwrap());
    }
    for (a, what) in answers
        .iter()
        .zip(["get", "list", "create", "update", "verify"])
    {
        assert_unavailable(what, a);
    }
}

async fn health(app: &TestApp) -> Answer {
    let started = Instant::now();
    let r = app
        .http
        .get(app.url("/health"))
        .timeout(GIVE_UP)
        .send()
        .await
        .unwrap();
    answer(r, started).await
}

/// Sets up a user with a TOTP factor and an open challenge; returns (user id, challenge id).
async fn some_data(app: &TestApp) -> (String, String) {
    let user = app.create_user("before@example.com").await;
    let user_id = user["id"].as_str().unwrap().to_owned();
    let (factor_id, _) = app.totp_factor(Some(&user_id)).await;
    let challenge = app.challenge(&factor_id).await;
    (user_id, challenge["id"].as_str().unwrap().to_owned())
}

/// After the outage: the data from before is there and new writes work, on the same server.
async fn assert_recovered(app: &TestApp, user_id: &str) {
    let (s, u) = app.get(&format!("/user_management/users/{user_id}")).await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["email"], "before@example.com");
    let after = app.create_user("after@example.com").await;
    let (s, list) = app.get("/user_management/users?limit=10").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let emails: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert!(emails.contains(&"before@example.com"), "{emails:?}");
    assert!(emails.contains(&"after@example.com"), "{emails:?}");
    assert!(
        !emails.contains(&"during@example.com"),
        "a request answered 503 wrote nothing: {emails:?}"
    );
    assert!(after["id"].as_str().is_some());
    app.clock
        .advance_millis(tessera_server::services::health::FRESH_MS);
    let h = health(app).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgresql_down_requests_and_health_answer_503_in_time_and_the_server_recovers_when_it_returns(
) {
    let Some((app, proxy)) = spawn_behind_proxy(4).await else {
        eprintln!("TESSERA_TEST_DATABASE_URL unset: not run");
        return;
    };
    let (user_id, challenge_id) = some_data(&app).await;
    assert_eq!(health(&app).await.status, StatusCode::OK);

    proxy.set(Mode::Down);
    // /health reuses its last probe for a second, so a flood of probes costs nothing...
    assert_eq!(health(&app).await.status, StatusCode::OK);
    // ...and a second later it probes again. The API-key cache (a second too) has expired
    // by then as well: authentication needs the database, and must say 503, not 401.
    app.clock
        .advance_millis(tessera_server::services::health::FRESH_MS);
    assert_unavailable("health", &health(&app).await);
    calls_during_outage(&app, &user_id, &challenge_id).await;

    proxy.set(Mode::Forward);
    assert_recovered(&app, &user_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_network_to_postgresql_black_holed_requests_answer_503_in_time_and_no_cut_off_connection_is_reused(
) {
    // Two connections: statements cut off mid-flight must not keep them (see below).
    let Some((app, proxy)) = spawn_behind_proxy(2).await else {
        eprintln!("TESSERA_TEST_DATABASE_URL unset: not run");
        return;
    };
    let (user_id, challenge_id) = some_data(&app).await;

    // Two updates in flight when the network goes: each waits (in PostgreSQL) on a row lock
    // the test holds, so both pooled connections are busy mid-statement at that moment.
    use sqlx::Connection;
    let mut locker = sqlx::PgConnection::connect(app.db.url.expose())
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
        .bind(&user_id)
        .execute(&mut locker)
        .await
        .unwrap();
    let in_flight: Vec<_> = (0..2)
        .map(|i| {
            send(
                &app,
                reqwest::Method::PUT,
                &format!("/user_management/users/{user_id}"),
                Some(json!({ "first_name": format!("N{i}") })),
            )
        })
        .collect();
    wait_for_lock_waiters(&mut locker, 2).await;
    proxy.set(Mode::BlackHole);
    // PostgreSQL completes both updates now, but their answers never arrive.
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    for t in in_flight {
        assert_unavailable("update cut off mid-statement", &t.await.unwrap());
    }

    app.clock
        .advance_millis(tessera_server::services::health::FRESH_MS);
    assert_unavailable("health", &health(&app).await);
    calls_during_outage(&app, &user_id, &challenge_id).await;

    // The network is back for new connections; the two cut off stay silent forever. Had
    // they gone back to the pool, it would wait on them (its return check has no timeout)
    // and, with both of its slots held, answer 503 to everything from now on.
    proxy.set(Mode::Forward);
    assert_recovered(&app, &user_id).await;
}

/// Waits (bounded) until `n` PostgreSQL sessions wait on a lock in this database.
async fn wait_for_lock_waiters(c: &mut sqlx::PgConnection, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut *c)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} of {n} updates waiting on the lock after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_server_whose_postgresql_cannot_be_reached_at_start_stops_with_a_clear_message() {
    // A port nobody listens on (bound, then released).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = DatabaseUrl::parse(&format!("postgres://tessera@127.0.0.1:{port}/tessera")).unwrap();
    let mut cfg = tessera_server::Config::new(url);
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.master_key = Some(zeroize::Zeroizing::new(crate::helpers::test_master_key()));
    cfg.database_timeout = DB_TIMEOUT;
    let started = Instant::now();
    let clock = Arc::new(ManualClock::new(Timestamp(T0)));
    let err = match tessera_server::Application::build(cfg, clock).await {
        Ok(_) => panic!("a server started without its database"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains(&format!(
            "cannot connect to PostgreSQL at postgres://tessera@127.0.0.1:{port}/tessera"
        )),
        "{err}"
    );
    assert!(err.contains("--database-timeout-seconds"), "{err}");
    assert!(started.elapsed() < ANSWER_WITHIN, "{:?}", started.elapsed());
}
