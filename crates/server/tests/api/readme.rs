//! The README's quick start, run as a newcomer would run it: its shell blocks in order in one
//! `bash`, then its Python blocks in order at one Python prompt (`code.InteractiveConsole`,
//! the prompt's rules) that inherits that shell's environment, against a fresh `tessera`
//! binary started in an empty directory.
//!
//! Two honest substitutions: the server listens on a free port, so the README's address
//! `127.0.0.1:8080` is replaced by the real one; and a block right after a
//! `<!-- readme-test: skip (...) -->` line is not run (building, starting the server, the test
//! command itself), with the reason written in the README. The Python blocks are also checked
//! with pyflakes, so a name used on a path the run does not take is still defined, and the
//! README's sample log lines must match what the server printed (times, keys and ids aside).
//!
//! Needs `TESSERA_SDK_DIR` (the Python SDK and pyflakes, installed by `scripts/install-sdks.sh`)
//! and `curl`, `jq`, `oathtool`; `scripts/test` provides them. Without them the test says it
//! was not run, unless `TESSERA_REQUIRE_SDK_TESTS` makes that a failure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The address the README uses.
const README_ADDR: &str = "127.0.0.1:8080";
const SKIP_MARK: &str = "<!-- readme-test: skip";

struct Block {
    lang: String,
    text: String,
    skip: bool,
}

/// The fenced blocks of a Markdown text, in order.
fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = vec![];
    let mut current: Option<Block> = None;
    let mut skip_next = false;
    for line in markdown.lines() {
        let fence = line.trim_start().starts_with("```");
        if let Some(b) = current.as_mut() {
            if fence {
                out.extend(current.take());
            } else {
                b.text.push_str(line);
                b.text.push('\n');
            }
        } else if fence {
            current = Some(Block {
                lang: line.trim_start().trim_start_matches('`').trim().to_owned(),
                text: String::new(),
                skip: std::mem::take(&mut skip_next),
            });
        } else if line.trim_start().starts_with(SKIP_MARK) {
            skip_next = true;
        } else if !line.trim().is_empty() {
            skip_next = false;
        }
    }
    out
}

/// Whether the tools the blocks call exist; if not, the test is skipped (or fails when
/// `TESSERA_REQUIRE_SDK_TESTS` is set).
fn prerequisites() -> Option<PathBuf> {
    let required = std::env::var("TESSERA_REQUIRE_SDK_TESTS").is_ok();
    let missing: Vec<&str> = ["curl", "jq", "oathtool", "python3", "bash"]
        .into_iter()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    let sdk = std::env::var("TESSERA_SDK_DIR")
        .ok()
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    match sdk {
        Some(dir) if missing.is_empty() => Some(dir),
        _ => {
            assert!(
                !required,
                "TESSERA_REQUIRE_SDK_TESTS is set, but TESSERA_SDK_DIR is unset or tools are missing: {missing:?}"
            );
            eprintln!(
                "README test not run: needs TESSERA_SDK_DIR and {missing:?} (use scripts/test)"
            );
            None
        }
    }
}

/// The `tessera` binary serving from `dir`; killed when dropped, also when the test fails.
struct Server {
    child: Child,
    addr: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env_remove("TESSERA_DATABASE_URL")
            .env_remove("TESSERA_MASTER_KEY")
            .env("TESSERA_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut line = String::new();
        let addr = loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "server exited early"
            );
            log.lock().unwrap().push_str(&line);
            if line.contains("tessera is listening") {
                break line
                    .split("address=")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .unwrap()
                    .to_owned();
            }
        };
        // Keep reading the log, so the server never blocks on a full pipe.
        let sink = log.clone();
        std::thread::spawn(move || {
            for l in stderr.lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(l + "\n"));
            }
        });
        Server { child, addr, log }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A log line with its time, API key and ids blanked, for comparing the README's sample
/// with a real first start.
fn log_shape(line: &str) -> Vec<String> {
    line.split_whitespace()
        .enumerate()
        .map(|(i, t)| {
            if i == 0 && t.ends_with('Z') && t.starts_with(|c: char| c.is_ascii_digit()) {
                "<time>".to_owned()
            } else if t.starts_with("sk_") {
                "<api key>".to_owned()
            } else if let Some((k, _)) = t
                .split_once('=')
                .filter(|(k, _)| ["key_id", "client_id", "address"].contains(k))
            {
                format!("{k}=<value>")
            } else {
                t.to_owned()
            }
        })
        .collect()
}

/// A Python prompt fed the blocks (separated by NUL in the file named by `argv[1]`) line by
/// line, with an Enter after each block; the first traceback or syntax error exits 1.
const PROMPT: &str = r#"
import code, sys

class Prompt(code.InteractiveConsole):
    def showtraceback(self):
        super().showtraceback()
        sys.exit(1)

    def showsyntaxerror(self, filename=None, **kwargs):
        super().showsyntaxerror(filename, **kwargs)
        sys.exit(1)

prompt = Prompt()
for block in open(sys.argv[1]).read().split("\0"):
    more = False
    for line in block.splitlines():
        more = prompt.push(line)
    if more:
        prompt.push("")
