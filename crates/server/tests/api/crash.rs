//! Crashes lose nothing (issue 13, point 4): a real `tessera` process is killed with SIGKILL
//! in the middle of a write load (user creation, TOTP enrolment, verification, challenges),
//! started again on the same database, and then:
//!
//! * every write that had been answered 2xx is there: the user and the factor exist, a
//!   verified challenge stays verified (a second verify is 422) and its code stays used (the
//!   factor's replay guard is at or past its step);
//! * nothing half-written is visible, checked with SQL on the database itself: no TOTP factor
//!   without its sealed secret, no challenge without its factor, no factor of a missing user,
//!   no factor or challenge without its `...created` event, no verified challenge
//!   without its `authentication.mfa_succeeded` event, no event naming a user, factor or
//!   challenge that does not exist; SQLite's `integrity_check` and `foreign_key_check` pass;
//! * the server starts cleanly: no error or panic in its log, `GET /health` 200.
//!
//! On SQLite always, on PostgreSQL with `TESSERA_TEST_DATABASE_URL`. The load runs until a
//! number of rounds were answered (bounded by a deadline), so each test takes a few seconds.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{test_master_key, TestDb};
use crate::process::{poll_until, totp_now, Api, ServerOptions, ServerProcess};

/// Concurrent clients of the load.
const WORKERS: usize = 8;
/// Rounds answered before the kill (each: user, enrolment, verification, challenge).
const ROUNDS_BEFORE_KILL: usize = 40;

/// What the server answered 2xx before it was killed.
#[derive(Default)]
struct Answered {
    users: Vec<String>,
    /// (factor id, user id)
    factors: Vec<(String, String)>,
    /// (challenge id, factor id, code, TOTP step)
    verified: Vec<(String, String, String, i64)>,
    /// (challenge id, factor id): enrolment challenges and standalone ones
    challenges: Vec<(String, String)>,
}

/// One client: rounds of writes until `stop` or until the server stops answering.
async fn worker(
    api: Api,
    w: usize,
    answered: Arc<Mutex<Answered>>,
    rounds: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let post = |path: String, body: Value| {
        let api = api.clone();
        async move { api.try_call(Method::POST, &path, Some(body)).await }
    };
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok((s, user)) = post(
            "/user_management/users".into(),
            json!({ "email": format!("w{w}-{i}@crash.example") }),
        )
        .await
        else {
            return;
        };
        assert_eq!(s, StatusCode::CREATED, "{user}");
        let uid = user["id"].as_str().unwrap().to_owned();
        answered.lock().unwrap().users.push(uid.clone());

        let Ok((s, enrolled)) = post(
            format!("/user_management/users/{uid}/auth_factors"),
            json!({ "type": "totp" }),
        )
        .await
        else {
            return;
        };
        assert_eq!(s, StatusCode::CREATED, "{enrolled}");
        let fid = enrolled["authentication_factor"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let secret = enrolled["authentication_factor"]["totp"]["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let cid = enrolled["authentication_challenge"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        {
            let mut a = answered.lock().unwrap();
            a.factors.push((fid.clone(), uid.clone()));
            a.challenges.push((cid.clone(), fid.clone()));
        }

        let (code, step) = totp_now(&secret);
        let Ok((s, v)) = post(
            format!("/auth/challenges/{cid}/verify"),
            json!({ "code": code }),
        )
        .await
        else {
            return;
        };
        assert_eq!((s, &v["valid"]), (StatusCode::CREATED, &json!(true)), "{v}");
        answered
            .lock()
            .unwrap()
            .verified
            .push((cid, fid.clone(), code, step));

        let Ok((s, c)) = post(format!("/auth/factors/{fid}/challenge"), json!({})).await else {
            return;
        };
        assert_eq!(s, StatusCode::CREATED, "{c}");
        let cid = c["id"].as_str().unwrap().to_owned();
        answered.lock().unwrap().challenges.push((cid, fid));
        rounds.fetch_add(1, Ordering::Relaxed);
    }
}

/// The database itself, read with SQL beside the server.
enum Db {
    Lite(sqlx::SqliteConnection),
    Pg(sqlx::PgConnection),
}

