//! Sign-in state: environment settings, password throttling, signing keys, pending tokens,
//! sessions and rotating refresh tokens. Every single-use rule is one conditional statement.

use tessera_core::limits::Rate;
use tessera_core::Error;
use tessera_core::Timestamp;

use crate::db::call;
use crate::sql::{args, Conn, Tx};
use crate::Store;

#[derive(Debug, Clone, PartialEq)]
pub struct SigningKeyRow {
    pub kid: String,
    pub secret_key_id: String,
    pub secret_sealed: Vec<u8>,
    pub public_jwk: String,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
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
    /// The token was fresh and is now used, replaced by the next one; the session (id, user
    /// id) goes on.
    Rotated { session_id: String, user_id: String },
    /// The token was used moments ago, by the same client, and is presented again within
    /// the grace: the pair that rotation issued, sealed (see [`NextRefresh`]). Nothing was
    /// written.
    Replayed {
        session_id: String,
        user_id: String,
        key_id: String,
        sealed: Vec<u8>,
    },
    /// The token had been used before (after the grace, or by another client): the session
    /// is now revoked.
    ReuseDetected { session_id: String, user_id: String },
    /// Unknown token, or its session is revoked.
    Invalid,
}

/// A presented refresh token that is known and whose session is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRow {
    pub session_id: String,
    pub user_id: String,
    pub used_at: Option<Timestamp>,
}

crate::sql::from_row!(RefreshTokenRow {
    session_id,
    user_id,
    used_at
});

/// The rotation a refresh prepares before it presents the token: the next token's hash, and
/// the answer (access and refresh token) sealed for replays within the grace.
#[derive(Debug, Clone, Copy)]
pub struct NextRefresh<'a> {
    pub hash: &'a [u8],
    /// The answer may be given again until then, to `client` only.
    pub grace_until: Timestamp,
    pub client: &'a str,
    pub key_id: &'a str,
    pub sealed: &'a [u8],
}

/// What a used token remembers of its rotation.
struct UsedToken {
    session_id: String,
    user_id: String,
    revoked_at: Option<Timestamp>,
    grace_until: Option<Timestamp>,
    grace_client: Option<String>,
    grace_key_id: Option<String>,
    grace_sealed: Option<Vec<u8>>,
}

crate::sql::from_row!(UsedToken {
    session_id,
    user_id,
    revoked_at,
    grace_until,
    grace_client,
    grace_key_id,
    grace_sealed
});

const KEY_COLS: &str = "kid, secret_key_id, secret_sealed, public_jwk, created_at, retired_at";
/// `$1` key, `$2` now, `$3` interval, `$4` window; no row returned means the limit is reached.
/// The GCRA is the SQL functions `tessera_gcra_*` (see `tessera_core::limits`).
const PASSWORD_CHARGE: &str =
    "INSERT INTO password_limits (limit_key, tat) VALUES ($1, tessera_gcra_next($2, $2, $3)) \
     ON CONFLICT (limit_key) DO UPDATE SET tat = tessera_gcra_next(password_limits.tat, $2, $3) \
     WHERE tessera_gcra_allows(password_limits.tat, $2, $3, $4) RETURNING tat";

impl Store {
    pub async fn set_mfa_required(&self, on: bool) -> Result<(), Error> {
        self.write_exec(
            "UPDATE environment SET mfa_required = $1 WHERE id = 1",
            args![on],
        )
        .await?;
        Ok(())
    }

    /// Charges one password attempt to every `(key, rate)` before the password is checked, in
    /// one transaction of conditional upserts: parallel attempts cannot overshoot a limit.
    /// `Err(retry_after_secs)` when any key is at its limit (nothing is charged then). A
    /// successful sign-in refunds its charge with [`Store::refund_password_attempt`].
    pub async fn charge_password_attempt(
        &self,
        keys: &[(&str, Rate)],
        now: Timestamp,
    ) -> Result<Result<(), i64>, Error> {
        call!(self, transaction, |c| charge_password_attempt(c, keys, now))
    }

