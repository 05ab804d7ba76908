//! Many nodes on one PostgreSQL (issue 13, point 3): two real `tessera` processes on one
//! fresh database with one master key. What several nodes must agree on (the replay guard,
//! single use, the attempt limit) is decided by the database, so it holds across them; what
//! a node caches or reads per request (settings, API keys, signing keys) reaches the other
//! node within its documented delay. Run only with `TESSERA_TEST_DATABASE_URL` (set but
//! unreachable fails, as every PostgreSQL test does).
//!
//! Processes read the wall clock, so a change made elsewhere is awaited with a bounded poll
//! ([`poll_until`]) of the documented delay plus a margin, never a sleep.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{test_master_key, Backend, TestDb};
use crate::process::{poll_until, totp_now, Api, ServerOptions, ServerProcess};

/// `--api-key-cache-ms` of the test nodes: short, so the revocation test takes well under a
/// second of waiting (the default is 1000 ms).
const API_KEY_CACHE_MS: u64 = 300;

/// What a node may take beyond a documented delay to show a change: a request or two on a
/// loaded machine.
const MARGIN: Duration = Duration::from_millis(2000);

/// Two nodes on one fresh PostgreSQL database; `None` without a test database.
struct Cluster {
    a: Api,
    b: Api,
    client_id: String,
    opts: ServerOptions,
    // Dropped in this order: the servers are killed before their database is dropped.
    _servers: (ServerProcess, ServerProcess),
    db: TestDb,
}

impl Cluster {
    async fn start() -> Option<Cluster> {
        let Some(db) = TestDb::new(Backend::Postgres).await else {
            eprintln!("TESSERA_TEST_DATABASE_URL unset: multi-node test not run");
            return None;
        };
        let opts = ServerOptions::new(db.url.expose(), Some(test_master_key()))
            .arg("--api-key-cache-ms", &API_KEY_CACHE_MS.to_string());
        // One after the other: the first start on an empty database makes the first API key.
        let first = ServerProcess::start(opts.clone());
        let key = first
            .first_key
            .clone()
            .unwrap_or_else(|| first.fail("no first API key in the log"));
        let second = ServerProcess::start(opts.clone());
        let client_id = String::from_utf8(opts.cli(&["client-id"]).stdout)
            .unwrap()
            .trim()
            .to_owned();
        Some(Cluster {
            a: Api::new(&first, &key),
            b: Api::new(&second, &key),
            client_id,
            opts,
            _servers: (first, second),
            db,
        })
    }

    /// Node `i % 2`: spreads requests over both.
    fn node(&self, i: usize) -> &Api {
        if i.is_multiple_of(2) {
            &self.a
        } else {
            &self.b
        }
    }

    async fn sql_count(&self, sql: &str, bind: &str) -> i64 {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(self.db.url.expose())
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar(sql)
            .bind(bind)
            .fetch_one(&mut c)
            .await
            .unwrap();
        let _ = c.close().await;
        n
    }

    /// A password sign-in through `node`.
    async fn password(&self, node: &Api, email: &str) -> (StatusCode, Value) {
        let r = node
            .http
            .post(format!("{}/user_management/authenticate", node.base))
            .json(&json!({
                "client_id": self.client_id,
                "client_secret": node.key,
                "grant_type": "password",
                "email": email,
                "password": "correct horse battery",
            }))
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }
}

