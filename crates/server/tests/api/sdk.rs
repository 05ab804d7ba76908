//! SDK conformance: the official WorkOS SDKs (Python `workos` 5.x, Node `@workos-inc/node`
//! 8.x, pinned by `scripts/install-sdks.sh`) drive a real Tessera server, unchanged but for
//! the base URL. The seed document's Node sample runs word for word.
//!
//! Needs `TESSERA_SDK_DIR` (set by `scripts/test`); under plain `cargo test` it says it was
//! not run, unless `TESSERA_REQUIRE_SDK_TESTS` makes that a failure.

use std::path::PathBuf;

use serde_json::json;
use tessera_store::UserRow;

use crate::helpers::{Backend, TestApp, T0};

/// The user id hard-coded in the seed's samples.
const SEED_USER: &str = "user_01E4ZCR3C56J083X43JQXF3JK5";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn sdk_dir() -> Option<PathBuf> {
    match std::env::var("TESSERA_SDK_DIR") {
        Ok(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => {
            assert!(
                std::env::var("TESSERA_REQUIRE_SDK_TESTS").is_err(),
                "TESSERA_REQUIRE_SDK_TESTS is set but TESSERA_SDK_DIR is not"
            );
            eprintln!("TESSERA_SDK_DIR unset: SDK conformance not run (use scripts/test)");
            None
        }
    }
}

async fn server_with_seed_user() -> TestApp {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    // The suites compute TOTP codes from the server's time (a fresh challenge's
    // `created_at`), so they pass on this frozen clock as on a real one.
    app.clock.set(tessera_core::Timestamp(T0));
    let row = UserRow {
        id: SEED_USER.into(),
        email: "seed@example.com".into(),
        email_verified: true,
        first_name: None,
        last_name: None,
        name: None,
        profile_picture_url: None,
        external_id: None,
        metadata: "{}".into(),
        locale: None,
        password_hash: None,
        last_sign_in_at: None,
        created_at: tessera_core::Timestamp(T0),
        updated_at: tessera_core::Timestamp(T0),
    };
    app.state.store.insert_user(&row).await.unwrap();
    // Hosted sign-in checks return to a loopback callback (the port wildcard).
    app.state
        .store
        .add_redirect_uri("http://127.0.0.1:*/callback", tessera_core::Timestamp(T0))
        .await
        .unwrap();
    app
}

async fn run(
    app: &TestApp,
    dir: PathBuf,
    program: &str,
    args: &[&str],
    extra_env: &[(&str, String)],
) -> String {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(&dir)
        .env("TESSERA_BASE_URL", &app.base)
        .env("TESSERA_API_KEY", &app.key)
        .env("TESSERA_CLIENT_ID", &app.client_id);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_node_sample_runs_word_for_word_against_tessera() {
    let Some(_) = sdk_dir() else { return };
    let app = server_with_seed_user().await;
    let node = repo_root().join("tests/sdk/node");
    run(
        &app,
        node.clone(),
        "node",
        &["--import", "./register.mjs", "seed-enroll.mjs"],
        &[],
    )
    .await;
    let (s, list) = app
        .get(&format!("/user_management/users/{SEED_USER}/auth_factors"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "the sample enrolled one factor"
    );
    let f = &list["data"][0];
    assert_eq!(
        f["totp"],
        json!({ "issuer": "WorkOS", "user": "bob@example.com" })
    );
    let printed = run(
        &app,
        node,
        "node",
        &["--import", "./register.mjs", "seed-list.mjs"],
        &[],
    )
    .await;
    assert!(
        printed.contains(f["id"].as_str().unwrap()),
        "the list sample printed the factor: {printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_sdk_conformance_suite_passes() {
    let Some(_) = sdk_dir() else { return };
    let app = server_with_seed_user().await;
    // A second API key: reuse of a refresh token by another client is not a retry.
    let (_, other_key) =
        tessera_server::startup::create_api_key(&app.state.store, &app.clock, "other")
            .await
            .unwrap();
    let out = run(
        &app,
        repo_root().join("tests/sdk/node"),
        "node",
        &["conformance.mjs"],
        &[("TESSERA_OTHER_API_KEY", other_key)],
    )
    .await;
    assert!(
        out.lines()
            .any(|l| l.starts_with("sdk-node: ") && l.ends_with(" 0 failed")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_conformance_suite_passes() {
    let Some(sdk) = sdk_dir() else { return };
    let app = server_with_seed_user().await;
    let py = sdk.join("python-v5").to_string_lossy().into_owned();
    // A second API key: reuse of a refresh token by another client is not a retry.
    let (_, other_key) =
        tessera_server::startup::create_api_key(&app.state.store, &app.clock, "other")
            .await
            .unwrap();
    let out = run(
        &app,
        repo_root().join("tests/sdk/python"),
        "python3",
        &["conformance_v5.py"],
        &[("PYTHONPATH", py), ("TESSERA_OTHER_API_KEY", other_key)],
    )
    .await;
    assert!(
        out.lines()
            .any(|l| l.starts_with("sdk-python-v5: ") && l.ends_with(" 0 failed")),
        "{out}"
    );
}
