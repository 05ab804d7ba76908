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
    ReuseDetected,
    /// Unknown token, or its session is revoked.
    Invalid,
}

const KEY_COLS: &str = "kid, secret_key_id, secret_sealed, public_jwk, created_at, retired_at";
const IP_GATE: &str =
    "INSERT INTO ip_password_limits (ip, tat) VALUES ($1, $2) ON CONFLICT (ip) DO NOTHING";

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

    /// Whether the account and the IP may try a password now (no charge).
    pub async fn password_gate(
        &self,
        user_id: Option<&str>,
        ip: &str,
        now: i64,
        account: Rate,
        per_ip: Rate,
    ) -> Result<Option<i64>, Error> {
        let (user_tat, ip_tat) = on_db!(self, read, |pool| {
            let u: Option<i64> = match user_id {
                Some(id) => sqlx::query_scalar("SELECT password_fail_tat FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .map_err(internal)?,
                None => None,
            };
            let i: Option<i64> =
                sqlx::query_scalar("SELECT tat FROM ip_password_limits WHERE ip = $1")
                    .bind(ip)
                    .fetch_optional(pool)
                    .await
                    .map_err(internal)?;
            Ok::<_, Error>((u, i))
        })?;
        let mut wait = None;
        if let Some(t) = user_tat.filter(|t| !account.allows(*t, now)) {
            wait = Some(account.retry_after_secs(t, now));
        }
        if let Some(t) = ip_tat.filter(|t| !per_ip.allows(*t, now)) {
            wait = Some(wait.unwrap_or(0).max(per_ip.retry_after_secs(t, now)));
        }
        Ok(wait)
    }

    /// Charges one password failure to the account (if known) and the IP, atomically each.
    pub async fn charge_password_failure(
        &self,
        user_id: Option<&str>,
        ip: &str,
        now: i64,
        account: Rate,
        per_ip: Rate,
    ) -> Result<(), Error> {
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(internal)?;
            if let Some(id) = user_id {
                sqlx::query("UPDATE users SET password_fail_tat = (CASE WHEN password_fail_tat > $2 THEN password_fail_tat ELSE $2 END) + $3 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .bind(account.interval_ms())
                    .execute(&mut *tx)
                    .await
                    .map_err(internal)?;
            }
            sqlx::query(IP_GATE)
                .bind(ip)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(internal)?;
            sqlx::query("UPDATE ip_password_limits SET tat = (CASE WHEN tat > $2 THEN tat ELSE $2 END) + $3 WHERE ip = $1")
                .bind(ip)
                .bind(now)
                .bind(per_ip.interval_ms())
                .execute(&mut *tx)
                .await
                .map_err(internal)?;
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
                RefreshOutcome::ReuseDetected
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