impl Db {
    async fn open(db: &TestDb) -> Db {
        use sqlx::Connection;
        match db.url.sqlite_path() {
            Some(path) => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .read_only(true);
                Db::Lite(sqlx::SqliteConnection::connect_with(&opts).await.unwrap())
            }
            None => Db::Pg(sqlx::PgConnection::connect(db.url.expose()).await.unwrap()),
        }
    }

    /// Rows of text (or NULL) columns.
    async fn rows(&mut self, sql: &str) -> Vec<Vec<Option<String>>> {
        use sqlx::Row;
        fn decode<R: Row>(r: &R) -> Vec<Option<String>>
        where
            usize: sqlx::ColumnIndex<R>,
            for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        {
            (0..r.len()).map(|i| r.try_get(i).unwrap()).collect()
        }
        match self {
            Db::Lite(c) => sqlx::query(sql)
                .fetch_all(c)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(decode)
                .collect(),
            Db::Pg(c) => sqlx::query(sql)
                .fetch_all(c)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(decode)
                .collect(),
        }
    }

    /// The first column of every row, NULLs left out.
    async fn column(&mut self, sql: &str) -> Vec<String> {
        self.rows(sql)
            .await
            .into_iter()
            .filter_map(|mut r| r.swap_remove(0))
            .collect()
    }
}

/// Every string in `v` (at any depth) shaped like one of Tessera's ids with `prefix`.
fn ids_in(v: &Value, prefix: &str, out: &mut Vec<String>) {
    let is_id = |s: &str| {
        s.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('_'))
            .is_some_and(|ulid| ulid.len() == 26 && ulid.chars().all(|c| c.is_ascii_alphanumeric()))
    };
    match v {
        Value::String(s) if is_id(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| ids_in(x, prefix, out)),
        Value::Object(o) => o.values().for_each(|x| ids_in(x, prefix, out)),
        _ => {}
    }
}

