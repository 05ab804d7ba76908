//! Sign-in state: environment settings, password throttling, signing keys, pending tokens,
//! sessions and rotating refresh tokens. Every single-use rule is one conditional statement.

use tessera_core::limits::Rate;
use tessera_core::Error;

use crate::db::on_db;
use crate::sql::{args, Tx};
use crate::Store;

#[derive(Debug, Clone, PartialEq)]
pub struct SigningKeyRow {
    pub kid: String,
    pub secret_key_id: String,
    pub secret_sealed: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

crate::sql::from_row!(SigningKeyRow {
    kid,
    secret_key_id,
    secret_sealed,
    public_jwk,
    created_at,
    retired_at
});

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
/// The GCRA is the SQL functions `tessera_gcra_*` (see `tessera_core::limits`).
const PASSWORD_CHARGE: &str =
    "INSERT INTO password_limits (limit_key, tat) VALUES ($1, tessera_gcra_next($2, $2, $3)) \
     ON CONFLICT (limit_key) DO UPDATE SET tat = tessera_gcra_next(password_limits.tat, $2, $3) \
     WHERE tessera_gcra_allows(password_limits.tat, $2, $3, $4) RETURNING tat";

impl Store {
    pub async fn set_mfa_required(&self, on: bool) -> Result<(), Error> {
        on_db!(self, write, |c| {
            c.exec(
                "UPDATE environment SET mfa_required = $1 WHERE id = 1",
                args![on],
            )
            .await?;
            Ok(())
        })
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
        on_db!(self, transaction, |c| {
            for &(key, rate) in keys {
                let tat: Option<i64> = c
                    .opt(
                        PASSWORD_CHARGE,
                        args![key, now, rate.interval_ms(), rate.window_ms],
                    )
                    .await?;
                if tat.is_none() {
                    let tat: i64 = c
                        .one(
                            "SELECT tat FROM password_limits WHERE limit_key = $1",
                            args![key],
                        )
                        .await?;
                    return Ok(Tx::Rollback(Err(rate.retry_after_secs(tat, now))));
                }
            }
            Ok(Tx::Commit(Ok(())))
        })
    }

    /// Gives back the charge of an attempt that succeeded: only failures count.
    pub async fn refund_password_attempt(&self, keys: &[(&str, Rate)]) -> Result<(), Error> {
        on_db!(self, transaction, |c| {
            for &(key, rate) in keys {
                c.exec(
                    "UPDATE password_limits SET tat = tat - $2 WHERE limit_key = $1",
                    args![key, rate.interval_ms()],
                )
                .await?;
            }
            Ok(Tx::Commit(()))
        })
    }

    pub async fn set_last_sign_in(&self, user_id: &str, now: i64) -> Result<(), Error> {
        on_db!(self, write, |c| {
            c.exec(
                "UPDATE users SET last_sign_in_at = $2 WHERE id = $1",
                args![user_id, now],
            )
            .await?;
            Ok(())
        })
    }

    // ---- signing keys ------------------------------------------------------------------

    pub async fn insert_signing_key(&self, k: &SigningKeyRow) -> Result<(), Error> {
        let sql = format!("INSERT INTO signing_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6)");
        on_db!(self, write, |c| {
            c.exec(
                &sql,
                args![
                    &k.kid,
                    &k.secret_key_id,
                    &k.secret_sealed,
                    &k.public_jwk,
                    k.created_at,
                    k.retired_at
                ],
            )
            .await?;
            Ok(())
        })
    }

    /// The newest unretired key.
    pub async fn find_active_signing_key(&self) -> Result<Option<SigningKeyRow>, Error> {
        let sql = format!("SELECT {KEY_COLS} FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC, kid DESC LIMIT 1");
        on_db!(self, read, |c| Ok(c.opt(&sql, &[]).await?))
    }

    /// Keys to publish: unretired ones and those retired after `retired_since`.
    pub async fn published_signing_keys(
        &self,
        retired_since: i64,
    ) -> Result<Vec<SigningKeyRow>, Error> {
        let sql = format!("SELECT {KEY_COLS} FROM signing_keys WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid DESC");
        on_db!(self, read, |c| Ok(c
            .all(&sql, args![retired_since])
            .await?))
    }

