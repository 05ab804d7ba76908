//! The `tessera` binary itself: key management, client id, refusing bad URLs, serving and
//! shutting down on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn tessera(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(dir)
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_MASTER_KEY")
        .output()
        .unwrap()
}

#[test]
fn api_keys_are_created_listed_and_revoked_and_the_secret_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path(), &["api-keys", "create", "--name", "ci"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    let secret = lines.next().unwrap();
    assert!(
        tessera_core::token::api_key_lookup(secret).is_some(),
        "first line is the key alone: {secret:?}"
    );
    let id = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(id.starts_with("key_"));

    let list = String::from_utf8(tessera(dir.path(), &["api-keys", "list"]).stdout).unwrap();
    assert!(list.contains(&id) && list.contains("ci") && list.contains("active"));
    assert!(!list.contains(secret), "list never shows secrets");

    let rev = tessera(dir.path(), &["api-keys", "revoke", &id]);
    assert!(rev.status.success());
    let list = String::from_utf8(tessera(dir.path(), &["api-keys", "list"]).stdout).unwrap();
    assert!(list.contains("revoked"));
    let again = tessera(dir.path(), &["api-keys", "revoke", &id]);
    assert!(!again.status.success(), "revoking twice is an error");
}

#[test]
fn client_id_is_created_once_and_printed_alone() {
    let dir = tempfile::tempdir().unwrap();
    let a = String::from_utf8(tessera(dir.path(), &["client-id"]).stdout).unwrap();
    let b = String::from_utf8(tessera(dir.path(), &["client-id"]).stdout).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.lines().count(), 1);
    assert!(tessera_core::id::has_prefix(a.trim(), "client"), "{a}");
}

#[test]
fn an_unknown_database_scheme_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(
        dir.path(),
        &["--database-url", "mysql://root@localhost/db", "client-id"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL scheme"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file was created"
    );
}

#[cfg(unix)]
#[test]
fn serve_prints_a_first_key_answers_health_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_MASTER_KEY")
        .env("TESSERA_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut key, mut addr) = (None, None);
    let mut line = String::new();
    while addr.is_none() {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "server exited early"
        );
        if let Some(i) = line.find("sk_") {
            key = Some(line[i..].split_whitespace().next().unwrap().to_owned());
        }
        if line.contains("tessera is listening") {
            addr = line
                .split("address=")
                .nth(1)
                .map(|s| s.split_whitespace().next().unwrap().to_owned());
        }
    }
    let (key, addr) = (key.expect("first key in the log"), addr.unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let h = http
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(h.status(), 200);
        let u = http
            .get(format!("http://{addr}/user_management/users"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(u.status(), 200, "the logged key works");
    });
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful exit on SIGTERM: {status}");
}

/// `tessera factors unlock`: the administrator's way out of a lockout, on the database a
/// server used; an unknown factor is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factors_unlock_lifts_a_lockout_and_refuses_unknown_factors() {
    use crate::helpers::{Backend, TestApp};
    let app = TestApp::spawn_configured(Backend::Sqlite, |c| c.factor_lockout_after = 1)
        .await
        .unwrap();
    let (fid, secret) = app.totp_factor(None).await;
    let c = app.challenge(&fid).await;
    let right = app.totp_code(&secret, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    app.verify(c["id"].as_str().unwrap(), wrong).await;
    assert!(app
        .state
        .store
        .find_factor_lock(&fid)
        .await
        .unwrap()
        .unwrap()
        .locked_at
        .is_some());
    let db = app.stop().await;
    let dir = db.url.sqlite_path().unwrap().parent().unwrap().to_owned();

    let out = tessera(&dir, &["factors", "unlock", &fid]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("unlocked {fid}\n")
    );
    let unknown = tessera(
        &dir,
        &[
            "factors",
            "unlock",
            "auth_factor_01NOSUCHFACTOR0000000000000",
        ],
    );
    assert!(!unknown.status.success(), "an unknown factor is an error");

    let store = tessera_store::Store::connect(&db.url, &Default::default())
        .await
        .unwrap();
    let lock = store.find_factor_lock(&fid).await.unwrap().unwrap();
    assert_eq!((lock.consecutive_failures, lock.locked_at), (0, None));
    store.close().await;
}

#[test]
fn the_lockout_threshold_is_refused_beyond_nists_100() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path(), &["serve", "--factor-lockout-after", "101"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("between 1 and 100"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