async fn a_server_killed_mid_load_keeps_every_answered_write_and_nothing_half_written(db: TestDb) {
    let master_key = db.is_postgres().then(test_master_key);
    let mut server = ServerProcess::start(ServerOptions::new(db.url.expose(), master_key));
    let key = server
        .first_key
        .clone()
        .unwrap_or_else(|| server.fail("no first API key in the log"));
    let api = Api::new(&server, &key);

    let answered = Arc::new(Mutex::new(Answered::default()));
    let rounds = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            tokio::spawn(worker(
                api.clone(),
                w,
                answered.clone(),
                rounds.clone(),
                stop.clone(),
            ))
        })
        .collect();
    poll_until(Duration::from_secs(30), "the write load", || async {
        rounds.load(Ordering::Relaxed) >= ROUNDS_BEFORE_KILL
    })
    .await;
    // Mid-load: every worker has a request in flight or about to be sent.
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let answered = std::mem::take(&mut *answered.lock().unwrap());
    assert!(answered.verified.len() >= ROUNDS_BEFORE_KILL);

    server.restart();
    let api = Api::new(&server, &key);
    let (s, h) = api.get("/health").await;
    assert_eq!(s, StatusCode::OK, "{h}");
    let log = server.run_log();
    assert!(
        !log.contains("ERROR") && !log.contains("panicked"),
        "a clean start after the crash:\n{}",
        server.log()
    );

    // Every answered write is there, through the API.
    for u in &answered.users {
        let (s, v) = api.get(&format!("/user_management/users/{u}")).await;
        assert_eq!(s, StatusCode::OK, "user {u} was answered 201: {v}");
    }
    for (f, u) in &answered.factors {
        let (s, v) = api.get(&format!("/auth/factors/{f}")).await;
        assert_eq!(s, StatusCode::OK, "factor {f} was answered 201: {v}");
        assert_eq!(v["user_id"].as_str(), Some(u.as_str()), "{v}");
    }
    for (c, _, code, _) in &answered.verified {
        let (s, v) = api
            .post(
                &format!("/auth/challenges/{c}/verify"),
                json!({ "code": code }),
            )
            .await;
        assert_eq!(
            (s, v["code"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("authentication_challenge_previously_verified")
            ),
            "challenge {c} was verified before the crash: {v}"
        );
    }

    // And in the database: what was answered, and nothing half-written.
    let mut sql = Db::open(&db).await;
    let users: HashSet<String> = sql
        .column("SELECT id FROM users")
        .await
        .into_iter()
        .collect();
    let factors: HashSet<String> = sql
        .column("SELECT id FROM auth_factors")
        .await
        .into_iter()
        .collect();
    let challenges: HashSet<String> = sql
        .column("SELECT id FROM auth_challenges")
        .await
        .into_iter()
        .collect();
    for (c, f) in &answered.challenges {
        assert!(
            challenges.contains(c),
            "challenge {c} of {f} was answered 201"
        );
    }
    let steps: std::collections::HashMap<String, i64> = sql
        .rows("SELECT id, CAST(last_totp_step AS TEXT) FROM auth_factors")
        .await
        .into_iter()
        .map(|r| {
            (
                r[0].clone().unwrap(),
                r[1].clone().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let verified: HashSet<String> = sql
        .column("SELECT id FROM auth_challenges WHERE verified_at IS NOT NULL")
        .await
        .into_iter()
        .collect();
    for (c, f, _, step) in &answered.verified {
        assert!(verified.contains(c), "challenge {c} stays verified");
        assert!(
            steps[f] >= *step,
            "factor {f}'s replay guard stays at or past step {step}"
        );
    }

    let half_written = [
        (
            "TOTP factors without their sealed secret",
            "SELECT id FROM auth_factors WHERE type = 'totp' \
             AND (secret_sealed IS NULL OR secret_key_id IS NULL)",
        ),
        (
            "challenges without their factor",
            "SELECT c.id FROM auth_challenges c \
             LEFT JOIN auth_factors f ON f.id = c.factor_id WHERE f.id IS NULL",
        ),
        (
            "factors of a user that does not exist",
            "SELECT f.id FROM auth_factors f LEFT JOIN users u ON u.id = f.user_id \
             WHERE f.user_id IS NOT NULL AND u.id IS NULL",
        ),
    ];
    for (what, query) in half_written {
        let found = sql.column(query).await;
        assert!(found.is_empty(), "{what}: {found:?}");
    }

    let events = sql.rows("SELECT event, data FROM events").await;
    let mut factor_created = HashSet::new();
    let mut challenge_created = HashSet::new();
    let mut mfa_succeeded = HashSet::new();
    for e in &events {
        let (name, data) = (e[0].clone().unwrap(), e[1].clone().unwrap());
        let data: Value = serde_json::from_str(&data).unwrap();
        for (prefix, table) in [
            ("user", &users),
            ("auth_factor", &factors),
            ("auth_challenge", &challenges),
        ] {
            let mut ids = Vec::new();
            ids_in(&data, prefix, &mut ids);
            for id in ids {
                assert!(
                    table.contains(&id),
                    "{name} names {id}, which does not exist"
                );
            }
        }
        match name.as_str() {
            "authentication_factor.created" => {
                factor_created.insert(data["id"].as_str().unwrap().to_owned());
            }
            "authentication_challenge.created" => {
                challenge_created.insert(data["id"].as_str().unwrap().to_owned());
            }
            "authentication.mfa_succeeded" => {
                mfa_succeeded.insert(
                    data["authentication_challenge_id"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            _ => {}
        }
    }
    for f in &factors {
        assert!(factor_created.contains(f), "factor {f} without its event");
    }
    for c in &challenges {
        assert!(
            challenge_created.contains(c),
            "challenge {c} without its event"
        );
    }
    for c in &verified {
        assert!(mfa_succeeded.contains(c), "verified {c} without its event");
    }

    if let Db::Lite(_) = sql {
        let integrity = sql.column("PRAGMA integrity_check").await;
        assert_eq!(integrity, ["ok"]);
        let dangling = sql.rows("PRAGMA foreign_key_check").await;
        assert!(dangling.is_empty(), "{dangling:?}");
    }
    let status = server.stop();
    assert!(
        status.success(),
        "graceful exit on SIGTERM: {status}\n{}",
        server.log()
    );
    eprintln!(
        "crash test: {} users, {} factors, {} verified, {} challenges answered before SIGKILL",
        answered.users.len(),
        answered.factors.len(),
        answered.verified.len(),
        answered.challenges.len()
    );
}

mod a_server_killed_mid_load_keeps_every_answered_write_and_nothing_half_written {
    use crate::helpers::{Backend, TestDb};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let db = TestDb::new(Backend::Sqlite).await.unwrap();
        super::a_server_killed_mid_load_keeps_every_answered_write_and_nothing_half_written(db)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        match TestDb::new(Backend::Postgres).await {
            Some(db) => {
                super::a_server_killed_mid_load_keeps_every_answered_write_and_nothing_half_written(
                    db,
                )
                .await
            }
            None => eprintln!("TESSERA_TEST_DATABASE_URL unset: PostgreSQL variant not run"),
        }
    }
}