"#;

#[test]
fn the_readme_quick_start_runs_word_for_word_against_a_fresh_server() {
    let Some(sdk) = prerequisites() else { return };
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let all = blocks(&readme);
    let run =
        |lang: &str| -> Vec<&Block> { all.iter().filter(|b| b.lang == lang && !b.skip).collect() };
    let (shell, python) = (run("sh"), run("python"));
    // Guards against a README edit (or a parser bug) that silently runs nothing.
    assert!(shell.len() >= 4, "shell blocks found: {}", shell.len());
    assert!(python.len() >= 4, "Python blocks found: {}", python.len());
    assert!(all.iter().any(|b| b.skip), "the skip marker is recognised");

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    // The sample log lines are what a first start prints, but for times, keys and ids.
    let sample = all
        .iter()
        .find(|b| b.lang.is_empty() && b.text.contains("tessera_server::startup"))
        .expect("the README shows the first start's log");
    let log = server.log.lock().unwrap().clone();
    for line in sample.text.lines() {
        assert!(
            log.lines().any(|l| log_shape(l) == log_shape(line)),
            "the README's log line\n{line}\nis not printed by the server:\n{log}"
        );
    }
    let here = |text: &str| text.replace(README_ADDR, &server.addr);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tessera")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    // The shell blocks, as one pasted session; `set -e` stops at the first failing command.
    let env_file = dir.path().join("shell.env");
    let mut script = String::from("set -euo pipefail\n");
    for b in &shell {
        script.push_str(&here(&b.text));
    }
    script.push_str("env -0 > \"$README_ENV_OUT\"\n");
    let out = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path())
        .env("PATH", &path)
        .env("README_ENV_OUT", &env_file)
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_MASTER_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the README's shell blocks failed:\n{}\n--- server log\n{}",
        output_text(&out),
        server.log.lock().unwrap()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("user_01")), "{stdout}");
    assert!(
        stdout.lines().any(|l| l == "true"),
        "the code was valid: {stdout}"
    );

    // The environment the shell left behind, which the Python session inherits.
    let shell_env: Vec<(String, String)> = std::fs::read(&env_file)
        .unwrap()
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    assert!(
        shell_env
            .iter()
            .any(|(k, v)| k == "WORKOS_API_KEY" && v.starts_with("sk_")),
        "the shell exported the key"
    );

    let program = python.iter().map(|b| here(&b.text)).collect::<String>();
    let file = dir.path().join("readme.py");
    std::fs::write(&file, &program).unwrap();

    // Undefined names anywhere, also on paths this run does not take.
    let lint = Command::new("python3")
        .args(["-m", "pyflakes"])
        .arg(&file)
        .env("PYTHONPATH", sdk.join("pyflakes"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&lint.stdout);
    let problems: Vec<&str> = report
        .lines()
        // Blocks are separate examples: an import used only in the prose, or repeated by a
        // later example, is fine; undefined names and syntax errors are not.
        .filter(|l| !l.contains("imported but unused") && !l.contains("redefinition of unused"))
        .collect();
    assert!(
        // Exit status 1 only means "messages" (the tolerated ones above); anything on stderr
        // (a syntax error, or pyflakes not installed) fails.
        problems.is_empty() && lint.stderr.is_empty() && lint.status.code().is_some_and(|c| c <= 1),
        "pyflakes on the README's Python:\n{}",
        output_text(&lint)
    );

    // Run at a Python prompt, block by block, as pasted: `code.InteractiveConsole` has the
    // prompt's rules (a blank line ends a compound statement, one statement at a time).
    let pasted = dir.path().join("pasted.txt");
    std::fs::write(
        &pasted,
        python
            .iter()
            .map(|b| here(&b.text))
            .collect::<Vec<_>>()
            .join("\0"),
    )
    .unwrap();
    let out = Command::new("python3")
        .args(["-c", PROMPT, pasted.to_str().unwrap()])
        .current_dir(dir.path())
        .env_clear()
        .envs(shell_env)
        .env("PYTHONPATH", sdk.join("python-v5"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the README's Python blocks failed:\n{}\n--- server log\n{}",
        output_text(&out),
        server.log.lock().unwrap()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("user_01") && l.ends_with(" Password")),
        "signed in with password and TOTP: {stdout}"
    );
    assert!(
        stdout.contains(&format!("'iss': 'http://{}'", server.addr)),
        "the token verified: {stdout}"
    );
}

#[test]
fn readme_blocks_are_found_in_order_with_their_skip_marks() {
    let md = "text\n<!-- readme-test: skip (why) -->\n```sh\nskipped\n```\n\n```sh\nrun 1\n```\nprose\n```python\nrun 2\n```\n";
    let b = blocks(md);
    let seen: Vec<(&str, &str, bool)> = b
        .iter()
        .map(|b| (b.lang.as_str(), b.text.as_str(), b.skip))
        .collect();
    assert_eq!(
        seen,
        [
            ("sh", "skipped\n", true),
            ("sh", "run 1\n", false),
            ("python", "run 2\n", false)
        ]
    );
}