    /// Retires every active key (a rotation then inserts the new one).
    pub async fn retire_signing_keys(&self, now: i64) -> Result<(), Error> {
        on_db!(self, write, |c| {
            c.exec(
                "UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL",
                args![now],
            )
            .await?;
            Ok(())
        })
    }

    // ---- pending tokens ----------------------------------------------------------------

    pub async fn insert_pending_token(
        &self,
        hash: &[u8],
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), Error> {
        on_db!(self, write, |c| {
            c.exec("INSERT INTO pending_tokens (token_hash, user_id, expires_at, used_at, created_at) VALUES ($1, $2, $3, NULL, $4)", args![hash, user_id, expires_at, now]).await?;
            Ok(())
        })
    }

    /// The user of a pending token that is unused and unexpired (without consuming it).
    pub async fn find_pending_user(&self, hash: &[u8], now: i64) -> Result<Option<String>, Error> {
        on_db!(self, read, |c| {
            Ok(c.opt("SELECT user_id FROM pending_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2", args![hash, now]).await?)
        })
    }

    /// Consumes a pending token: true for exactly one caller while it is unused and unexpired.
    pub async fn consume_pending_token(
        &self,
        hash: &[u8],
        user_id: &str,
        now: i64,
    ) -> Result<bool, Error> {
        let n = on_db!(self, write, |c| {
            Ok(c.exec("UPDATE pending_tokens SET used_at = $3 WHERE token_hash = $1 AND user_id = $2 AND used_at IS NULL AND expires_at > $3", args![hash, user_id, now]).await?)
        })?;
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
        on_db!(self, transaction, |c| {
            c.exec("INSERT INTO sessions (id, user_id, created_at, revoked_at) VALUES ($1, $2, $3, NULL)", args![session_id, user_id, now]).await?;
            c.exec("INSERT INTO refresh_tokens (token_hash, session_id, created_at, used_at) VALUES ($1, $2, $3, NULL)", args![refresh_hash, session_id, now]).await?;
            c.exec(
                "UPDATE users SET last_sign_in_at = $2 WHERE id = $1",
                args![user_id, now],
            )
            .await?;
            Ok(Tx::Commit(()))
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
        on_db!(self, transaction, |c| {
            let used: Option<String> = c
                .opt(
                    "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL \
                     AND session_id IN (SELECT id FROM sessions WHERE revoked_at IS NULL) RETURNING session_id",
                    args![hash, now],
                )
                .await?;
            if let Some(session_id) = used {
                c.exec("INSERT INTO refresh_tokens (token_hash, session_id, created_at, used_at) VALUES ($1, $2, $3, NULL)", args![next_hash, &session_id, now]).await?;
                let user_id: String = c
                    .one(
                        "SELECT user_id FROM sessions WHERE id = $1",
                        args![&session_id],
                    )
                    .await?;
                return Ok(Tx::Commit(RefreshOutcome::Rotated {
                    session_id,
                    user_id,
                }));
            }
            let known: Option<String> = c.opt("SELECT session_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL", args![hash]).await?;
            let Some(session_id) = known else {
                return Ok(Tx::Rollback(RefreshOutcome::Invalid));
            };
            let user_id: String = c
                .one(
                    "SELECT user_id FROM sessions WHERE id = $1",
                    args![&session_id],
                )
                .await?;
            let n = c
                .exec(
                    "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                    args![&session_id, now],
                )
                .await?;
            Ok(Tx::Commit(if n == 1 {
                RefreshOutcome::ReuseDetected {
                    session_id,
                    user_id,
                }
            } else {
                RefreshOutcome::Invalid
            }))
        })
    }

    pub async fn find_session_revoked_at(
        &self,
        session_id: &str,
    ) -> Result<Option<Option<i64>>, Error> {
        on_db!(self, read, |c| Ok(c
            .opt(
                "SELECT revoked_at FROM sessions WHERE id = $1",
                args![session_id]
            )
            .await?))
    }
}
