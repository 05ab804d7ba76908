//! The `tessera` binary itself: key management, client id, refusing bad URLs and missing
//! databases, `init`, help, serving (also without the `serve` word) and shutting down on
//! SIGTERM.

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
    assert!(tessera(dir.path(), &["init"]).status.success());
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
    assert!(tessera(dir.path(), &["init"]).status.success());
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

#[test]
fn management_commands_refuse_a_missing_database_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let db = root.join("tessera.db");
    let commands: [&[&str]; 14] = [
        &["api-keys", "create", "--name", "ci"],
        &["admins", "list"],
        &["admins", "remove", "ada@example.com"],
        &[
            "factors",
            "unlock",
            "auth_factor_01HZZZZZZZZZZZZZZZZZZZZZZZ",
        ],
        &["api-keys", "list"],
        &["api-keys", "revoke", "key_01HZZZZZZZZZZZZZZZZZZZZZZZ"],
        &["client-id"],
        &["settings", "mfa-required", "on"],
        &["settings", "sign-up", "on"],
        &["redirect-uris", "add", "https://app.example.com/callback"],
        &["redirect-uris", "list"],
        &[
            "redirect-uris",
            "remove",
            "https://app.example.com/callback",
        ],
        &["signing-keys", "rotate"],
        &["--database-url", "elsewhere/typo.db", "client-id"],
    ];
    for args in commands {
        let out = tessera(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed nothing on stdout");
        let wanted = if args[0] == "--database-url" {
            root.join("elsewhere/typo.db")
        } else {
            db.clone()
        };
        assert!(
            stderr.contains(&format!("no database at {}", wanted.display())),
            "{args:?}: the message names the absolute path: {stderr}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{args:?} created no database and no key file"
        );
    }
}

#[test]
fn init_creates_the_database_with_its_key_file_and_commands_say_what_they_changed() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path(), &["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client_id = String::from_utf8(out.stdout).unwrap();
    assert!(
        tessera_core::id::has_prefix(client_id.trim(), "client"),
        "{client_id}"
    );
    assert!(dir.path().join("tessera.db").is_file());
    assert!(
        dir.path().join("tessera.db.key").is_file(),
        "the key file in the same step"
    );
    let again = tessera(dir.path(), &["init"]);
    assert!(again.status.success(), "init is idempotent");
    assert_eq!(String::from_utf8(again.stdout).unwrap(), client_id);
    let same = tessera(dir.path(), &["client-id"]);
    assert_eq!(String::from_utf8(same.stdout).unwrap(), client_id);

    let db = dir.path().canonicalize().unwrap().join("tessera.db");
    let said = format!("changed: SQLite database {}", db.display());
    for args in [
        &["api-keys", "create", "--name", "ci"][..],
        &["settings", "mfa-required", "on"],
        &["signing-keys", "rotate"],
    ] {
        let out = tessera(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&said),
            "{args:?} names the database: {stderr}"
        );
    }
    let list = tessera(dir.path(), &["api-keys", "list"]);
    assert!(list.status.success());
    assert!(
        !String::from_utf8_lossy(&list.stderr).contains("changed:"),
        "listing changes nothing"
    );
}

