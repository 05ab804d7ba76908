//! `tessera backup PATH` (SQLite) and the restore procedures of docs/operations.md, SQLite and
//! PostgreSQL (pg_dump / pg_restore), each followed by a server verifying a code.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::{config_for, Backend, TestApp, TestDb};

fn tessera(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(dir)
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_MASTER_KEY")
        .env_remove("TESSERA_OLD_MASTER_KEYS")
        .env("TESSERA_LOG", "warn")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A user (no password: no Argon2 in the load) with a TOTP factor: (user, factor, secret).
async fn user_with_factor(app: &TestApp, email: &str) -> (String, String, String) {
    let (s, u) = app
        .post("/user_management/users", json!({ "email": email }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let uid = u["id"].as_str().unwrap().to_owned();
    let e = app.enroll_totp(&uid, json!({ "type": "totp" })).await;
    let f = &e["authentication_factor"];
    (
        uid,
        f["id"].as_str().unwrap().to_owned(),
        f["totp"]["secret"].as_str().unwrap().to_owned(),
    )
}

async fn verifies(app: &TestApp, factor_id: &str, secret: &str) -> Value {
    let c = app.challenge(factor_id).await;
    let (s, v) = app
        .verify(c["id"].as_str().unwrap(), &app.totp_code(secret, 0))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["valid"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_write_load_is_a_consistent_snapshot_that_a_restored_server_serves() {
    let app = Arc::new(TestApp::spawn(Backend::Sqlite).await.unwrap());
    let db_path = app.db.url.sqlite_path().unwrap();
    let dir = db_path.parent().unwrap().to_owned();
    // A reader holding an old snapshot (a long listing, an operator's sqlite3 shell) keeps
    // every later write in the WAL, uncheckpointed: a copy of the database file alone would
    // miss them all.
    let mut reader = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db_path.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    let first = user_with_factor(&app, "first@example.com").await;

    // Four writers create users and enrol them until told to stop; each finished pair is
    // recorded, and the first ten are announced.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(Mutex::new(Vec::new()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (app, stop, done, tx) = (app.clone(), stop.clone(), done.clone(), tx.clone());
            tokio::spawn(async move {
                let mut started = 0;
                while !stop.load(Ordering::Relaxed) {
                    started += 1;
                    let f = user_with_factor(&app, &format!("w{w}-{started}@example.com")).await;
                    done.lock().unwrap().push(f);
                    let _ = tx.send(());
                }
                started
            })
        })
        .collect();
    for _ in 0..10 {
        rx.recv().await.unwrap();
    }
    let before: Vec<_> = done.lock().unwrap().clone();
    let backup = dir.join("backup.db");
    let out = {
        let (dir, args) = (
            dir.clone(),
            [
                "--database-url".to_owned(),
                db_path.display().to_string(),
                "backup".to_owned(),
                backup.display().to_string(),
            ],
        );
        tokio::task::spawn_blocking(move || {
            tessera(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap()
    };
    let after: Vec<_> = done.lock().unwrap().clone();
    stop.store(true, Ordering::Relaxed);
    reader.close().await.unwrap();
    let mut started = 0;
    for w in writers {
        started += w.await.unwrap();
    }
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), backup.display().to_string());
    let key_file = tessera_server::startup::key_file_path(&db_path);
    assert!(
        stderr.contains(&key_file.display().to_string()),
        "names the key file to keep: {stderr}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }

    // The copy: sound, whole rows only, everything finished before it began.
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", backup.display()))
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    let orphans: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&mut c)
        .await
        .unwrap();
    assert!(orphans.is_empty(), "{orphans:?}");
    let secretless: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM auth_factors WHERE type = 'totp' AND (secret_sealed IS NULL OR secret_key_id IS NULL)",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(secretless, 0, "every factor has its sealed secret");
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let factors: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM auth_factors")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let (lo, hi) = (1 + before.len() as i64, 1 + started);
    assert!(
        (lo..=hi).contains(&users),
        "{users} users: at least the {lo} finished before, at most the {hi} ever started"
    );
    assert!(
        factors <= users && factors >= lo,
        "{factors} factors for {users} users"
    );
    for (uid, fid, _) in &before {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM auth_factors WHERE id = $1 AND user_id = $2")
                .bind(fid)
                .bind(uid)
                .fetch_one(&mut c)
                .await
                .unwrap();
        assert_eq!(n, 1, "{fid} was enrolled before the backup began");
    }
    c.close().await.unwrap();
    assert!(
        after.len() > before.len(),
        "writes went on while the backup ran ({} then {})",
        before.len(),
        after.len()
    );

    // Restore as docs/operations.md says: stop, remove the database and its -wal/-shm, copy
    // the backup in its place (the key file stays), start.
    let late = user_with_factor(&app, "after-the-backup@example.com").await;
    let app = Arc::try_unwrap(app).ok().unwrap();
    let (key, clock) = (app.key.clone(), app.clock.clone());
    let db = app.stop().await;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db_path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    std::fs::copy(&backup, &db_path).unwrap();
    let mut app = TestApp::spawn_with(db.clone(), config_for(&db), clock).await;
    app.key = key;
    assert_eq!(verifies(&app, &first.1, &first.2).await, json!(true));
    let (_, fid, secret) = &before[before.len() - 1];
    assert_eq!(verifies(&app, fid, secret).await, json!(true));
    let (s, _) = app.get(&format!("/auth/factors/{}", late.1)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the restore is the snapshot");
    app.stop().await;
}

#[test]
fn backup_refuses_an_existing_file_the_database_itself_a_missing_database_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let out = tessera(&root, &["backup", "b.db"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&format!(
            "no database at {}",
            root.join("tessera.db").display()
        )),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        0,
        "nothing created"
    );

    assert!(tessera(&root, &["init"]).status.success());
    let db_before = std::fs::read(root.join("tessera.db")).unwrap();
    std::fs::write(root.join("b.db"), b"keep me").unwrap();
    let out = tessera(&root, &["backup", "b.db"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(root.join("b.db")).unwrap(), b"keep me");

    for own in ["tessera.db", "tessera.db.key"] {
        let out = tessera(&root, &["backup", "--force", own]);
        assert!(!out.status.success(), "{own}");
        assert!(
            text(&out.stderr).contains("is the database or its key file"),
            "{}",
            text(&out.stderr)
        );
    }
    assert_eq!(std::fs::read(root.join("tessera.db")).unwrap(), db_before);
    assert!(root.join("tessera.db.key").is_file());

    let out = tessera(&root, &["backup", "--force", "b.db"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::read(root.join("b.db"))
        .unwrap()
        .starts_with(b"SQLite format 3\0"));

    let out = tessera(
        &root,
        &[
            "--database-url",
            "postgres://tessera@127.0.0.1:1/none",
            "backup",
            "pg.dump",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("pg_dump"),
        "{}",
        text(&out.stderr)
    );
    assert!(!root.join("pg.dump").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_dump_restored_into_an_empty_database_serves_with_the_same_master_key() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        eprintln!("TESSERA_TEST_DATABASE_URL unset: not run");
        return;
    };
    let (_, fid, secret) = user_with_factor(&app, "dumped@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("tessera.dump");
    // The commands of docs/operations.md.
    let run = |args: &[&str]| {
        let out = Command::new(args[0])
            .args(&args[1..])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "{} (PostgreSQL's client tools) must be installed: {e}",
                    args[0]
                )
            });
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    };
    run(&[
        "pg_dump",
        "--format=custom",
        &format!("--file={}", dump.display()),
        app.db.url.expose(),
    ]);
    let target = TestDb::empty_postgres().await.unwrap();
    run(&[
        "pg_restore",
        "--no-owner",
        &format!("--dbname={}", target.url.expose()),
        &dump.display().to_string(),
    ]);
    let (key, clock) = (app.key.clone(), app.clock.clone());
    app.stop().await;
    let target = Arc::new(target);
    // config_for gives PostgreSQL servers the same fixed master key: the dump needs it.
    let mut restored = TestApp::spawn_with(target.clone(), config_for(&target), clock).await;
    restored.key = key;
    assert_eq!(verifies(&restored, &fid, &secret).await, json!(true));
    restored.stop().await;
}
