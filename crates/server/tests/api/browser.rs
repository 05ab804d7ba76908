//! The browser suites (`tests/browser/`, one shared harness): Debian's Chromium, driven by
//! Selenium, against the real `tessera` binary that this `cargo test` built, each test on a
//! fresh database. Screenshots go to `target/browser-screenshots/`.
//!
//! Needs `TESSERA_SDK_DIR` (Selenium in `$TESSERA_SDK_DIR/browser`, installed by
//! `scripts/install-browser.sh`, which `scripts/test` runs); under plain `cargo test` it says
//! it was not run, unless `TESSERA_REQUIRE_SDK_TESTS` makes that a failure.
//! `TESSERA_BROWSER_FILTER` runs only the tests whose name contains it.

use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_suites_pass_in_chromium() {
    let sdk = match std::env::var("TESSERA_SDK_DIR") {
        Ok(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            assert!(
                std::env::var("TESSERA_REQUIRE_SDK_TESTS").is_err(),
                "TESSERA_REQUIRE_SDK_TESTS is set but TESSERA_SDK_DIR is not"
            );
            eprintln!("TESSERA_SDK_DIR unset: browser suites not run (use scripts/test)");
            return;
        }
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let filter = std::env::var("TESSERA_BROWSER_FILTER").unwrap_or_default();
    let out = tokio::process::Command::new("python3")
        .arg(root.join("tests/browser/run.py"))
        .arg(&filter)
        .current_dir(&root)
        .env("PYTHONPATH", sdk.join("browser"))
        .env("TESSERA_BIN", env!("CARGO_BIN_EXE_tessera"))
        .env(
            "TESSERA_SCREENSHOT_DIR",
            root.join("target/browser-screenshots"),
        )
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            && stdout
                .lines()
                .any(|l| l.starts_with("browser: ") && l.ends_with(" 0 failed")),
        "browser suites failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
}
