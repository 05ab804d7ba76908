//! The statements of the API's resources (environment, API keys, users, factors and
//! challenges). Each is written once and runs on both backends (see `crate::db`).

use tessera_core::error::Entity;
use tessera_core::Error;
use tessera_core::Timestamp;

use crate::db::call;
use crate::list::{ById, ListParams, Page};
use crate::rows::*;
use crate::sql::{args, Arg, Conn, DbError, Single, Tx, Unique};
use crate::Store;

pub(crate) const USER_COLS: &str = "id, email, email_verified, first_name, last_name, name, profile_picture_url, external_id, metadata, locale, password_hash, last_sign_in_at, created_at, updated_at";
pub(crate) const FACTOR_COLS: &str = "id, user_id, type, totp_issuer, totp_user, secret_key_id, secret_sealed, phone_number, last_totp_step, created_at, updated_at";
pub(crate) const CHALLENGE_COLS: &str =
    "id, factor_id, code_hash, expires_at, verified_at, attempts, created_at, updated_at";
const FACTOR_INSERT: &str = "INSERT INTO auth_factors (id, user_id, type, totp_issuer, totp_user, secret_key_id, secret_sealed, phone_number, last_totp_step, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub(crate) const CHALLENGE_INSERT: &str = "INSERT INTO auth_challenges (id, factor_id, code_hash, expires_at, verified_at, attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(crate) const EVENT_INSERT: &str =
    "INSERT INTO events (id, event, data, created_at) VALUES ($1, $2, $3, $4)";

/// Turns the stored metadata (JSON text) into the new one, or refuses the update.
pub type MetadataMerge = dyn Fn(&str) -> Result<String, Error> + Sync;

/// Maps a unique-constraint violation on `users` to the precise client error.
fn user_conflict(e: DbError, user: &UserRow) -> Error {
    conflict(
        e,
        &user.email,
        user.external_id.as_deref().unwrap_or_default(),
    )
}

fn conflict(e: DbError, email: &str, external_id: &str) -> Error {
    match e.unique {
        Some(Unique::UserExternalId) => Error::ExternalIdAlreadyUsed(external_id.to_owned()),
        Some(Unique::UserEmail) => Error::EmailNotAvailable(email.to_owned()),
        _ => e.into(),
    }
}

/// A user's columns in [`USER_COLS`] order, `$1` to `$14`.
fn user_args(u: &UserRow) -> [Arg<'_>; 14] {
    [
        Arg::from(&u.id),
        Arg::from(&u.email),
        Arg::from(u.email_verified),
        Arg::from(&u.first_name),
        Arg::from(&u.last_name),
        Arg::from(&u.name),
        Arg::from(&u.profile_picture_url),
        Arg::from(&u.external_id),
        Arg::from(&u.metadata),
        Arg::from(&u.locale),
        Arg::from(&u.password_hash),
        Arg::from(u.last_sign_in_at),
        Arg::from(u.created_at),
        Arg::from(u.updated_at),
    ]
}

pub(crate) fn challenge_args(c: &ChallengeRow) -> [Arg<'_>; 8] {
    [
        Arg::from(&c.id),
        Arg::from(&c.factor_id),
        Arg::from(&c.code_hash),
        Arg::from(c.expires_at),
        Arg::from(c.verified_at),
        Arg::from(c.attempts),
        Arg::from(c.created_at),
        Arg::from(c.updated_at),
    ]
}

pub(crate) fn event_args(e: &EventRow) -> [Arg<'_>; 4] {
    [
        Arg::from(&e.id),
        Arg::from(&e.event),
        Arg::from(&e.data),
        Arg::from(e.created_at),
    ]
}

impl Store {
    // ---- environment -------------------------------------------------------------------

    /// Creates the environment row on first start (with `client_id`) and returns the row as
    /// it is, so concurrent first starts on several nodes agree on one client id.
    pub async fn ensure_environment(
        &self,
        client_id: &str,
        now: Timestamp,
    ) -> Result<EnvironmentRow, Error> {
        self.write_exec("INSERT INTO environment (id, client_id, mfa_required, created_at) VALUES (1, $1, FALSE, $2) ON CONFLICT (id) DO NOTHING", args![client_id, now]).await?;
        // Read after the insert has committed: whichever node inserted first, all read its row.
        self.read_one(
            "SELECT client_id, mfa_required, created_at FROM environment WHERE id = 1",
            &[],
        )
        .await
    }

    pub async fn find_environment(&self) -> Result<Option<EnvironmentRow>, Error> {
        self.read_opt(
            "SELECT client_id, mfa_required, created_at FROM environment WHERE id = 1",
            &[],
        )
        .await
    }

    // ---- API keys ----------------------------------------------------------------------

    pub async fn insert_api_key(&self, row: &ApiKeyRow) -> Result<(), Error> {
        self.write_exec(
            "INSERT INTO api_keys (id, name, lookup, key_hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)",
            args![&row.id, &row.name, &row.lookup, &row.key_hash, row.created_at, row.revoked_at],
        )
        .await?;
        Ok(())
    }

    /// The unrevoked key with that lookup part, if any.
    pub async fn find_active_api_key(&self, lookup: &str) -> Result<Option<ApiKeyRow>, Error> {
        self.read_opt(
            "SELECT id, name, lookup, key_hash, created_at, revoked_at FROM api_keys WHERE lookup = $1 AND revoked_at IS NULL",
            args![lookup],
        )
        .await
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, Error> {
        self.read_all(
            "SELECT id, name, lookup, key_hash, created_at, revoked_at FROM api_keys ORDER BY id",
            &[],
        )
        .await
    }

    pub async fn count_api_keys(&self) -> Result<i64, Error> {
        self.read_one("SELECT COUNT(*) FROM api_keys", &[]).await
    }

    /// Revokes a key; `NotFound` when no unrevoked key has that id.
    pub async fn revoke_api_key(&self, id: &str, now: Timestamp) -> Result<(), Error> {
        let n = self
            .write_exec(
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                args![id, now],
            )
            .await?;
        if n == 1 {
            Ok(())
        } else {
            Err(Error::not_found(Entity::ApiKey, id))
        }
    }

    // ---- users -------------------------------------------------------------------------

    pub async fn insert_user(&self, u: &UserRow) -> Result<(), Error> {
        let sql = format!("INSERT INTO users ({USER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)");
        call!(self, write, |c| insert_user(c, &sql, u))
    }

    /// Applies a `PUT /user_management/users/:id`: only the columns `patch` names change, in
    /// one statement, so concurrent updates of other fields are never written back over (a
    /// metadata-only update cannot restore an old password hash). A metadata merge reads the
    /// stored object and writes the merged one in the same transaction, holding the row:
    /// SQLite's single writer is exclusive anyway, and on PostgreSQL the first statement
    /// (an `UPDATE` that changes nothing) takes the row lock, so parallel merges queue and
    /// each merges into the result of the one before. `merge_metadata` gets the stored JSON
    /// text and returns the new one; its error undoes everything. The user as stored after
    /// the update; `NotFound` when there is none.
    pub async fn update_user(
        &self,
        id: &str,
        patch: &UserPatch,
        merge_metadata: Option<&MetadataMerge>,
    ) -> Result<UserRow, Error> {
        let sql = format!(
            "UPDATE users SET email = COALESCE($2, email), \
             email_verified = CASE WHEN $3 THEN $4 ELSE email_verified END, \
             first_name = COALESCE($5, first_name), last_name = COALESCE($6, last_name), \
             name = COALESCE($7, name), profile_picture_url = COALESCE($8, profile_picture_url), \
             external_id = CASE WHEN $9 THEN $10 ELSE external_id END, \
             locale = CASE WHEN $11 THEN $12 ELSE locale END, \
             password_hash = COALESCE($13, password_hash), metadata = COALESCE($14, metadata), \
             updated_at = $15 WHERE id = $1 RETURNING {USER_COLS}"
        );
        let row = call!(self, transaction, |c| update_user(
            c,
            &sql,
            id,
            patch,
            merge_metadata
        ))?;
        row.ok_or_else(|| Error::not_found(Entity::User, id))
    }

    /// Replaces a password hash only if it is still `verified` (the one a sign-in just
    /// checked), so a rehash can never undo a password change made meanwhile. True when
    /// it was replaced.
    pub async fn replace_password_hash(
        &self,
        id: &str,
        verified: &str,
        new_hash: &str,
    ) -> Result<bool, Error> {
        let n = self
            .write_exec(
                "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
                args![id, verified, new_hash],
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn find_user(&self, id: &str) -> Result<Option<UserRow>, Error> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
        self.read_opt(&sql, args![id]).await
    }

    /// A user and the stored TOTP issuer setting, in one read (what a TOTP enrolment needs:
    /// one round trip instead of two on its hot path).
    pub async fn find_user_with_totp_issuer(
        &self,
        id: &str,
    ) -> Result<Option<(UserRow, Option<String>)>, Error> {
        let sql = format!(
            "SELECT {USER_COLS}, (SELECT totp_issuer FROM environment WHERE id = 1) \
             FROM users WHERE id = $1"
        );
        self.read_opt(&sql, args![id]).await
    }

    pub async fn get_user(&self, id: &str) -> Result<UserRow, Error> {
        self.find_user(id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::User, id))
    }

    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRow>, Error> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE email = $1");
        self.read_opt(&sql, args![email]).await
    }

    /// Deletes a user and (by cascade) their factors and challenges.
    pub async fn delete_user(&self, id: &str) -> Result<(), Error> {
        let n = self
            .write_exec("DELETE FROM users WHERE id = $1", args![id])
            .await?;
        if n == 1 {
            Ok(())
        } else {
            Err(Error::not_found(Entity::User, id))
        }
    }

    /// Users, optionally only the one with `email` (normalised by the caller).
    pub async fn list_users(
        &self,
        email: Option<&str>,
        p: &ListParams,
    ) -> Result<Page<UserRow>, Error> {
        let mut q = ById::new(format!("SELECT {USER_COLS} FROM users WHERE 1 = 1"));
        if let Some(e) = email {
            let n = q.bind(e);
            q.and(&format!("email = {n}"));
        }
        q.page(self, p, |r: &UserRow| r.id.as_str()).await
    }

    // ---- factors and challenges ----------------------------------------------------------

    /// Inserts a factor, its first challenge when given, and `events`, in one transaction, so
    /// an enroll never leaves a factor without the challenge the client was promised (or
    /// without its audit trail).
    pub async fn insert_factor(
        &self,
        f: &FactorRow,
        ch: Option<&ChallengeRow>,
        events: &[EventRow],
    ) -> Result<(), Error> {
        call!(self, transaction, |c| insert_factor(c, f, ch, events))
    }

    pub async fn find_factor(&self, id: &str) -> Result<Option<FactorRow>, Error> {
        let sql = format!("SELECT {FACTOR_COLS} FROM auth_factors WHERE id = $1");
        self.read_opt(&sql, args![id]).await
    }

    pub async fn get_factor(&self, id: &str) -> Result<FactorRow, Error> {
        self.find_factor(id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::AuthenticationFactor, id))
    }

    /// Deletes a factor and records `event` in one transaction (a crash between two writes
    /// left a deleted factor missing from the audit trail). Its challenges go with it (ON
    /// DELETE CASCADE), so none of them can be verified afterwards (revocation with immediate
    /// effect, ASVS 2.8.6).
    pub async fn delete_factor(&self, id: &str, event: &EventRow) -> Result<(), Error> {
        call!(self, transaction, |c| delete_factor(c, id, event))
    }

    pub async fn list_user_factors(
        &self,
        user_id: &str,
        p: &ListParams,
    ) -> Result<Page<FactorRow>, Error> {
        let mut q = ById::new(format!(
            "SELECT {FACTOR_COLS} FROM auth_factors WHERE 1 = 1"
        ));
        let n = q.bind(user_id);
        q.and(&format!("user_id = {n}"));
        q.page(self, p, |r: &FactorRow| r.id.as_str()).await
    }

    pub async fn find_challenge(&self, id: &str) -> Result<Option<ChallengeRow>, Error> {
        let sql = format!("SELECT {CHALLENGE_COLS} FROM auth_challenges WHERE id = $1");
        self.read_opt(&sql, args![id]).await
    }

    /// A challenge with its factor and the factor's user (id, email), in one read: what a
    /// verification needs before it evaluates the code.
    #[allow(clippy::type_complexity)]
    pub async fn find_challenge_context(
        &self,
        id: &str,
    ) -> Result<Option<(ChallengeRow, FactorRow, Option<(String, String)>)>, Error> {
        const SQL: &str = "SELECT c.id, c.factor_id, c.code_hash, c.expires_at, c.verified_at, c.attempts, c.created_at, c.updated_at, \
             f.id, f.user_id, f.type, f.totp_issuer, f.totp_user, f.secret_key_id, f.secret_sealed, f.phone_number, f.last_totp_step, f.created_at, f.updated_at, \
             u.id, u.email \
             FROM auth_challenges c JOIN auth_factors f ON f.id = c.factor_id LEFT JOIN users u ON u.id = f.user_id WHERE c.id = $1";
        let row: Option<(ChallengeRow, FactorRow, (Option<String>, Option<String>))> =
            self.read_opt(SQL, args![id]).await?;
        Ok(row.map(|(ch, f, (uid, email))| (ch, f, uid.zip(email))))
    }
}

