//! Sign-in state: environment settings, password throttling, signing keys, pending tokens,
//! sessions and rotating refresh tokens. Every single-use rule is one conditional statement.

use tessera_core::limits::Rate;
use tessera_core::Error;

use crate::db::{internal, on_db};
use crate::Store;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub secret_key_id: String,
    pub secret_sealed: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was fresh and is now used; the session (id, user id) goes on.
    Rotated { session_id: String, user_id: String },
    /// The token had been used before: the session is now revoked.
    ReuseDetected { session_id: String, user_id: String },
    /// Unknown token, or its session is revoked.
    Invalid,
}

const KEY_COLS: &str = "kid, secret_key_id, secret_sealed, public_jwk, created_at, retired_at";
/// `$1` key, `$2` now, `$3` interval, `$4` window; no row returned means the limit is reached.
const PASSWORD_CHARGE: &str = "INSERT INTO password_limits (limit_key, tat) VALUES ($1, $2 + $3) \
     ON CONFLICT (limit_key) DO UPDATE SET tat = (CASE WHEN password_limits.tat > $2 THEN password_limits.tat ELSE $2 END) + $3 \
     WHERE (CASE WHEN password_limits.tat > $2 THEN password_limits.tat ELSE $2 END) + $3 - $2 <= $4 RETURNING tat";

impl Store {
    pub async fn set_mfa_required(&self, on: bool) -> Result<(), Error> {
        on_db!(self, write, |pool| sqlx::query(
            "UPDATE environment SET mfa_required = $1 WHERE id = 1"
        )
        .bind(on)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(internal))
    }

