//! `tessera master-key rotate`: every sealed value moves to the current key, beside running
//! servers, and the old key can then be dropped; refusals change nothing.

use std::process::{Command, Output};
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_core::seal::{KeyRing, MasterKey, Sealed};
use tessera_core::{ManualClock, Timestamp};
use tessera_server::services::master_key::{self, RotateOutcome, SEALED_COLUMNS};
use tessera_store::Reseal;

use crate::helpers::{config_for, Backend, TestApp, TestDb, T0};

fn key_b64(byte: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

fn key_id(b64: &str) -> String {
    MasterKey::from_base64(b64).unwrap().id().to_owned()
}

/// A server on `db` whose current master key is `current`, with `old` still accepted.
async fn serve(db: &Arc<TestDb>, current: &str, old: &[&str], clock: &ManualClock) -> TestApp {
    let mut cfg = config_for(db);
    cfg.master_key = Some(zeroize::Zeroizing::new(current.to_owned()));
    cfg.old_master_keys = old
        .iter()
        .map(|k| zeroize::Zeroizing::new((*k).to_owned()))
        .collect();
    TestApp::spawn_with(db.clone(), cfg, clock.clone()).await
}

/// Runs `tessera master-key rotate` on `db` with these keys.
async fn rotate_cli(db: &TestDb, current: &str, old: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.args(["--database-url", db.url.expose(), "master-key", "rotate"])
        .env("TESSERA_MASTER_KEY", current)
        .env("TESSERA_LOG", "warn");
    if old.is_empty() {
        cmd.env_remove("TESSERA_OLD_MASTER_KEYS");
    } else {
        cmd.env("TESSERA_OLD_MASTER_KEYS", old.join(","));
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// (table, key id) -> count, for every sealed column.
async fn sealed_by_key(app: &TestApp) -> Vec<(&'static str, String, i64)> {
    let mut all = vec![];
    for col in SEALED_COLUMNS {
        for (k, n) in app.state.store.count_sealed_by_key(col).await.unwrap() {
            all.push((col.table, k, n));
        }
    }
    all
}

/// Creates a user with a fixed `Idempotency-Key`: the answer is kept sealed for replays.
async fn idempotent_create(app: &TestApp) -> (StatusCode, String) {
    let r = app
        .http
        .post(app.url("/user_management/users"))
        .bearer_auth(&app.key)
        .header("Idempotency-Key", "rotation-test-key")
        .json(&json!({ "email": "idem@example.com" }))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn sign_in(app: &TestApp, email: &str) -> (StatusCode, Value) {
    let r = app
        .http
        .post(app.url("/user_management/authenticate"))
        .json(&json!({ "grant_type": "password", "client_id": app.client_id, "client_secret": app.key, "email": email, "password": "correct horse battery" }))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn data_sealed_under_a_moves_to_b_and_a_server_with_only_b_verifies_and_signs(
    backend: Backend,
) {
    let Some(db) = TestDb::new(backend).await else {
        eprintln!("TESSERA_TEST_DATABASE_URL unset: PostgreSQL variant not run");
        return;
    };
    let db = Arc::new(db);
    let (a, b) = (key_b64(0xA1), key_b64(0xB2));
    // 2020-09-13: whatever the machine's date, the refresh retry copy made below has expired
    // by the system clock the command reads.
    let clock = ManualClock::new(Timestamp(1_600_000_000_000));

    // Under key A: a user's TOTP factor, a standalone one, a signed-in user with a refresh
    // retry copy (its grace is long over by the system clock the command runs on).
    let app = serve(&db, &a, &[], &clock).await;
    let grace = app.create_user("grace@example.com").await;
    let gid = grace["id"].as_str().unwrap().to_owned();
    let enrolled = app.enroll_totp(&gid, json!({ "type": "totp" })).await;
    let fid = enrolled["authentication_factor"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = enrolled["authentication_factor"]["totp"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    app.totp_factor(None).await;
    app.create_user("ada@example.com").await;
    let (s, tokens) = sign_in(&app, "ada@example.com").await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    let r = app
        .http
        .post(app.url("/user_management/authenticate"))
        .json(&json!({ "grant_type": "refresh_token", "client_id": app.client_id, "client_secret": app.key, "refresh_token": tokens["refresh_token"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // An answer kept for an Idempotency-Key replay (sealed: it could hold a TOTP secret).
    let first = idempotent_create(&app).await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let api_key = app.key.clone();
    assert!(
        sealed_by_key(&app)
            .await
            .iter()
            .all(|(_, k, _)| *k == key_id(&a)),
        "everything starts under A"
    );
    app.stop().await;

    // Nodes restarted with B current and A old, then the rotation, while that server runs.
    let mut app = serve(&db, &b, &[&a], &clock).await;
    app.key = api_key.clone();
    let out = rotate_cli(&db, &b, &[&a]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("auth_factors.secret_sealed: 2 re-sealed, 0 already under the current key"),
        "{stdout}"
    );
    assert!(
        stdout.contains("signing_keys.secret_sealed: 1 re-sealed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("idempotency_keys.response_sealed: 1 re-sealed"),
        "{stdout}"
    );
    // The restarted server sealed the check value under B at its start already.
    assert!(
        stdout.contains("master_key_check.sealed: 0 re-sealed, 1 already under the current key"),
        "{stdout}"
    );
    assert!(
        stdout.contains("refresh_tokens.grace_sealed: cannot be re-sealed (sealed with the client's token); 1 expired erased, none under older keys"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("changed: {}", db.url.describe())),
        "{stderr}"
    );
    assert!(stderr.contains(&key_id(&b)), "{stderr}");
    let after = sealed_by_key(&app).await;
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|(_, k, _)| *k == key_id(&b)),
        "everything is under B: {after:?}"
    );
    app.stop().await;

    // A removed: the server starts, verifies Grace's code and signs tokens.
    let mut app = serve(&db, &b, &[], &clock).await;
    app.key = api_key;
    let c = app.challenge(&fid).await;
    let (s, v) = app
        .verify(c["id"].as_str().unwrap(), &app.totp_code(&secret, 0))
        .await;
    assert_eq!((s, &v["valid"]), (StatusCode::CREATED, &json!(true)), "{v}");
    let (s, v) = sign_in(&app, "ada@example.com").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["access_token"].as_str().is_some_and(|t| t.len() > 100));
    // The kept answer, re-sealed under B, is still replayed word for word.
    let again = idempotent_create(&app).await;
    assert_eq!(again, first, "the replay opens under B");

    // A second rotation finds nothing to do.
    let out = rotate_cli(&db, &b, &[]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.matches(" 0 re-sealed").count(),
        4,
        "no value re-sealed twice: {stdout}"
    );
    assert!(!stderr.contains("changed:"), "{stderr}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_moves_every_secret_to_the_new_key_and_the_old_key_can_go_sqlite() {
    data_sealed_under_a_moves_to_b_and_a_server_with_only_b_verifies_and_signs(Backend::Sqlite)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_moves_every_secret_to_the_new_key_and_the_old_key_can_go_postgres() {
    data_sealed_under_a_moves_to_b_and_a_server_with_only_b_verifies_and_signs(Backend::Postgres)
        .await;
}

async fn a_value_under_an_unknown_key_makes_the_rotation_refuse_and_change_nothing(
    backend: Backend,
) {
    let Some(db) = TestDb::new(backend).await else {
        eprintln!("TESSERA_TEST_DATABASE_URL unset: PostgreSQL variant not run");
        return;
    };
    let db = Arc::new(db);
    let (a, b, c) = (key_b64(0xA1), key_b64(0xB2), key_b64(0xC3));
    let clock = ManualClock::new(Timestamp(T0));
    let app = serve(&db, &a, &[], &clock).await;
    app.totp_factor(None).await;
    app.totp_factor(None).await;
    app.stop().await;
    // A node that was given key C wrote one factor (and sealed the check value) under it.
    let app = serve(&db, &c, &[&a], &clock).await;
    app.totp_factor(None).await;
    let before = sealed_by_key(&app).await;

    // The rotation to B knows A but not C.
    let out = rotate_cli(&db, &b, &[&a]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("nothing was changed")
            && stderr.contains("auth_factors.secret_sealed: 1 value(s) cannot be opened")
            && stderr.contains(&format!(
                "1 sealed by master key {}, which is not configured",
                key_id(&c)
            ))
            && stderr.contains("master_key_check.sealed: 1 value(s)"),
        "names the column, the count and the key: {stderr}"
    );
    assert_eq!(sealed_by_key(&app).await, before, "nothing changed");
    assert!(before
        .iter()
        .any(|(t, k, n)| *t == "auth_factors" && *k == key_id(&a) && *n == 2));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_refuses_a_secret_sealed_under_an_unknown_key_sqlite() {
    a_value_under_an_unknown_key_makes_the_rotation_refuse_and_change_nothing(Backend::Sqlite)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_refuses_a_secret_sealed_under_an_unknown_key_postgres() {
    a_value_under_an_unknown_key_makes_the_rotation_refuse_and_change_nothing(Backend::Postgres)
        .await;
}

crate::on_both_backends!(
    every_column_named_like_a_sealed_one_is_on_the_list_of_sealed_columns,
    a_reseal_never_overwrites_a_value_written_since_it_was_read,
    a_rotation_in_small_batches_beside_parallel_enrolments_and_deletions_leaves_every_secret_under_the_new_key,
);

async fn every_column_named_like_a_sealed_one_is_on_the_list_of_sealed_columns(app: TestApp) {
    let mut in_schema = app.state.store.columns_named_like_sealed().await.unwrap();
    in_schema.sort();
    let mut listed: Vec<(String, String)> = SEALED_COLUMNS
        .iter()
        .map(|c| (c.table.to_owned(), c.sealed.to_owned()))
        .collect();
    listed.sort();
    assert_eq!(
        in_schema, listed,
        "a sealed column missing from services::master_key::SEALED_COLUMNS (or listed but gone): the rotation would leave it under the old key"
    );
}

async fn a_reseal_never_overwrites_a_value_written_since_it_was_read(app: TestApp) {
    let (fid, _) = app.totp_factor(None).await;
    let (gone, _) = app.totp_factor(None).await;
    let col = &SEALED_COLUMNS[0];
    assert_eq!(col.table, "auth_factors");
    let store = &app.state.store;
    let read = store.sealed_rows_after(col, "", None, 10).await.unwrap();
    assert_eq!(read.len(), 2);
    let stale = read.iter().find(|r| r.id == fid).unwrap().clone();
    let other = read.iter().find(|r| r.id == gone).unwrap().clone();

    // Meanwhile a server seals the first value anew and deletes the second factor.
    let meanwhile = app
        .state
        .keys
        .seal(col.purpose, &fid, b"written meanwhile")
        .unwrap();
    let n = store
        .reseal_rows(
            col,
            &[Reseal {
                id: &fid,
                old: &stale,
                key_id: &meanwhile.key_id,
                sealed: &meanwhile.blob,
            }],
        )
        .await
        .unwrap();
    assert_eq!(n, 1, "the first writer wins");
    let (s, _) = app.delete(&format!("/auth/factors/{gone}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // The rotation's write, from what it read before: neither lands.
    let late = app
        .state
        .keys
        .seal(col.purpose, &fid, b"from the stale read")
        .unwrap();
    let late_other = app
        .state
        .keys
        .seal(col.purpose, &gone, b"from the stale read")
        .unwrap();
    let n = store
        .reseal_rows(
            col,
            &[
                Reseal {
                    id: &fid,
                    old: &stale,
                    key_id: &late.key_id,
                    sealed: &late.blob,
                },
                Reseal {
                    id: &gone,
                    old: &other,
                    key_id: &late_other.key_id,
                    sealed: &late_other.blob,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        n, 0,
        "a compare-and-swap on a changed or deleted row changes nothing"
    );
    let now = store.sealed_rows_after(col, "", None, 10).await.unwrap();
    assert_eq!(now.len(), 1, "the deleted factor stays deleted");
    let opened = app
        .state
        .keys
        .open(
            col.purpose,
            &fid,
            &Sealed {
                key_id: now[0].key_id.clone(),
                blob: now[0].sealed.clone(),
            },
        )
        .unwrap();
    assert_eq!(&opened[..], b"written meanwhile");
}

async fn a_rotation_in_small_batches_beside_parallel_enrolments_and_deletions_leaves_every_secret_under_the_new_key(
    app: TestApp,
) {
    // `app` seals under its key (A); 30 factors, then a server with B current and A old.
    let mut under_a = vec![];
    for _ in 0..30 {
        under_a.push(app.totp_factor(None).await);
    }
    let a = app
        .state
        .keys
        .key_ids()
        .first()
        .map(|s| s.to_string())
        .unwrap();
    let key = app.key.clone();
    let clock = app.clock.clone();
    let db = app.stop().await;
    let a_b64 = if db.is_postgres() {
        crate::helpers::test_master_key()
    } else {
        std::fs::read_to_string(tessera_server::startup::key_file_path(
            &db.url.sqlite_path().unwrap(),
        ))
        .unwrap()
    };
    assert_eq!(key_id(&a_b64), a);
    let b = key_b64(0xB2);
    let mut app = serve(&db, &b, &[&a_b64], &clock).await;
    app.key = key;
    let app = Arc::new(app);

    // The rotation, 7 rows a batch, while requests enrol new factors and delete old ones.
    let ring = KeyRing::new(
        MasterKey::from_base64(&b).unwrap(),
        vec![MasterKey::from_base64(&a_b64).unwrap()],
    );
    let rotation = {
        let store = app.state.store.clone();
        tokio::spawn(async move {
            master_key::rotate_in_batches(&store, &ring, Timestamp(T0), 7)
                .await
                .unwrap()
        })
    };
    let mut tasks = vec![];
    for (i, (deleted, _)) in under_a.iter().take(20).enumerate() {
        let app = app.clone();
        let deleted = deleted.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let (s, _) = app.delete(&format!("/auth/factors/{deleted}")).await;
                assert_eq!(s, StatusCode::NO_CONTENT);
                None
            } else {
                Some(app.totp_factor(None).await)
            }
        }));
    }
    let mut enrolled = vec![];
    for t in tasks {
        enrolled.extend(t.await.unwrap());
    }
    let RotateOutcome::Done(reports) = rotation.await.unwrap() else {
        panic!("the rotation refused");
    };
    let factors = &reports[0];
    assert_eq!(factors.table, "auth_factors");
    assert!(
        factors.left_under_other_keys.is_empty(),
        "nothing left under A: {factors:?}"
    );
    assert!(
        factors.resealed >= 20 && factors.resealed + factors.changed_meanwhile <= 30,
        "A's 20 values never deleted were re-sealed; deleted ones were not written back: {factors:?}"
    );

    // Every factor left opens with B alone and verifies; the deleted ones stay deleted.
    let only_b = KeyRing::new(MasterKey::from_base64(&b).unwrap(), vec![]);
    let col = &SEALED_COLUMNS[0];
    let rows = app
        .state
        .store
        .sealed_rows_after(col, "", None, 1000)
        .await
        .unwrap();
    assert_eq!(rows.len(), 30 - 10 + 10);
    for r in &rows {
        let sealed = Sealed {
            key_id: r.key_id.clone(),
            blob: r.sealed.clone(),
        };
        only_b.open(col.purpose, &r.id, &sealed).unwrap();
    }
    for (id, _) in under_a.iter().step_by(2).take(10) {
        assert!(rows.iter().all(|r| r.id != *id), "{id} was deleted");
    }
    let kept = under_a
        .iter()
        .enumerate()
        .filter(|(i, _)| !(*i < 20 && i % 2 == 0))
        .map(|(_, f)| f);
    for (id, secret) in enrolled.iter().chain(kept) {
        let c = app.challenge(id).await;
        let (s, v) = app
            .verify(c["id"].as_str().unwrap(), &app.totp_code(secret, 0))
            .await;
        assert_eq!((s, &v["valid"]), (StatusCode::CREATED, &json!(true)), "{v}");
    }
    Arc::try_unwrap(app).ok().unwrap().stop().await;
}

#[test]
fn rotate_refuses_a_missing_database_and_creates_no_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["master-key", "rotate"])
        .current_dir(&root)
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_MASTER_KEY")
        .env_remove("TESSERA_OLD_MASTER_KEYS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
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
        "no database, no key file"
    );
}