async fn insert_user<C: Conn>(c: Single<'_, C>, sql: &str, u: &UserRow) -> Result<(), Error> {
    c.exec(sql, &user_args(u))
        .await
        .map_err(|e| user_conflict(e, u))?;
    Ok(())
}

async fn update_user<C: Conn>(
    c: &mut C,
    sql: &str,
    id: &str,
    patch: &UserPatch,
    merge_metadata: Option<&MetadataMerge>,
) -> Result<Tx<Option<UserRow>>, Error> {
    let metadata = match merge_metadata {
        Some(merge) => {
            let stored: Option<String> = c
                .opt(
                    "UPDATE users SET metadata = metadata WHERE id = $1 RETURNING metadata",
                    args![id],
                )
                .await?;
            let Some(stored) = stored else {
                return Ok(Tx::Rollback(None));
            };
            Some(merge(&stored)?)
        }
        None => None,
    };
    let row: Option<UserRow> = c
        .opt(
            sql,
            args![
                id,
                &patch.email,
                patch.email_verified.is_some(),
                patch.email_verified.unwrap_or(false),
                &patch.first_name,
                &patch.last_name,
                &patch.name,
                &patch.profile_picture_url,
                patch.external_id.is_some(),
                patch.external_id.as_ref().and_then(|x| x.as_deref()),
                patch.locale.is_some(),
                patch.locale.as_ref().and_then(|x| x.as_deref()),
                &patch.password_hash,
                &metadata,
                patch.updated_at
            ],
        )
        .await
        .map_err(|e| {
            conflict(
                e,
                patch.email.as_deref().unwrap_or_default(),
                patch
                    .external_id
                    .as_ref()
                    .and_then(|x| x.as_deref())
                    .unwrap_or_default(),
            )
        })?;
    Ok(Tx::Commit(row))
}

