//! The admin dashboard's state: administrators, their server-side sessions, the stored TOTP
//! issuer, and the dashboard's list queries (user prefix search, events by type and user).
//! Single-use steps (turning a password-checked session into a signed-in one) are one
//! conditional statement, like every other security rule here.

use tessera_core::Error;
use tessera_core::Timestamp;

use crate::db::call;
use crate::list::{ById, ListParams, Page};
use crate::queries::{event_args, EVENT_INSERT, USER_COLS};
use crate::rows::{EventRow, UserRow};
use crate::sql::{args, Arg, Conn, Tx, Unique};
use crate::Store;

/// A dashboard administrator (never a user).
#[derive(Debug, Clone, PartialEq)]
pub struct AdminRow {
    pub id: String,
    pub email: String,
    /// Argon2id PHC string; never leaves the server.
    pub password_hash: String,
    /// The confirmed TOTP factor; `None` until enrolled.
    pub factor_id: Option<String>,
    pub created_at: Timestamp,
}

/// A dashboard session. The cookie holds a random token; only its SHA-256 is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminSessionRow {
    pub token_hash: Vec<u8>,
    pub admin_id: String,
    /// `mfa` (password accepted, code pending) or `active` (signed in).
    pub stage: String,
    pub factor_id: Option<String>,
    pub challenge_id: Option<String>,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
}

crate::sql::from_row!(AdminRow {
    id,
    email,
    password_hash,
    factor_id,
    created_at
});
crate::sql::from_row!(AdminSessionRow {
    token_hash,
    admin_id,
    stage,
    factor_id,
    challenge_id,
    created_at,
    last_seen_at
});

const ADMIN_COLS: &str = "id, email, password_hash, factor_id, created_at";
const SESSION_COLS: &str =
    "token_hash, admin_id, stage, factor_id, challenge_id, created_at, last_seen_at";
const SESSION_INSERT: &str = "INSERT INTO admin_sessions (token_hash, admin_id, stage, factor_id, challenge_id, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