    /// Charges one password attempt to every `(key, rate)` before the password is checked, in
    /// one transaction of conditional upserts: parallel attempts cannot overshoot a limit.
    /// `Err(retry_after_secs)` when any key is at its limit (nothing is charged then). A
    /// successful sign-in refunds its charge with [`Store::refund_password_attempt`].
    pub async fn charge_password_attempt(
        &self,
        keys: &[(&str, Rate)],
        now: i64,
    ) -> Result<Result<(), i64>, Error> {
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(internal)?;
            for (key, rate) in keys {
                let tat: Option<i64> = sqlx::query_scalar(PASSWORD_CHARGE)
                    .bind(key)
                    .bind(now)
                    .bind(rate.interval_ms())
                    .bind(rate.window_ms)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(internal)?;
                if tat.is_none() {
                    drop(tx);
                    let tat: i64 =
                        sqlx::query_scalar("SELECT tat FROM password_limits WHERE limit_key = $1")
                            .bind(key)
                            .fetch_one(pool)
                            .await
                            .map_err(internal)?;
                    return Ok(Err(rate.retry_after_secs(tat, now)));
                }
            }
            tx.commit().await.map_err(internal)?;
            Ok(Ok(()))
        })
    }

    /// Gives back the charge of an attempt that succeeded: only failures count.
    pub async fn refund_password_attempt(&self, keys: &[(&str, Rate)]) -> Result<(), Error> {
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(internal)?;
            for (key, rate) in keys {
                sqlx::query("UPDATE password_limits SET tat = tat - $2 WHERE limit_key = $1")
                    .bind(key)
                    .bind(rate.interval_ms())
                    .execute(&mut *tx)
                    .await
                    .map_err(internal)?;
            }
            tx.commit().await.map_err(internal)
        })
    }

    pub async fn set_last_sign_in(&self, user_id: &str, now: i64) -> Result<(), Error> {
        on_db!(self, write, |pool| sqlx::query(
            "UPDATE users SET last_sign_in_at = $2 WHERE id = $1"
        )
        .bind(user_id)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(internal))
    }

    // ---- signing keys ------------------------------------------------------------------

    pub async fn insert_signing_key(&self, k: &SigningKeyRow) -> Result<(), Error> {
        on_db!(self, write, |pool| sqlx::query(&format!(
            "INSERT INTO signing_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&k.kid)
        .bind(&k.secret_key_id)
        .bind(&k.secret_sealed)
        .bind(&k.public_jwk)
        .bind(k.created_at)
        .bind(k.retired_at)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(internal))
    }

    /// The newest unretired key.
    pub async fn find_active_signing_key(&self) -> Result<Option<SigningKeyRow>, Error> {
        on_db!(self, read, |pool| {
            sqlx::query_as::<_, SigningKeyRow>(&format!(
            "SELECT {KEY_COLS} FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC, kid DESC LIMIT 1"
        ))
        .fetch_optional(pool)
        .await
        .map_err(internal)
        })
    }

    /// Keys to publish: unretired ones and those retired after `retired_since`.
    pub async fn published_signing_keys(
        &self,
        retired_since: i64,
    ) -> Result<Vec<SigningKeyRow>, Error> {
        on_db!(self, read, |pool| {
            sqlx::query_as::<_, SigningKeyRow>(&format!(
            "SELECT {KEY_COLS} FROM signing_keys WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid DESC"
        ))
        .bind(retired_since)
        .fetch_all(pool)
        .await
        .map_err(internal)
        })
    }

    /// Retires every active key (a rotation then inserts the new one).
    pub async fn retire_signing_keys(&self, now: i64) -> Result<(), Error> {
        on_db!(self, write, |pool| sqlx::query(
            "UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL"
        )
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(internal))
    }

    // ---- pending tokens ----------------------------------------------------------------

    pub async fn insert_pending_token(
        &self,
        hash: &[u8],
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), Error> {
        on_db!(self, write, |pool| {
            sqlx::query("INSERT INTO pending_tokens (token_hash, user_id, expires_at, used_at, created_at) VALUES ($1, $2, $3, NULL, $4)")
            .bind(hash)
            .bind(user_id)
            .bind(expires_at)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(internal)
        })
    }

    /// The user of a pending token that is unused and unexpired (without consuming it).
    pub async fn find_pending_user(&self, hash: &[u8], now: i64) -> Result<Option<String>, Error> {
        on_db!(self, read, |pool| {
            sqlx::query_scalar::<_, String>("SELECT user_id FROM pending_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2")
            .bind(hash)
            .bind(now)
            .fetch_optional(pool)
            .await
            .map_err(internal)
        })
    }

    /// Consumes a pending token: true for exactly one caller while it is unused and unexpired.
    pub async fn consume_pending_token(
        &self,
        hash: &[u8],
        user_id: &str,
        now: i64,
    ) -> Result<bool, Error> {
        let n = on_db!(self, write, |pool| {
            sqlx::query("UPDATE pending_tokens SET used_at = $3 WHERE token_hash = $1 AND user_id = $2 AND used_at IS NULL AND expires_at > $3")
            .bind(hash)
            .bind(user_id)
            .bind(now)
            .execute(pool)
            .await
            .map_err(internal)?
            .rows_affected()
        });
        Ok(n == 1)
    }

    // ---- sessions ----------------------------------------------------------------------

    /// Creates a session with its first refresh token, and stamps the user's last sign-in.
    pub async fn create_session(
        &self,
        session_id: &str,
        user_id: &str,
        refresh_hash: &[u8],
        now: i64,
    ) -> Result<(), Error> {
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(internal)?;
            sqlx::query("INSERT INTO sessions (id, user_id, created_at, revoked_at) VALUES ($1, $2, $3, NULL)")
                .bind(session_id)
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(internal)?;
            sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at, used_at) VALUES ($1, $2, $3, NULL)")
                .bind(refresh_hash)
                .bind(session_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(internal)?;
            sqlx::query("UPDATE users SET last_sign_in_at = $2 WHERE id = $1")
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(internal)?;
            tx.commit().await.map_err(internal)
        })
    }

    /// Presents a refresh token. A fresh one is marked used and replaced by `next_hash` in the
    /// same transaction; a used one revokes its session (reuse means theft or replay).
    pub async fn rotate_refresh_token(
        &self,
        hash: &[u8],
        next_hash: &[u8],
        now: i64,
    ) -> Result<RefreshOutcome, Error> {
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(internal)?;
            let used: Option<String> = sqlx::query_scalar(
                "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL \
                 AND session_id IN (SELECT id FROM sessions WHERE revoked_at IS NULL) RETURNING session_id",
            )
            .bind(hash)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(internal)?;
            if let Some(session_id) = used {
                sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at, used_at) VALUES ($1, $2, $3, NULL)")
                    .bind(next_hash)
                    .bind(&session_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(internal)?;
                let user_id: String =
                    sqlx::query_scalar("SELECT user_id FROM sessions WHERE id = $1")
                        .bind(&session_id)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(internal)?;
                tx.commit().await.map_err(internal)?;
                return Ok(RefreshOutcome::Rotated {
                    session_id,
                    user_id,
                });
            }
            let known: Option<String> = sqlx::query_scalar("SELECT session_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL")
                .bind(hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(internal)?;
            let Some(session_id) = known else {
                return Ok(RefreshOutcome::Invalid);
            };
            let user_id: String = sqlx::query_scalar("SELECT user_id FROM sessions WHERE id = $1")
                .bind(&session_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(internal)?;
            let n = sqlx::query(
                "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(&session_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(internal)?
            .rows_affected();
            tx.commit().await.map_err(internal)?;
            Ok(if n == 1 {
                RefreshOutcome::ReuseDetected {
                    session_id,
                    user_id,
                }
            } else {
                RefreshOutcome::Invalid
            })
        })
    }

    pub async fn find_session_revoked_at(
        &self,
        session_id: &str,
    ) -> Result<Option<Option<i64>>, Error> {
        on_db!(self, read, |pool| sqlx::query_scalar::<_, Option<i64>>(
            "SELECT revoked_at FROM sessions WHERE id = $1"
        )
        .bind(session_id)
        .fetch_optional(pool)
        .await
        .map_err(internal))
    }
}
