//! What is on disk: secrets sealed, data surviving restarts, master-key handling.

use std::sync::Arc;

use serde_json::json;
use tessera_core::{ManualClock, Timestamp};
use tessera_server::{Application, Config};

use crate::helpers::{config_for, Backend, TestApp, TestDb, T0};

/// Every byte of the SQLite database, WAL included.
fn sqlite_bytes(app: &TestApp) -> Vec<u8> {
    let path = app.db.url.sqlite_path().unwrap();
    let mut all = std::fs::read(&path).unwrap();
    for ext in ["-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(ext);
        if let Ok(b) = std::fs::read(p) {
            all.extend(b);
        }
    }
    all
}

#[tokio::test]
async fn a_totp_secret_never_appears_in_clear_in_the_sqlite_file() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let u = app.create_user("secret@example.com").await;
    let v = app
        .enroll_totp(u["id"].as_str().unwrap(), json!({ "type": "totp" }))
        .await;
    let b32 = v["authentication_factor"]["totp"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let raw = tessera_core::totp::TotpSecret::from_base32(&b32)
        .unwrap()
        .as_bytes()
        .to_vec();
    let db = sqlite_bytes(&app);
    let contains = |needle: &[u8]| db.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(u["id"].as_str().unwrap().as_bytes()),
        "the scan does see row data"
    );
    assert!(
        !contains(b32.as_bytes()),
        "base32 secret found in the database file"
    );
    assert!(
        !contains(&raw),
        "raw secret bytes found in the database file"
    );
    assert!(!contains(b"correct horse battery"), "a password in clear");
}

#[tokio::test]
async fn a_totp_secret_never_appears_in_clear_in_postgres() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        eprintln!("TESSERA_TEST_DATABASE_URL unset: not run");
        return;
    };
    let u = app.create_user("secret@example.com").await;
    let v = app
        .enroll_totp(u["id"].as_str().unwrap(), json!({ "type": "totp" }))
        .await;
    let b32 = v["authentication_factor"]["totp"]["secret"]
        .as_str()
        .unwrap();
    let raw = tessera_core::totp::TotpSecret::from_base32(b32)
        .unwrap()
        .as_bytes()
        .to_vec();
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(app.db.url.expose())
        .await
        .unwrap();
    // Every column of every factor row, as text.
    let dump: Vec<String> = sqlx::query_scalar("SELECT f::text FROM auth_factors f")
        .fetch_all(&mut c)
        .await
        .unwrap();
    let hex = dump.join("\n");
    let raw_hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!hex.contains(b32));
    assert!(!hex.contains(&raw_hex));
}

async fn data_survives_a_restart(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let db = Arc::new(db);
    let mut cfg = config_for(&db);
    cfg.master_key = None;
    if db.is_postgres() {
        cfg.master_key = Some(zeroize::Zeroizing::new(crate::helpers::test_master_key()));
    }
    let clock = ManualClock::new(Timestamp(T0));
    let app = TestApp::spawn_with(db.clone(), cfg.clone(), clock.clone()).await;
    let client_id = app.client_id.clone();
    let key = app.key.clone();
    let u = app.create_user("persist@example.com").await;
    let v = app
        .enroll_totp(u["id"].as_str().unwrap(), json!({ "type": "totp" }))
        .await;
    let secret = v["authentication_factor"]["totp"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let db = app.stop().await;

    let mut app2 = TestApp::spawn_with(db, cfg, clock).await;
    assert_eq!(app2.client_id, client_id, "the client id is created once");
    app2.key = key; // the first key still works after a restart
    let (s, got) = app2
        .get(&format!(
            "/user_management/users/{}",
            u["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(got, u);
    let fid = v["authentication_factor"]["id"].as_str().unwrap();
    let row = app2.state.store.get_factor(fid).await.unwrap();
    let sealed = tessera_core::seal::Sealed {
        key_id: row.secret_key_id.unwrap(),
        blob: row.secret_sealed.unwrap(),
    };
    let opened = app2
        .state
        .keys
        .open("totp", fid, &sealed)
        .expect("the restarted server opens old secrets");
    assert_eq!(
        tessera_core::totp::TotpSecret::from_bytes(opened.to_vec()).to_base32(),
        secret
    );
}

#[tokio::test]
async fn data_survives_a_restart_on_sqlite() {
    data_survives_a_restart(Backend::Sqlite).await;
}

#[tokio::test]
async fn data_survives_a_restart_on_postgres() {
    data_survives_a_restart(Backend::Postgres).await;
}

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_key_file_is_created_on_first_start_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let key = tessera_server::startup::key_file_path(&app.db.url.sqlite_path().unwrap());
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(&key).unwrap().trim().len(),
        44,
        "base64 of 32 bytes"
    );
}

#[tokio::test]
async fn a_database_whose_key_file_is_missing_refuses_to_start() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let db = app.stop().await;
    std::fs::remove_file(tessera_server::startup::key_file_path(
        &db.url.sqlite_path().unwrap(),
    ))
    .unwrap();
    let err = Application::build(config_for(&db), Arc::new(ManualClock::new(Timestamp(T0))))
        .await
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("key file"), "{err:#}");
}