#[test]
fn management_commands_refuse_a_postgres_database_tessera_never_set_up() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(crate::helpers::TestDb::empty_postgres()) else {
        eprintln!("TESSERA_TEST_DATABASE_URL unset: PostgreSQL variant not run");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = db.url.expose().to_owned();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .current_dir(dir.path())
            .env("TESSERA_DATABASE_URL", &url)
            .env("TESSERA_MASTER_KEY", crate::helpers::test_master_key())
            .output()
            .unwrap()
    };
    let has_tables = || {
        rt.block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            let (t,): (bool,) = sqlx::query_as("SELECT to_regclass('environment') IS NOT NULL")
                .fetch_one(&mut c)
                .await
                .unwrap();
            t
        })
    };
    for args in [&["client-id"][..], &["api-keys", "create", "--name", "x"]] {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains("has no Tessera data"), "{stderr}");
        assert!(!has_tables(), "{args:?} created no tables");
    }
    let out = run(&["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(has_tables());
    let out = run(&["client-id"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(run(&["init"]).stdout).unwrap()
    );
}

#[test]
fn help_describes_every_flag_and_the_default_command_takes_the_serve_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path(), &["-h"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    for wanted in ["listen", "sms-webhook-url", "twilio-from", "database-url"] {
        assert!(
            flags.contains(&wanted),
            "`tessera -h` lists --{wanted}:\n{help}"
        );
    }
    for flag in flags {
        let flag = format!("--{flag}");
        assert!(described(&help, &flag), "{flag} has a description:\n{help}");
    }
    let out = tessera(dir.path(), &["api-keys", "create", "-h"]);
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(described(&help, "--name"), "{help}");

    // Flags of the default command cannot be mixed with another command.
    let out = tessera(dir.path(), &["--listen", "127.0.0.1:0", "client-id"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--listen is a flag of `serve`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Whether clap's help text gives `flag` a description: after `--flag <VALUE>` on its line,
/// or on the next line (clap's layout when descriptions are long), and not just the
/// `[env: ...]` hint.
fn described(help: &str, flag: &str) -> bool {
    let lines: Vec<&str> = help.lines().collect();
    let Some(i) = lines
        .iter()
        .position(|l| l.trim_start().starts_with(&format!("{flag} ")))
    else {
        return false;
    };
    let same = lines[i].split_once('>').map_or("", |(_, rest)| rest);
    let next = lines.get(i + 1).copied().unwrap_or("");
    let text = if same.trim().is_empty() && !next.trim_start().starts_with('-') {
        next
    } else {
        same
    };
    text.split("[env").next().unwrap_or("").trim().len() > 3
}

#[cfg(unix)]
#[test]
fn serve_prints_a_first_key_answers_health_and_stops_cleanly_on_sigterm() {
    serves_and_stops_on_sigterm(&["serve", "--listen", "127.0.0.1:0"]);
}

#[cfg(unix)]
#[test]
fn the_default_command_takes_the_serve_flags() {
    serves_and_stops_on_sigterm(&["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"]);
}

#[cfg(unix)]
fn serves_and_stops_on_sigterm(args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_MASTER_KEY")
        .env("TESSERA_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut key, mut addr, mut metrics) = (None, None, None);
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
        if line.contains("metrics are served at /metrics") {
            metrics = line
                .split("address=")
                .nth(1)
                .map(|s| s.split_whitespace().next().unwrap().to_owned());
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
        // --metrics-listen serves /metrics on its own address, and only when given.
        assert_eq!(metrics.is_some(), args.contains(&"--metrics-listen"));
        if let Some(metrics) = metrics {
            let m = http
                .get(format!("http://{metrics}/metrics"))
                .send()
                .await
                .unwrap();
            assert_eq!(m.status(), 200);
            let text = m.text().await.unwrap();
            assert!(text.contains("tessera_build_info{version="), "{text}");
            assert!(
                text.contains(
                    r#"tessera_http_requests_total{method="GET",route="/health",status="200"} 1"#
                ),
                "{text}"
            );
        }
    });
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful exit on SIGTERM: {status}");
}

#[test]
fn redirect_uris_are_added_checked_listed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let ok = |args: &[&str]| {
        let out = tessera(dir.path(), args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    ok(&["init"]);
    ok(&["redirect-uris", "add", "https://app.example.com/callback"]);
    ok(&["redirect-uris", "add", "http://localhost:*/callback"]);
    assert!(ok(&["redirect-uris", "add", "https://app.example.com/callback"]).contains("already"));
    for bad in [
        "http://app.example.com/callback",
        "https://*.example.com/callback",
        "javascript://x",
        "/relative",
    ] {
        let out = tessera(dir.path(), &["redirect-uris", "add", bad]);
        assert!(!out.status.success(), "{bad} is refused");
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot allow"));
    }
    assert_eq!(
        ok(&["redirect-uris", "list"]),
        "http://localhost:*/callback\nhttps://app.example.com/callback\n"
    );
    ok(&["redirect-uris", "remove", "http://localhost:*/callback"]);
    assert_eq!(
        ok(&["redirect-uris", "list"]),
        "https://app.example.com/callback\n"
    );
    let again = tessera(
        dir.path(),
        &["redirect-uris", "remove", "http://localhost:*/callback"],
    );
    assert!(!again.status.success(), "removing twice is an error");
    assert!(ok(&["settings", "sign-up", "on"]).contains("sign-up: on"));
}

#[tokio::test]
async fn signing_keys_rotate_with_a_wrong_master_key_is_refused_and_seals_nothing() {
    use crate::helpers::{config_for, Backend, TestDb, T0};
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let right = tessera_core::seal::MasterKey::generate().1;
    let mut cfg = config_for(&db);
    cfg.master_key = Some(right.clone());
    let clock = std::sync::Arc::new(tessera_core::ManualClock::new(tessera_core::Timestamp(T0)));
    let app = tessera_server::Application::build(cfg, clock)
        .await
        .unwrap();
    let kid_before = app
        .state()
        .store
        .find_active_signing_key()
        .await
        .unwrap()
        .unwrap()
        .kid;
    app.state().store.close().await;
    drop(app);
    let path = db.url.sqlite_path().unwrap();
    let rotate = |key: &str| {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args([
                "--database-url",
                path.to_str().unwrap(),
                "signing-keys",
                "rotate",
            ])
            .env_remove("TESSERA_OLD_MASTER_KEYS")
            .env("TESSERA_MASTER_KEY", key)
            .output()
            .unwrap()
    };
    let wrong = rotate(tessera_core::seal::MasterKey::generate().1.as_str());
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("does not open this database's sealed data"),
        "{stderr}"
    );
    let ok = rotate(right.as_str());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let kid_after = String::from_utf8(ok.stdout).unwrap();
    assert_ne!(kid_after.trim(), kid_before, "the right key rotates");
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
