//! Hosted sign-in and the life of sessions: the redirect-URI allow-list, the sign-up setting,
//! authorization codes, Tessera's own browser sessions, and ending sessions (one session, or
//! all of a user's). Every single-use or ending rule is one conditional statement, so two
//! nodes (or two requests) can never both win.

use tessera_core::Error;
use tessera_core::Timestamp;

use crate::db::call;
use crate::list::{ById, ListParams, Page};
use crate::sql::{args, Conn, Tx};
use crate::Store;

/// A row of `sessions`. Whether it is `expired` is not stored: it follows from `expires_at`,
/// `last_active_at` and the inactivity timeout at the moment of reading.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    /// WorkOS's `auth_method` (`password`).
    pub auth_method: String,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The maximum age's end, fixed at creation.
    pub expires_at: Timestamp,
    /// The last sign-in or refresh, for the inactivity timeout.
    pub last_active_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// Why it was ended explicitly (`revoked`, `logout`, `password_changed`, ...).
    pub end_reason: Option<String>,
    pub browser_session_id: Option<String>,
}

crate::sql::from_row!(SessionRow {
    id,
    user_id,
    auth_method,
    ip_address,
    user_agent,
    created_at,
    updated_at,
    expires_at,
    last_active_at,
    revoked_at,
    end_reason,
    browser_session_id
});

pub(crate) const SESSION_COLS: &str = "id, user_id, auth_method, ip_address, user_agent, created_at, updated_at, expires_at, last_active_at, revoked_at, end_reason, browser_session_id";

/// What a new session starts with (its first refresh token is stored with it).
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub auth_method: &'a str,
    pub ip_address: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub browser_session_id: Option<&'a str>,
    pub refresh_hash: &'a [u8],
    pub now: Timestamp,
    pub expires_at: Timestamp,
}

/// An authorization code as stored (the code itself only as its SHA-256).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthCodeRow {
    pub code_hash: Vec<u8>,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    /// S256 challenge of the PKCE verifier, when the authorization request had one.
    pub code_challenge: Option<String>,
    pub browser_session_id: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

crate::sql::from_row!(AuthCodeRow {
    code_hash,
    client_id,
    user_id,
    redirect_uri,
    code_challenge,
    browser_session_id,
    ip_address,
    user_agent,
    created_at,
    expires_at,
    used_at
});

const CODE_COLS: &str = "code_hash, client_id, user_id, redirect_uri, code_challenge, browser_session_id, ip_address, user_agent, created_at, expires_at, used_at";

/// A live browser session at the hosted pages: `(id, user_id)`.
pub type BrowserSession = (String, String);

impl Store {
    // ---- allow-list and settings ---------------------------------------------------------

    /// Adds a URI to the allow-list; false when it was there already.
    pub async fn add_redirect_uri(&self, uri: &str, now: Timestamp) -> Result<bool, Error> {
        let n = self
            .write_exec(
                "INSERT INTO redirect_uris (uri, created_at) VALUES ($1, $2) ON CONFLICT (uri) DO NOTHING",
                args![uri, now],
            )
            .await?;
        Ok(n == 1)
    }

    /// Removes a URI; false when it was not on the list.
    pub async fn remove_redirect_uri(&self, uri: &str) -> Result<bool, Error> {
        let n = self
            .write_exec("DELETE FROM redirect_uris WHERE uri = $1", args![uri])
            .await?;
        Ok(n == 1)
    }

    pub async fn list_redirect_uris(&self) -> Result<Vec<String>, Error> {
        self.read_all("SELECT uri FROM redirect_uris ORDER BY uri", &[])
            .await
    }

    pub async fn set_sign_up_enabled(&self, on: bool) -> Result<(), Error> {
        self.write_exec(
            "UPDATE environment SET sign_up_enabled = $1 WHERE id = 1",
            args![on],
        )
        .await?;
        Ok(())
    }

    pub async fn is_sign_up_enabled(&self) -> Result<bool, Error> {
        let on: i64 = self
            .read_one(
                "SELECT COUNT(*) FROM environment WHERE id = 1 AND sign_up_enabled",
                &[],
            )
            .await?;
        Ok(on == 1)
    }

    // ---- authorization codes ---------------------------------------------------------------