#[tokio::test]
async fn postgres_without_a_master_key_refuses_to_start_with_a_clear_message() {
    let url = tessera_store::DatabaseUrl::parse("postgres://postgres@127.0.0.1:1/none").unwrap();
    let cfg = Config::new(url);
    let err = Application::build(cfg, Arc::new(ManualClock::new(Timestamp(T0))))
        .await
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("TESSERA_MASTER_KEY is required with PostgreSQL"),
        "{err:#}"
    );
}

#[tokio::test]
async fn a_malformed_master_key_is_refused() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let mut cfg = config_for(&db);
    cfg.master_key = Some(zeroize::Zeroizing::new("too-short".into()));
    let err = Application::build(cfg, Arc::new(ManualClock::new(Timestamp(T0))))
        .await
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("TESSERA_MASTER_KEY"), "{err:#}");
}

/// Runs one statement on the test database directly (as an operator or an old version would).
async fn exec_sql(db: &TestDb, sql: &str) {
    use sqlx::Connection;
    if db.is_postgres() {
        let mut c = sqlx::PgConnection::connect(db.url.expose()).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    } else {
        let path = db.url.sqlite_path().unwrap();
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
}

fn random_master_key() -> zeroize::Zeroizing<String> {
    tessera_core::seal::MasterKey::generate().1
}

fn key_id_of(b64: &str) -> String {
    tessera_core::seal::MasterKey::from_base64(b64)
        .unwrap()
        .id()
        .to_owned()
}

/// Starts a server on `db` with `current` and `old` master keys and a user with a TOTP
/// factor (so sealed rows exist), then stops it.
async fn seed_with_key(db: Arc<TestDb>, current: &zeroize::Zeroizing<String>) -> Arc<TestDb> {
    let mut cfg = config_for(&db);
    cfg.master_key = Some(current.clone());
    let app = TestApp::spawn_with(db, cfg, ManualClock::new(Timestamp(T0))).await;
    let u = app.create_user("sealed@example.com").await;
    app.enroll_totp(u["id"].as_str().unwrap(), json!({ "type": "totp" }))
        .await;
    app.stop().await
}

async fn build_with_keys(
    db: &TestDb,
    current: &zeroize::Zeroizing<String>,
    old: &[&zeroize::Zeroizing<String>],
) -> anyhow::Result<Application> {
    let mut cfg = config_for(db);
    cfg.master_key = Some(current.clone());
    cfg.old_master_keys = old.iter().map(|k| (*k).clone()).collect();
    Application::build(cfg, Arc::new(ManualClock::new(Timestamp(T0)))).await
}

async fn stop_built(app: Application) {
    app.state().store.close().await;
}

async fn a_wrong_master_key_is_refused_at_start(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        eprintln!("TESSERA_TEST_DATABASE_URL unset: not run");
        return;
    };
    let right = random_master_key();
    let db = seed_with_key(Arc::new(db), &right).await;
    let wrong = random_master_key();
    let err = build_with_keys(&db, &wrong, &[])
        .await
        .err()
        .expect("refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("does not open this database's sealed data")
            && msg.contains(&key_id_of(&right))
            && msg.contains(&key_id_of(&wrong)),
        "{msg}"
    );
    assert!(
        !msg.contains(right.as_str()) && !msg.contains(wrong.as_str()),
        "no key in the message"
    );
    // Nothing was written under the wrong key: the right one still starts.
    stop_built(
        build_with_keys(&db, &right, &[])
            .await
            .expect("the right key starts"),
    )
    .await;
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_at_start_on_sqlite() {
    a_wrong_master_key_is_refused_at_start(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_at_start_on_postgres() {
    a_wrong_master_key_is_refused_at_start(Backend::Postgres).await;
}

async fn a_database_without_a_check_value_is_checked_by_its_sealed_rows(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        eprintln!("TESSERA_TEST_DATABASE_URL unset: not run");
        return;
    };
    let right = random_master_key();
    let db = seed_with_key(Arc::new(db), &right).await;
    // As a database written before the check value existed.
    exec_sql(&db, "DELETE FROM master_key_check").await;
    let err = build_with_keys(&db, &random_master_key(), &[])
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("does not open"), "{err:#}");
    let app = build_with_keys(&db, &right, &[]).await.expect("starts");
    let check = app.state().store.find_master_key_check().await.unwrap();
    assert_eq!(
        check.map(|c| c.key_id),
        Some(key_id_of(&right)),
        "the check value is written by the first start that proved the key"
    );
    stop_built(app).await;
    // The check value alone now refuses a wrong key, even with no sealed rows left.
    exec_sql(&db, "DELETE FROM auth_factors").await;
    exec_sql(&db, "DELETE FROM signing_keys").await;
    assert!(build_with_keys(&db, &random_master_key(), &[])
        .await
        .is_err());
}

#[tokio::test]
async fn a_database_without_a_check_value_is_checked_by_its_sealed_rows_on_sqlite() {
    a_database_without_a_check_value_is_checked_by_its_sealed_rows(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_database_without_a_check_value_is_checked_by_its_sealed_rows_on_postgres() {
    a_database_without_a_check_value_is_checked_by_its_sealed_rows(Backend::Postgres).await;
}

async fn a_master_key_rotation_reseals_the_check_value(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        eprintln!("TESSERA_TEST_DATABASE_URL unset: not run");
        return;
    };
    let first = random_master_key();
    let db = seed_with_key(Arc::new(db), &first).await;
    let second = random_master_key();
    // The new key with the old one still in the ring: starts, and the check moves over.
    let app = build_with_keys(&db, &second, &[&first])
        .await
        .expect("rotation starts");
    let check = app.state().store.find_master_key_check().await.unwrap();
    assert_eq!(check.map(|c| c.key_id), Some(key_id_of(&second)));
    stop_built(app).await;
    // Without the old key, the signing key (sealed under it) cannot sign: refused, clearly.
    let err = build_with_keys(&db, &second, &[])
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("signing key"), "{err:#}");
    // Rotating the signing key with both keys, then the old key can go.
    let app = build_with_keys(&db, &second, &[&first]).await.unwrap();
    tessera_server::services::signin::rotate_signing_key(
        &app.state().store,
        &app.state().keys,
        Timestamp(T0 + 1),
    )
    .await
    .unwrap();
    stop_built(app).await;
    stop_built(
        build_with_keys(&db, &second, &[])
            .await
            .expect("the new key alone starts"),
    )
    .await;
}

#[tokio::test]
async fn a_master_key_rotation_reseals_the_check_value_on_sqlite() {
    a_master_key_rotation_reseals_the_check_value(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_master_key_rotation_reseals_the_check_value_on_postgres() {
    a_master_key_rotation_reseals_the_check_value(Backend::Postgres).await;
}
