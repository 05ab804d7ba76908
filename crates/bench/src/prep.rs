//! Test data made over the public API before (and between) measured runs: users with a
//! password, TOTP factors with their secret and first challenge, extra challenges.
//!
//! Passwords are imported as one Argon2id PHC string computed here once (same parameters as
//! the server's), so making thousands of users costs no password hashing; signing in still
//! verifies the full Argon2id hash on the server.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use serde_json::json;
use tessera_core::totp::TotpSecret;

use crate::http::{Conn, Target};
use crate::pool::{lock, Factor};

/// Tasks used to prepare data.
const PREP_TASKS: usize = 32;

pub(crate) const PASSWORD: &str = "bench password 1234";

/// Everything the preparation calls need.
pub(crate) struct Prep {
    pub target: Target,
    /// Argon2id PHC string of [`PASSWORD`].
    pub password_hash: String,
    /// Makes emails unique across calls.
    next_user: AtomicUsize,
}

pub(crate) struct User {
    pub id: String,
    pub email: String,
}

/// Runs `f` over `items` on [`PREP_TASKS`] connections; results come back in no particular
/// order. The first error stops the preparation.
pub(crate) async fn parallel<I, R, F, Fut>(
    target: &Target,
    items: Vec<I>,
    f: F,
) -> anyhow::Result<Vec<R>>
where
    I: Send + 'static,
    R: Send + 'static,
    F: Fn(Conn, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (Conn, anyhow::Result<R>)> + Send,
{
    let n = items.len();
    let queue = Arc::new(std::sync::Mutex::new(items));
    let f = Arc::new(f);
    let mut tasks = Vec::new();
    for _ in 0..PREP_TASKS.min(n) {
        let mut conn = Conn::connect(target).await?;
        let queue = Arc::clone(&queue);
        let f = Arc::clone(&f);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let Some(item) = lock(&queue).pop() else {
                    break;
                };
                let (c, r) = f(conn, item).await;
                conn = c;
                out.push(r?);
            }
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

impl Prep {
    pub(crate) fn new(target: Target, password_hash: String) -> Self {
        Prep {
            target,
            password_hash,
            next_user: AtomicUsize::new(0),
        }
    }

    /// `n` users with the bench password, emails `LABEL-N@bench.example.com`.
    pub(crate) async fn users(&self, label: &str, n: usize) -> anyhow::Result<Vec<User>> {
        let first = self.next_user.fetch_add(n, Ordering::Relaxed);
        let hash = self.password_hash.clone();
        let items: Vec<String> = (first..first + n)
            .map(|i| format!("{label}-{i}@bench.example.com"))
            .collect();
        parallel(&self.target, items, move |mut conn, email| {
            let body = json!({
                "email": email,
                "password_hash": hash,
                "password_hash_type": "argon2",
            });
            async move {
                let r = async {
                    let v = conn
                        .post("/user_management/users", Bytes::from(body.to_string()))
                        .await?
                        .expect(201)
                        .context("creating a user")?;
                    let id = v["id"].as_str().context("user without id")?.to_owned();
                    anyhow::Ok(User { id, email })
                }
                .await;
                (conn, r)
            }
        })
        .await
    }

    /// One TOTP factor for each `(user id, email)`, each with the challenge enrolment makes.
    pub(crate) async fn enroll(&self, users: Vec<(String, String)>) -> anyhow::Result<Vec<Factor>> {
        parallel(
            &self.target,
            users,
            |mut conn, (user_id, email)| async move {
                let r = enroll_once(&mut conn, &user_id, email).await;
                (conn, r)
            },
        )
        .await
    }

    /// A new challenge for each factor id: `(factor id, challenge id)`.
    pub(crate) async fn challenges(
        &self,
        factor_ids: Vec<String>,
    ) -> anyhow::Result<Vec<(String, String)>> {
        parallel(&self.target, factor_ids, |mut conn, factor_id| async move {
            let r = async {
                let v = conn
                    .post(
                        &format!("/auth/factors/{factor_id}/challenge"),
                        Bytes::from_static(b"{}"),
                    )
                    .await?
                    .expect(201)
                    .context("creating a challenge")?;
                let id = v["id"].as_str().context("challenge without id")?.to_owned();
                anyhow::Ok((factor_id, id))
            }
            .await;
            (conn, r)
        })
        .await
    }
}

/// The body of an enrolment request.
pub(crate) const ENROLL_BODY: &[u8] = br#"{"type":"totp"}"#;

/// The factor (id, secret, first challenge) from an enrolment response.
pub(crate) fn factor_from_enrolment(
    v: &serde_json::Value,
    email: String,
) -> anyhow::Result<Factor> {
    let f = &v["authentication_factor"];
    let id = f["id"].as_str().context("factor without id")?.to_owned();
    let secret = f["totp"]["secret"]
        .as_str()
        .context("factor without secret")?;
    let secret = TotpSecret::from_base32(secret).map_err(|e| anyhow::anyhow!("secret: {e}"))?;
    let challenge = v["authentication_challenge"]["id"]
        .as_str()
        .context("enrolment without a challenge")?
        .to_owned();
    let mut factor = Factor::new(id, secret, email);
    factor
        .challenges
        .push_back((challenge, std::time::Instant::now()));
    Ok(factor)
}

pub(crate) async fn enroll_once(
    conn: &mut Conn,
    user_id: &str,
    email: String,
) -> anyhow::Result<Factor> {
    let v = conn
        .post(
            &format!("/user_management/users/{user_id}/auth_factors"),
            Bytes::from_static(ENROLL_BODY),
        )
        .await?
        .expect(201)
        .context("enrolling a factor")?;
    factor_from_enrolment(&v, email)
}