    /// Gives back the charge of an attempt that succeeded: only failures count.
    pub async fn refund_password_attempt(&self, keys: &[(&str, Rate)]) -> Result<(), Error> {
        call!(self, transaction, |c| refund_password_attempt(c, keys))
    }

    pub async fn set_last_sign_in(&self, user_id: &str, now: Timestamp) -> Result<(), Error> {
        self.write_exec(
            "UPDATE users SET last_sign_in_at = $2 WHERE id = $1",
            args![user_id, now],
        )
        .await?;
        Ok(())
    }

    // ---- signing keys ------------------------------------------------------------------

    pub async fn insert_signing_key(&self, k: &SigningKeyRow) -> Result<(), Error> {
        let sql = format!("INSERT INTO signing_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6)");
        self.write_exec(
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
    }

    /// The newest unretired key.
    pub async fn find_active_signing_key(&self) -> Result<Option<SigningKeyRow>, Error> {
        let sql = format!("SELECT {KEY_COLS} FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC, kid DESC LIMIT 1");
        self.read_opt(&sql, &[]).await
    }

    /// Keys to publish: unretired ones and those retired after `retired_since`.
    pub async fn published_signing_keys(
        &self,
        retired_since: Timestamp,
    ) -> Result<Vec<SigningKeyRow>, Error> {
        let sql = format!("SELECT {KEY_COLS} FROM signing_keys WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid DESC");
        self.read_all(&sql, args![retired_since]).await
    }

    /// Retires every active key and inserts `k` as the new one, in one transaction: a
    /// reader never sees a moment without an active key (a refresh in between once failed
    /// with "no signing key").
    pub async fn rotate_signing_key(&self, k: &SigningKeyRow, now: Timestamp) -> Result<(), Error> {
        let sql = format!("INSERT INTO signing_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6)");
        call!(self, transaction, |c| rotate_signing_key(c, &sql, k, now))
    }

    // ---- pending tokens ----------------------------------------------------------------

    pub async fn insert_pending_token(
        &self,
        hash: &[u8],
        user_id: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), Error> {
        self.write_exec("INSERT INTO pending_tokens (token_hash, user_id, expires_at, used_at, created_at) VALUES ($1, $2, $3, NULL, $4)", args![hash, user_id, expires_at, now]).await?;
        Ok(())
    }

    /// The user of a pending token that is unused and unexpired (without consuming it).
    pub async fn find_pending_user(
        &self,
        hash: &[u8],
        now: Timestamp,
    ) -> Result<Option<String>, Error> {
        self.read_opt("SELECT user_id FROM pending_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2", args![hash, now]).await
    }

    /// Consumes a pending token: true for exactly one caller while it is unused and unexpired.
    pub async fn consume_pending_token(
        &self,
        hash: &[u8],
        user_id: &str,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let n = self.write_exec("UPDATE pending_tokens SET used_at = $3 WHERE token_hash = $1 AND user_id = $2 AND used_at IS NULL AND expires_at > $3", args![hash, user_id, now]).await?;
        Ok(n == 1)
    }

    // ---- sessions ----------------------------------------------------------------------

    /// Creates a session with its first refresh token, and stamps the user's last sign-in.
    pub async fn create_session(&self, n: &crate::NewSession<'_>) -> Result<(), Error> {
        call!(self, transaction, |c| create_session(c, n))
    }

    /// The session and user of a refresh token, when its session is live: not revoked, not
    /// past its `expires_at`, and active after `idle_since` (whether or not the token was
    /// used: see `used_at`). Read before a refresh, which mints the next access token for
    /// this session before it presents the token.
    pub async fn find_refresh_token(
        &self,
        hash: &[u8],
        now: Timestamp,
        idle_since: Timestamp,
    ) -> Result<Option<RefreshTokenRow>, Error> {
        const SQL: &str = "SELECT rt.session_id, s.user_id, rt.used_at FROM refresh_tokens rt \
             JOIN sessions s ON s.id = rt.session_id WHERE rt.token_hash = $1 \
             AND s.revoked_at IS NULL AND s.expires_at > $2 AND s.last_active_at > $3";
        self.read_opt(SQL, args![hash, now, idle_since]).await
    }

    /// Presents a refresh token, in one transaction. A fresh one is marked used and replaced
    /// by `next` (which also keeps the sealed answer for replays), and its session's
    /// `last_active_at` moves to `now`. A session past its `expires_at`, or inactive since
    /// `idle_since`, refreshes no more. A used one presented again by the same client before
    /// its grace is over gets [`RefreshOutcome::Replayed`]; any other reuse revokes the
    /// session (theft or replay). `next` is `None` when the caller already knows the token is
    /// used.
    ///
    /// Parallel presentations of one token: the conditional `UPDATE` lets exactly one rotate;
    /// the others wait for its commit (PostgreSQL row lock, SQLite's single writer), find the
    /// token used within the grace, and get the same answer.
    pub async fn rotate_refresh_token(
        &self,
        hash: &[u8],
        next: Option<&NextRefresh<'_>>,
        client: &str,
        now: Timestamp,
        idle_since: Timestamp,
    ) -> Result<RefreshOutcome, Error> {
        call!(self, transaction, |c| rotate_refresh_token(
            c, hash, next, client, now, idle_since
        ))
    }

    /// Erases every sealed refresh answer whose grace is over (the periodic sweep).
    pub async fn clear_expired_refresh_grace(&self, now: Timestamp) -> Result<u64, Error> {
        self.write_exec(
            "UPDATE refresh_tokens SET grace_key_id = NULL, grace_sealed = NULL \
                 WHERE grace_sealed IS NOT NULL AND grace_until <= $1",
            args![now],
        )
        .await
    }

    pub async fn find_session_revoked_at(
        &self,
        session_id: &str,
    ) -> Result<Option<Option<i64>>, Error> {
        self.read_opt(
            "SELECT revoked_at FROM sessions WHERE id = $1",
            args![session_id],
        )
        .await
    }
}

async fn charge_password_attempt<C: Conn>(
    c: &mut C,
    keys: &[(&str, Rate)],
    now: Timestamp,
) -> Result<Tx<Result<(), i64>>, Error> {
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
            return Ok(Tx::Rollback(Err(rate.retry_after_secs(tat, now.millis()))));
        }
    }
    Ok(Tx::Commit(Ok(())))
}