fn session_args(s: &AdminSessionRow) -> [Arg<'_>; 7] {
    [
        Arg::from(&s.token_hash),
        Arg::from(&s.admin_id),
        Arg::from(&s.stage),
        Arg::from(&s.factor_id),
        Arg::from(&s.challenge_id),
        Arg::from(s.created_at),
        Arg::from(s.last_seen_at),
    ]
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
fn like_prefix(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 1);
    for ch in prefix.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

impl Store {
    // ---- admins --------------------------------------------------------------------------

    /// Inserts an admin; `EmailNotAvailable` when one has that email.
    pub async fn insert_admin(&self, a: &AdminRow, event: &EventRow) -> Result<(), Error> {
        let sql = format!("INSERT INTO admins ({ADMIN_COLS}) VALUES ($1, $2, $3, $4, $5)");
        call!(self, transaction, |c| insert_admin(c, &sql, a, event))
    }

    pub async fn list_admins(&self) -> Result<Vec<AdminRow>, Error> {
        let sql = format!("SELECT {ADMIN_COLS} FROM admins ORDER BY email");
        self.read_all(&sql, &[]).await
    }

    pub async fn find_admin_by_email(&self, email: &str) -> Result<Option<AdminRow>, Error> {
        let sql = format!("SELECT {ADMIN_COLS} FROM admins WHERE email = $1");
        self.read_opt(&sql, args![email]).await
    }

    pub async fn find_admin(&self, id: &str) -> Result<Option<AdminRow>, Error> {
        let sql = format!("SELECT {ADMIN_COLS} FROM admins WHERE id = $1");
        self.read_opt(&sql, args![id]).await
    }

    /// Removes an admin (their sessions go with them, by cascade) and their factor; the
    /// removed row, or `None` when there was no such admin.
    pub async fn delete_admin(
        &self,
        email: &str,
        event: &dyn Fn(&AdminRow) -> EventRow,
    ) -> Result<Option<AdminRow>, Error> {
        let sql = format!("DELETE FROM admins WHERE email = $1 RETURNING {ADMIN_COLS}");
        call!(self, transaction, |c| delete_admin(c, &sql, email, event))
    }

    /// Deletes an admin's factor and ends their sessions: they enrol again at their next
    /// sign-in. The admin, or `None` when there is no such admin.
    pub async fn reset_admin_mfa(
        &self,
        email: &str,
        event: &dyn Fn(&AdminRow) -> EventRow,
    ) -> Result<Option<AdminRow>, Error> {
        let sql = format!("SELECT {ADMIN_COLS} FROM admins WHERE email = $1");
        call!(self, transaction, |c| reset_admin_mfa(
            c, &sql, email, event
        ))
    }

    // ---- sessions ------------------------------------------------------------------------

    pub async fn insert_admin_session(&self, s: &AdminSessionRow) -> Result<(), Error> {
        self.write_exec(SESSION_INSERT, &session_args(s)).await?;
        Ok(())
    }

    /// The session with this token hash in `stage`, if it is within both timeouts (idle:
    /// last seen after `idle_since`; absolute: created after `created_since`), with its
    /// admin. Seeing it moves `last_seen_at` to `now`, in the same conditional statement, so
    /// an expired session is never revived.
    pub async fn touch_admin_session(
        &self,
        token_hash: &[u8],
        stage: &str,
        now: Timestamp,
        idle_since: Timestamp,
        created_since: Timestamp,
    ) -> Result<Option<(AdminSessionRow, AdminRow)>, Error> {
        let touch = format!(
            "UPDATE admin_sessions SET last_seen_at = $2 WHERE token_hash = $1 AND stage = $3 AND last_seen_at > $4 AND created_at > $5 RETURNING {SESSION_COLS}"
        );
        let admin = format!("SELECT {ADMIN_COLS} FROM admins WHERE id = $1");
        // Two statements: a transaction, so the admin read sees the session it touched.
        call!(self, transaction, |c| touch_admin_session(
            c,
            &touch,
            &admin,
            args![token_hash, now, stage, idle_since, created_since]
        ))
    }

    /// Finishes a sign-in: the `mfa` session `old_hash` is consumed (one conditional
    /// `DELETE`, so it works once) and the active session `new` takes its place, the
    /// enrolled factor is confirmed when `confirm_factor` is given (only if the admin has
    /// none), and `event` is written. `false` (nothing changed) when the old session was
    /// already gone, or another enrolment was confirmed first.
    pub async fn promote_admin_session(
        &self,
        old_hash: &[u8],
        new: &AdminSessionRow,
        confirm_factor: Option<&str>,
        event: &EventRow,
    ) -> Result<bool, Error> {
        call!(self, transaction, |c| promote_admin_session(
            c,
            old_hash,
            new,
            confirm_factor,
            event
        ))
    }

    /// Deletes an admin's expired sessions (idle since `idle_since` or created before
    /// `created_since`) and the factors of expired enrolments that were never confirmed, so
    /// abandoned sign-ins leave nothing behind. Sessions still running (another tab) stay.
    pub async fn purge_admin_sessions(
        &self,
        admin_id: &str,
        idle_since: Timestamp,
        created_since: Timestamp,
    ) -> Result<(), Error> {
        call!(self, transaction, |c| purge_admin_sessions(
            c,
            admin_id,
            idle_since,
            created_since
        ))
    }

    pub async fn delete_admin_session(&self, token_hash: &[u8]) -> Result<(), Error> {
        self.write_exec(
            "DELETE FROM admin_sessions WHERE token_hash = $1",
            args![token_hash],
        )
        .await?;
        Ok(())
    }

    // ---- settings ------------------------------------------------------------------------

    /// The stored TOTP issuer (`None` before the first start seeded it).
    pub async fn find_totp_issuer(&self) -> Result<Option<String>, Error> {
        let v: Option<Option<String>> = self
            .read_opt("SELECT totp_issuer FROM environment WHERE id = 1", &[])
            .await?;
        Ok(v.flatten())
    }

    /// Sets the TOTP issuer; with `only_if_unset`, only when none is stored yet (the
    /// `--environment-name` flag seeds it; the dashboard changes it).
    pub async fn set_totp_issuer(&self, issuer: &str, only_if_unset: bool) -> Result<(), Error> {
        self.write_exec(
            "UPDATE environment SET totp_issuer = $1 WHERE id = 1 AND (totp_issuer IS NULL OR NOT $2)",
            args![issuer, only_if_unset],
        )
        .await?;
        Ok(())
    }

    // ---- dashboard lists -----------------------------------------------------------------

    /// Users whose (lower-case) email starts with `prefix`, by id with cursors. The prefix
    /// match is an index range scan (`users_by_email_prefix`), never a full scan.
    pub async fn search_users(
        &self,
        email_prefix: Option<&str>,
        p: &ListParams,
    ) -> Result<Page<UserRow>, Error> {
        let mut q = ById::new(format!("SELECT {USER_COLS} FROM users WHERE 1 = 1"));
        let pattern = email_prefix.map(|e| like_prefix(&e.to_lowercase()));
        if let Some(pat) = &pattern {
            let n = q.bind(pat);
            q.and(&format!("email LIKE {n} ESCAPE '\\'"));
        }
        q.page(self, p, |r: &UserRow| r.id.as_str()).await
    }

    /// Events, newest first with cursors, optionally of one type and about one user (the
    /// indexed `events.user_id` column).
    pub async fn list_events_by(
        &self,
        event_type: Option<&str>,
        user_id: Option<&str>,
        p: &ListParams,
    ) -> Result<Page<EventRow>, Error> {
        let mut q = ById::new("SELECT id, event, data, created_at FROM events WHERE 1 = 1");
        if let Some(t) = event_type {
            let n = q.bind(t);
            q.and(&format!("event = {n}"));
        }
        if let Some(u) = user_id {
            let n = q.bind(u);
            q.and(&format!("user_id = {n}"));
        }
        q.page(self, p, |r: &EventRow| r.id.as_str()).await
    }

    /// How many factors each of `user_ids` has (users without any are absent), for the user
    /// list's MFA column: one grouped read on the `(user_id, id)` index for a whole page.
    pub async fn count_user_factors(
        &self,
        user_ids: &[String],
    ) -> Result<std::collections::HashMap<String, i64>, Error> {
        if user_ids.is_empty() {
            return Ok(Default::default());
        }
        let marks: Vec<String> = (1..=user_ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT user_id, COUNT(*) FROM auth_factors WHERE user_id IN ({}) GROUP BY user_id",
            marks.join(", ")
        );
        let params: Vec<Arg<'_>> = user_ids.iter().map(Arg::from).collect();
        let rows: Vec<(String, i64)> = self.read_all(&sql, &params).await?;
        Ok(rows.into_iter().collect())
    }

    /// The distinct event types present, for the filter menu (an index scan of
    /// `events_by_name`).
    pub async fn event_types(&self) -> Result<Vec<String>, Error> {
        self.read_all("SELECT DISTINCT event FROM events ORDER BY event", &[])
            .await
    }
}

async fn insert_admin<C: Conn>(
    c: &mut C,
    sql: &str,
    a: &AdminRow,
    event: &EventRow,
) -> Result<Tx<()>, Error> {
    c.exec(
        sql,
        args![
            &a.id,
            &a.email,
            &a.password_hash,
            &a.factor_id,
            a.created_at
        ],
    )
    .await
    .map_err(|e| match e.unique {
        Some(Unique::AdminEmail) => Error::EmailNotAvailable(a.email.clone()),
        _ => e.into(),
    })?;
    c.exec(EVENT_INSERT, &event_args(event)).await?;
    Ok(Tx::Commit(()))
}

async fn delete_admin<C: Conn>(
    c: &mut C,
    sql: &str,
    email: &str,
    event: &dyn Fn(&AdminRow) -> EventRow,
) -> Result<Tx<Option<AdminRow>>, Error> {
    let Some(a): Option<AdminRow> = c.opt(sql, args![email]).await? else {
        return Ok(Tx::Rollback(None));
    };
    if let Some(f) = &a.factor_id {
        c.exec("DELETE FROM auth_factors WHERE id = $1", args![f])
            .await?;
    }
    c.exec(EVENT_INSERT, &event_args(&event(&a))).await?;
    Ok(Tx::Commit(Some(a)))
}

async fn reset_admin_mfa<C: Conn>(
    c: &mut C,
    sql: &str,
    email: &str,
    event: &dyn Fn(&AdminRow) -> EventRow,
) -> Result<Tx<Option<AdminRow>>, Error> {
    let Some(a): Option<AdminRow> = c.opt(sql, args![email]).await? else {
        return Ok(Tx::Rollback(None));
    };
    c.exec(
        "UPDATE admins SET factor_id = NULL WHERE id = $1",
        args![&a.id],
    )
    .await?;
    if let Some(f) = &a.factor_id {
        c.exec("DELETE FROM auth_factors WHERE id = $1", args![f])
            .await?;
    }
    c.exec(
        "DELETE FROM admin_sessions WHERE admin_id = $1",
        args![&a.id],
    )
    .await?;
    c.exec(EVENT_INSERT, &event_args(&event(&a))).await?;
    Ok(Tx::Commit(Some(a)))
}

async fn touch_admin_session<C: Conn>(
    c: &mut C,
    touch: &str,
    admin: &str,
    touch_args: &[Arg<'_>],
) -> Result<Tx<Option<(AdminSessionRow, AdminRow)>>, Error> {
    let Some(s): Option<AdminSessionRow> = c.opt(touch, touch_args).await? else {
        return Ok(Tx::Commit(None));
    };
    let a: Option<AdminRow> = c.opt(admin, args![&s.admin_id]).await?;
    Ok(Tx::Commit(a.map(|a| (s, a))))
}

async fn promote_admin_session<C: Conn>(
    c: &mut C,
    old_hash: &[u8],
    new: &AdminSessionRow,
    confirm_factor: Option<&str>,
    event: &EventRow,
) -> Result<Tx<bool>, Error> {
    let gone = c
        .exec(
            "DELETE FROM admin_sessions WHERE token_hash = $1 AND stage = 'mfa' AND admin_id = $2",
            args![old_hash, &new.admin_id],
        )
        .await?;
    if gone != 1 {
        return Ok(Tx::Rollback(false));
    }
    if let Some(f) = confirm_factor {
        // Two enrolments finished in parallel: only the first becomes the admin's
        // factor; the other sign-in is refused (its app holds a useless secret).
        let confirmed = c
            .exec(
                "UPDATE admins SET factor_id = $2 WHERE id = $1 AND factor_id IS NULL",
                args![&new.admin_id, f],
            )
            .await?;
        if confirmed != 1 {
            return Ok(Tx::Rollback(false));
        }
    }
    c.exec(SESSION_INSERT, &session_args(new)).await?;
    c.exec(EVENT_INSERT, &event_args(event)).await?;
    Ok(Tx::Commit(true))
}

async fn purge_admin_sessions<C: Conn>(
    c: &mut C,
    admin_id: &str,
    idle_since: Timestamp,
    created_since: Timestamp,
) -> Result<Tx<()>, Error> {
    c.exec(
        "DELETE FROM auth_factors WHERE user_id IS NULL AND id IN (SELECT factor_id FROM admin_sessions WHERE admin_id = $1 AND stage = 'mfa' AND (last_seen_at <= $2 OR created_at <= $3)) \
         AND id NOT IN (SELECT factor_id FROM admins WHERE id = $1 AND factor_id IS NOT NULL)",
        args![admin_id, idle_since, created_since],
    )
    .await?;
    c.exec(
        "DELETE FROM admin_sessions WHERE admin_id = $1 AND (last_seen_at <= $2 OR created_at <= $3)",
        args![admin_id, idle_since, created_since],
    )
    .await?;
    Ok(Tx::Commit(()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(super::like_prefix("a_b%c\\"), "a\\_b\\%c\\\\%");
    }
}