/// A standalone TOTP factor enrolled through `node`: (id, secret).
async fn totp_factor(node: &Api) -> (String, String) {
    let (s, f) = node
        .post(
            "/auth/factors/enroll",
            json!({ "type": "totp", "totp_issuer": "Nodes", "totp_user": "n@example.com" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    (
        f["id"].as_str().unwrap().to_owned(),
        f["totp"]["secret"].as_str().unwrap().to_owned(),
    )
}

async fn challenge(node: &Api, factor_id: &str) -> String {
    let (s, c) = node
        .post(&format!("/auth/factors/{factor_id}/challenge"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    c["id"].as_str().unwrap().to_owned()
}

async fn verify(node: &Api, challenge_id: &str, code: &str) -> (StatusCode, Value) {
    node.post(
        &format!("/auth/challenges/{challenge_id}/verify"),
        json!({ "code": code }),
    )
    .await
}

/// Runs every future at once, each on its own task, and returns their outputs in order.
async fn all<T: Send + 'static>(
    futs: impl IntoIterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// The `kid` of an access token's header.
fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// Whether `node`'s JWKS verifies `token` (an independent JWT implementation).
async fn jwks_verifies(c: &Cluster, node: &Api, token: &str) -> bool {
    let (s, jwks) = node.get(&format!("/sso/jwks/{}", c.client_id)).await;
    assert_eq!(s, StatusCode::OK, "{jwks}");
    let kid = kid_of(token);
    let Some(jwk) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
    else {
        return false;
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[&c.client_id]);
    jsonwebtoken::decode::<Value>(token, &key, &v).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_verified_on_one_node_is_a_replay_on_the_other() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let (fid, secret) = totp_factor(&c.a).await;
    let (code, _) = totp_now(&secret);
    let first = challenge(&c.a, &fid).await;
    let (s, v) = verify(&c.a, &first, &code).await;
    assert_eq!((s, &v["valid"]), (StatusCode::CREATED, &json!(true)), "{v}");

    let second = challenge(&c.b, &fid).await;
    let (s, v) = verify(&c.b, &second, &code).await;
    assert_eq!(
        (s, &v["valid"]),
        (StatusCode::CREATED, &json!(false)),
        "the same code on the other node is a replay: {v}"
    );
    let (s, v) = verify(&c.b, &first, &code).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("authentication_challenge_previously_verified")
        ),
        "a challenge verified on A is used up on B: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_parallel_verifies_of_one_code_over_two_nodes_give_exactly_one_success() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let (fid, secret) = totp_factor(&c.a).await;
    let mut challenges = Vec::new();
    for i in 0..20 {
        challenges.push(challenge(c.node(i), &fid).await);
    }
    let (code, _) = totp_now(&secret);
    let results = all(challenges.iter().enumerate().map(|(i, id)| {
        let (node, id, code) = (c.node(i).clone(), id.clone(), code.clone());
        async move { verify(&node, &id, &code).await }
    }))
    .await;
    let valid = results
        .iter()
        .filter(|(s, v)| *s == StatusCode::CREATED && v["valid"] == true)
        .count();
    let replays = results
        .iter()
        .filter(|(s, v)| *s == StatusCode::CREATED && v["valid"] == false)
        .count();
    assert_eq!((valid, replays), (1, 19), "{results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_parallel_wrong_codes_on_one_challenge_over_two_nodes_evaluate_at_most_five() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let (fid, secret) = totp_factor(&c.b).await;
    let id = challenge(&c.a, &fid).await;
    // Codes that no step in or near the window accepts.
    let s = tessera_core::totp::TotpSecret::from_base32(&secret).unwrap();
    let (_, step) = totp_now(&secret);
    let near: Vec<String> = (step - 3..=step + 3)
        .map(|st| tessera_core::totp::code_for_step(&s, st))
        .collect();
    let wrong: Vec<String> = (0..1_000_000u32)
        .step_by(7919)
        .map(|n| format!("{n:06}"))
        .filter(|w| !near.contains(w))
        .take(30)
        .collect();
    let results = all(wrong.iter().enumerate().map(|(i, w)| {
        let (node, id, w) = (c.node(i).clone(), id.clone(), w.clone());
        async move { verify(&node, &id, &w).await }
    }))
    .await;
    let evaluated = results
        .iter()
        .filter(|(s, v)| *s == StatusCode::CREATED && v["valid"] == false)
        .count();
    let refused = results
        .iter()
        .filter(|(s, v)| {
            *s == StatusCode::BAD_REQUEST && v["code"] == "one_time_code_too_many_attempts"
        })
        .count();
    // The attempt limit is 5 codes per challenge (README, "Verification rules").
    assert_eq!((evaluated, refused), (5, 25), "{results:?}");
    let attempts = c
        .sql_count("SELECT attempts FROM auth_challenges WHERE id = $1", &id)
        .await;
    assert_eq!(attempts, 5, "the database counted exactly the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mfa_required_set_from_the_cli_reaches_both_nodes_at_their_next_sign_in() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let (s, u) =
        c.a.post(
            "/user_management/users",
            json!({ "email": "nodes@example.com", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    for node in [&c.a, &c.b] {
        let (s, v) = c.password(node, "nodes@example.com").await;
        assert_eq!(s, StatusCode::OK, "MFA not required yet: {v}");
    }
    c.opts.cli(&["settings", "mfa-required", "on"]);
    // Documented: running servers read the setting at each sign-in (no delay, no cache).
    for node in [&c.b, &c.a] {
        let (s, v) = c.password(node, "nodes@example.com").await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("mfa_enrollment")),
            "{}: {v}",
            node.base
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_revoked_from_the_cli_is_refused_by_both_nodes_within_the_cache_time() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let out = String::from_utf8(
        c.opts
            .cli(&["api-keys", "create", "--name", "second"])
            .stdout,
    )
    .unwrap();
    let mut lines = out.lines();
    let key = lines.next().unwrap().to_owned();
    let key_id = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    let nodes = [
        Api {
            key: key.clone(),
            ..c.a.clone()
        },
        Api {
            key: key.clone(),
            ..c.b.clone()
        },
    ];
    // Both nodes read the key now, so each holds it in its cache when it is revoked.
    for n in &nodes {
        assert_eq!(n.get("/user_management/users").await.0, StatusCode::OK);
    }
    c.opts.cli(&["api-keys", "revoke", &key_id]);
    let limit = Duration::from_millis(API_KEY_CACHE_MS) + MARGIN;
    for n in &nodes {
        poll_until(limit, &format!("revocation on {}", n.base), || async {
            n.get("/user_management/users").await.0 == StatusCode::UNAUTHORIZED
        })
        .await;
    }
    // And it stays refused (no node serves it from a stale copy later).
    for n in &nodes {
        assert_eq!(
            n.get("/user_management/users").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        c.a.get("/user_management/users").await.0,
        StatusCode::OK,
        "other keys still work"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_rotated_from_the_cli_signs_the_next_token_on_both_nodes() {
    let Some(c) = Cluster::start().await else {
        return;
    };
    let (s, u) =
        c.b.post(
            "/user_management/users",
            json!({ "email": "keys@example.com", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let mut before = Vec::new();
    for node in [&c.a, &c.b] {
        let (s, v) = c.password(node, "keys@example.com").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        before.push(v["access_token"].as_str().unwrap().to_owned());
    }
    let old_kid = kid_of(&before[0]);
    assert_eq!(kid_of(&before[1]), old_kid, "one active key for both nodes");

    let out = c.opts.cli(&["signing-keys", "rotate"]);
    let new_kid = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_ne!(new_kid, old_kid);
    // Documented: running servers sign with it from the next token on (read per token).
    for (i, node) in [&c.b, &c.a].into_iter().enumerate() {
        let (s, v) = c.password(node, "keys@example.com").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let token = v["access_token"].as_str().unwrap();
        assert_eq!(kid_of(token), new_kid, "{}", node.base);
        // Each node's JWKS verifies the other's new token, and still the old ones.
        let other = [&c.a, &c.b][i];
        assert!(jwks_verifies(&c, other, token).await, "{}", other.base);
        for t in &before {
            assert!(jwks_verifies(&c, node, t).await, "old tokens stay valid");
        }
    }
}