async fn refund_password_attempt<C: Conn>(
    c: &mut C,
    keys: &[(&str, Rate)],
) -> Result<Tx<()>, Error> {
    for &(key, rate) in keys {
        c.exec(
            "UPDATE password_limits SET tat = tat - $2 WHERE limit_key = $1",
            args![key, rate.interval_ms()],
        )
        .await?;
    }
    Ok(Tx::Commit(()))
}

async fn rotate_signing_key<C: Conn>(
    c: &mut C,
    sql: &str,
    k: &SigningKeyRow,
    now: Timestamp,
) -> Result<Tx<()>, Error> {
    c.exec(
        "UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL",
        args![now],
    )
    .await?;
    c.exec(
        sql,
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
    Ok(Tx::Commit(()))
}

async fn create_session<C: Conn>(c: &mut C, n: &crate::NewSession<'_>) -> Result<Tx<()>, Error> {
    c.exec("INSERT INTO sessions (id, user_id, created_at, revoked_at, auth_method, ip_address, user_agent, expires_at, last_active_at, updated_at, end_reason, browser_session_id) VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $3, $3, NULL, $8)", args![n.id, n.user_id, n.now, n.auth_method, n.ip_address, n.user_agent, n.expires_at, n.browser_session_id]).await?;
    c.exec("INSERT INTO refresh_tokens (token_hash, session_id, created_at, used_at) VALUES ($1, $2, $3, NULL)", args![n.refresh_hash, n.id, n.now]).await?;
    c.exec(
        "UPDATE users SET last_sign_in_at = $2 WHERE id = $1",
        args![n.user_id, n.now],
    )
    .await?;
    Ok(Tx::Commit(()))
}

async fn rotate_refresh_token<C: Conn>(
    c: &mut C,
    hash: &[u8],
    next: Option<&NextRefresh<'_>>,
    client: &str,
    now: Timestamp,
    idle_since: Timestamp,
) -> Result<Tx<RefreshOutcome>, Error> {
    if let Some(next) = next {
        let used: Option<String> = c
                    .opt(
                        "UPDATE refresh_tokens SET used_at = $2, grace_until = $3, grace_client = $4, \
                         grace_key_id = $5, grace_sealed = $6 WHERE token_hash = $1 AND used_at IS NULL \
                         AND session_id IN (SELECT id FROM sessions WHERE revoked_at IS NULL \
                         AND expires_at > $2 AND last_active_at > $7) RETURNING session_id",
                        args![hash, now, next.grace_until, next.client, next.key_id, next.sealed, idle_since],
                    )
                    .await?;
        if let Some(session_id) = used {
            c.exec(
                "UPDATE sessions SET last_active_at = $2, updated_at = $2 WHERE id = $1",
                args![&session_id, now],
            )
            .await?;
            c.exec("INSERT INTO refresh_tokens (token_hash, session_id, created_at, used_at) VALUES ($1, $2, $3, NULL)", args![next.hash, &session_id, now]).await?;
            // Sealed answers of this session whose grace is over are erased here;
            // the periodic sweep catches sessions that are not refreshed again.
            c.exec(
                "UPDATE refresh_tokens SET grace_key_id = NULL, grace_sealed = NULL \
                         WHERE session_id = $1 AND grace_sealed IS NOT NULL AND grace_until <= $2",
                args![&session_id, now],
            )
            .await?;
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
    }
    let used: Option<UsedToken> = c
                .opt(
                    "SELECT rt.session_id, s.user_id, s.revoked_at, rt.grace_until, rt.grace_client, \
                     rt.grace_key_id, rt.grace_sealed FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id \
                     WHERE rt.token_hash = $1 AND rt.used_at IS NOT NULL",
                    args![hash],
                )
                .await?;
    let Some(used) = used else {
        return Ok(Tx::Rollback(RefreshOutcome::Invalid));
    };
    if used.revoked_at.is_some() {
        return Ok(Tx::Rollback(RefreshOutcome::Invalid));
    }
    let in_grace = used.grace_until.is_some_and(|until| now < until)
        && used.grace_client.as_deref() == Some(client);
    if let (true, Some(key_id), Some(sealed)) = (in_grace, used.grace_key_id, used.grace_sealed) {
        return Ok(Tx::Rollback(RefreshOutcome::Replayed {
            session_id: used.session_id,
            user_id: used.user_id,
            key_id,
            sealed,
        }));
    }
    let n = c
                .exec(
                    "UPDATE sessions SET revoked_at = $2, updated_at = $2, end_reason = 'refresh_token_reuse' WHERE id = $1 AND revoked_at IS NULL",
                    args![&used.session_id, now],
                )
                .await?;
    // A revoked session's sealed answers are of no use to anyone.
    c.exec(
                "UPDATE refresh_tokens SET grace_key_id = NULL, grace_sealed = NULL WHERE session_id = $1 AND grace_sealed IS NOT NULL",
                args![&used.session_id],
            )
            .await?;
    Ok(Tx::Commit(if n == 1 {
        RefreshOutcome::ReuseDetected {
            session_id: used.session_id,
            user_id: used.user_id,
        }
    } else {
        RefreshOutcome::Invalid
    }))
}