    pub async fn insert_authorization_code(&self, r: &AuthCodeRow) -> Result<(), Error> {
        let sql = format!("INSERT INTO authorization_codes ({CODE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
        self.write_exec(
            &sql,
            args![
                &r.code_hash,
                &r.client_id,
                &r.user_id,
                &r.redirect_uri,
                &r.code_challenge,
                &r.browser_session_id,
                &r.ip_address,
                &r.user_agent,
                r.created_at,
                r.expires_at,
                r.used_at
            ],
        )
        .await?;
        Ok(())
    }

    /// Uses a code: its row for exactly one caller while it is unused and unexpired (one
    /// conditional UPDATE, so parallel redemptions cannot both get it). The caller checks the
    /// client and the PKCE verifier afterwards: a code presented with the wrong ones is spent
    /// all the same, as a code in the wrong hands should be.
    pub async fn redeem_authorization_code(
        &self,
        code_hash: &[u8],
        now: Timestamp,
    ) -> Result<Option<AuthCodeRow>, Error> {
        let sql = format!("UPDATE authorization_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING {CODE_COLS}");
        self.write_opt(&sql, args![code_hash, now]).await
    }

    // ---- browser sessions --------------------------------------------------------------------

    pub async fn insert_browser_session(
        &self,
        id: &str,
        token_hash: &[u8],
        user_id: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), Error> {
        self.write_exec("INSERT INTO browser_sessions (id, token_hash, user_id, created_at, expires_at, ended_at) VALUES ($1, $2, $3, $4, $5, NULL)", args![id, token_hash, user_id, now, expires_at]).await?;
        Ok(())
    }

    /// The live browser session whose cookie token hashes to `token_hash`.
    pub async fn find_browser_session(
        &self,
        token_hash: &[u8],
        now: Timestamp,
    ) -> Result<Option<BrowserSession>, Error> {
        self.read_opt(
            "SELECT id, user_id FROM browser_sessions WHERE token_hash = $1 AND ended_at IS NULL AND expires_at > $2",
            args![token_hash, now],
        )
        .await
    }

    pub async fn end_browser_session(&self, id: &str, now: Timestamp) -> Result<(), Error> {
        self.write_exec(
            "UPDATE browser_sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL",
            args![id, now],
        )
        .await?;
        Ok(())
    }

    // ---- users ---------------------------------------------------------------------------------

    pub async fn find_user_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<crate::UserRow>, Error> {
        let sql = format!(
            "SELECT {} FROM users WHERE external_id = $1",
            crate::queries::USER_COLS
        );
        self.read_opt(&sql, args![external_id]).await
    }

    // ---- sessions ------------------------------------------------------------------------------

    pub async fn find_session(&self, id: &str) -> Result<Option<SessionRow>, Error> {
        let sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE id = $1");
        self.read_opt(&sql, args![id]).await
    }

    pub async fn list_user_sessions(
        &self,
        user_id: &str,
        p: &ListParams,
    ) -> Result<Page<SessionRow>, Error> {
        let mut q = ById::new(format!("SELECT {SESSION_COLS} FROM sessions WHERE 1 = 1"));
        let n = q.bind(user_id);
        q.and(&format!("user_id = {n}"));
        q.page(self, p, |r: &SessionRow| r.id.as_str()).await
    }

    /// Ends one session (and the browser session it came from, if any) unless it has ended
    /// already: its row for the one caller that ended it.
    pub async fn end_session(
        &self,
        id: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Option<SessionRow>, Error> {
        let sql = format!("UPDATE sessions SET revoked_at = $2, updated_at = $2, end_reason = $3 WHERE id = $1 AND revoked_at IS NULL RETURNING {SESSION_COLS}");
        call!(self, transaction, |c| end_session(c, &sql, id, reason, now))
    }

    /// Ends everything that signs `user_id` in, in one transaction: the sessions still alive
    /// (returned, for their events), the browser sessions, and unredeemed authorization codes.
    /// For a password change, a deleted factor, a deleted user. A session counts as alive
    /// while unrevoked, younger than its `expires_at` and active since `idle_since`.
    pub async fn end_user_sessions(
        &self,
        user_id: &str,
        reason: &str,
        now: Timestamp,
        idle_since: Timestamp,
    ) -> Result<Vec<SessionRow>, Error> {
        let sql = format!("UPDATE sessions SET revoked_at = $2, updated_at = $2, end_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND last_active_at > $4 RETURNING {SESSION_COLS}");
        call!(self, transaction, |c| end_user_sessions(
            c, &sql, user_id, reason, now, idle_since
        ))
    }
}

async fn end_session<C: Conn>(
    c: &mut C,
    sql: &str,
    id: &str,
    reason: &str,
    now: Timestamp,
) -> Result<Tx<Option<SessionRow>>, Error> {
    let row: Option<SessionRow> = c.opt(sql, args![id, now, reason]).await?;
    if let Some(b) = row.as_ref().and_then(|r| r.browser_session_id.as_deref()) {
        c.exec(
            "UPDATE browser_sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL",
            args![b, now],
        )
        .await?;
    }
    Ok(Tx::Commit(row))
}

async fn end_user_sessions<C: Conn>(
    c: &mut C,
    sql: &str,
    user_id: &str,
    reason: &str,
    now: Timestamp,
    idle_since: Timestamp,
) -> Result<Tx<Vec<SessionRow>>, Error> {
    let ended: Vec<SessionRow> = c.all(sql, args![user_id, now, reason, idle_since]).await?;
    c.exec(
        "UPDATE browser_sessions SET ended_at = $2 WHERE user_id = $1 AND ended_at IS NULL",
        args![user_id, now],
    )
    .await?;
    c.exec(
        "UPDATE authorization_codes SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL",
        args![user_id, now],
    )
    .await?;
    Ok(Tx::Commit(ended))
}