async fn delete_factor<C: Conn>(c: &mut C, id: &str, event: &EventRow) -> Result<Tx<()>, Error> {
    if c.exec("DELETE FROM auth_factors WHERE id = $1", args![id])
        .await?
        != 1
    {
        return Err(Error::not_found(Entity::AuthenticationFactor, id));
    }
    c.exec(EVENT_INSERT, &event_args(event)).await?;
    Ok(Tx::Commit(()))
}

async fn insert_factor<C: Conn>(
    c: &mut C,
    f: &FactorRow,
    ch: Option<&ChallengeRow>,
    events: &[EventRow],
) -> Result<Tx<()>, Error> {
    c.exec(
        FACTOR_INSERT,
        args![
            &f.id,
            &f.user_id,
            f.r#type,
            &f.totp_issuer,
            &f.totp_user,
            &f.secret_key_id,
            &f.secret_sealed,
            &f.phone_number,
            f.last_totp_step,
            f.created_at,
            f.updated_at
        ],
    )
    .await?;
    if let Some(ch) = ch {
        c.exec(CHALLENGE_INSERT, &challenge_args(ch)).await?;
    }
    for e in events {
        c.exec(EVENT_INSERT, &event_args(e)).await?;
    }
    Ok(Tx::Commit(()))
}
