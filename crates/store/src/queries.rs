//! The statements. Each is written once and runs on both backends through `on_db!`.

use tessera_core::error::Entity;
use tessera_core::Error;

use crate::db::{internal, on_db};
use crate::list::{ListParams, Page};
use crate::rows::*;
use crate::Store;

const USER_COLS: &str = "id, email, email_verified, first_name, last_name, name, profile_picture_url, external_id, metadata, locale, password_hash, last_sign_in_at, created_at, updated_at";
const FACTOR_COLS: &str = "id, user_id, type, totp_issuer, totp_user, secret_key_id, secret_sealed, phone_number, last_totp_step, created_at, updated_at";
const CHALLENGE_COLS: &str =
    "id, factor_id, code_hash, expires_at, verified_at, attempts, created_at, updated_at";

/// Maps a unique-constraint violation on `users` to the precise client error. SQLite names
/// the column in its message, PostgreSQL names the constraint; both contain the column name.
fn user_conflict(e: sqlx::Error, user: &UserRow) -> Error {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            let what = format!("{} {}", db.message(), db.constraint().unwrap_or_default());
            if what.contains("external_id") {
                return Error::ExternalIdAlreadyUsed(user.external_id.clone().unwrap_or_default());
            }
            if what.contains("email") {
                return Error::EmailNotAvailable(user.email.clone());
            }
        }
    }
    internal(e)
}

impl Store {
    // ---- environment -------------------------------------------------------------------

    /// Creates the environment row on first start (with `client_id`) and returns the row as
    /// it is, so concurrent first starts on several nodes agree on one client id.
    pub async fn ensure_environment(
        &self,
        client_id: &str,
        now: i64,
    ) -> Result<EnvironmentRow, Error> {
        on_db!(self, write, |pool| {
            sqlx::query("INSERT INTO environment (id, client_id, mfa_required, created_at) VALUES (1, $1, FALSE, $2) ON CONFLICT (id) DO NOTHING")
                .bind(client_id)
                .bind(now)
                .execute(pool)
                .await
                .map_err(internal)?;
            sqlx::query_as::<_, EnvironmentRow>(
                "SELECT client_id, mfa_required, created_at FROM environment WHERE id = 1",
            )
            .fetch_one(pool)
            .await
            .map_err(internal)
        })
    }

    pub async fn find_environment(&self) -> Result<Option<EnvironmentRow>, Error> {
        on_db!(self, read, |pool| sqlx::query_as::<_, EnvironmentRow>(
            "SELECT client_id, mfa_required, created_at FROM environment WHERE id = 1"
        )
        .fetch_optional(pool)
        .await
        .map_err(internal))
    }

    // ---- API keys ----------------------------------------------------------------------

    pub async fn insert_api_key(&self, row: &ApiKeyRow) -> Result<(), Error> {
        on_db!(self, write, |pool| {
            sqlx::query(
            "INSERT INTO api_keys (id, name, lookup, key_hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(&row.id)
        .bind(&row.name)
        .bind(&row.lookup)
        .bind(&row.key_hash)
        .bind(row.created_at)
        .bind(row.revoked_at)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(internal)
        })
    }

    /// The unrevoked key with that lookup part, if any.
    pub async fn find_active_api_key(&self, lookup: &str) -> Result<Option<ApiKeyRow>, Error> {
        on_db!(self, read, |pool| {
            sqlx::query_as::<_, ApiKeyRow>(
            "SELECT id, name, lookup, key_hash, created_at, revoked_at FROM api_keys WHERE lookup = $1 AND revoked_at IS NULL"
        )
        .bind(lookup)
        .fetch_optional(pool)
        .await
        .map_err(internal)
        })
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, Error> {
        on_db!(self, read, |pool| sqlx::query_as::<_, ApiKeyRow>(
            "SELECT id, name, lookup, key_hash, created_at, revoked_at FROM api_keys ORDER BY id"
        )
        .fetch_all(pool)
        .await
        .map_err(internal))
    }

    pub async fn count_api_keys(&self) -> Result<i64, Error> {
        on_db!(self, read, |pool| sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM api_keys"
        )
        .fetch_one(pool)
        .await
        .map_err(internal))
    }

    /// Revokes a key; `NotFound` when no unrevoked key has that id.
    pub async fn revoke_api_key(&self, id: &str, now: i64) -> Result<(), Error> {
        let n = on_db!(self, write, |pool| sqlx::query(
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL"
        )
        .bind(id)
        .bind(now)
        .execute(pool)
        .await
        .map_err(internal)?
        .rows_affected());
        if n == 1 {
            Ok(())
        } else {
            Err(Error::not_found(Entity::ApiKey, id))
        }
    }

    // ---- users -------------------------------------------------------------------------

    pub async fn insert_user(&self, u: &UserRow) -> Result<(), Error> {
        let sql = format!("INSERT INTO users ({USER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)");
        on_db!(self, write, |pool| sqlx::query(&sql)
            .bind(&u.id)
            .bind(&u.email)
            .bind(u.email_verified)
            .bind(&u.first_name)
            .bind(&u.last_name)
            .bind(&u.name)
            .bind(&u.profile_picture_url)
            .bind(&u.external_id)
            .bind(&u.metadata)
            .bind(&u.locale)
            .bind(&u.password_hash)
            .bind(u.last_sign_in_at)
            .bind(u.created_at)
            .bind(u.updated_at)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(|e| user_conflict(e, u)))
    }

    /// Writes every mutable column of `u` (the service merged the changes).
    pub async fn update_user(&self, u: &UserRow) -> Result<(), Error> {
        let n = on_db!(self, write, |pool| {
            sqlx::query(
            "UPDATE users SET email = $2, email_verified = $3, first_name = $4, last_name = $5, name = $6, profile_picture_url = $7, external_id = $8, metadata = $9, locale = $10, password_hash = $11, last_sign_in_at = $12, updated_at = $13 WHERE id = $1"
        )
        .bind(&u.id)
        .bind(&u.email)
        .bind(u.email_verified)
        .bind(&u.first_name)
        .bind(&u.last_name)
        .bind(&u.name)
        .bind(&u.profile_picture_url)
        .bind(&u.external_id)
        .bind(&u.metadata)
        .bind(&u.locale)
        .bind(&u.password_hash)
        .bind(u.last_sign_in_at)
        .bind(u.updated_at)
        .execute(pool)
        .await
        .map_err(|e| user_conflict(e, u))?
        .rows_affected()
        });
        if n == 1 {
            Ok(())
        } else {
            Err(Error::not_found(Entity::User, &u.id))
        }
    }

    pub async fn find_user(&self, id: &str) -> Result<Option<UserRow>, Error> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
        on_db!(self, read, |pool| sqlx::query_as::<_, UserRow>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(internal))
    }

    pub async fn get_user(&self, id: &str) -> Result<UserRow, Error> {
        self.find_user(id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::User, id))
    }

    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRow>, Error> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE email = $1");
        on_db!(self, read, |pool| sqlx::query_as::<_, UserRow>(&sql)
            .bind(email)
            .fetch_optional(pool)
            .await
            .map_err(internal))
    }

    /// Deletes a user and (by cascade) their factors and challenges.
    pub async fn delete_user(&self, id: &str) -> Result<(), Error> {
        let n = on_db!(self, write, |pool| sqlx::query(
            "DELETE FROM users WHERE id = $1"
        )
        .bind(id)
        .execute(pool)
        .await
        .map_err(internal)?
        .rows_affected());
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
        let s = p.scan();
        let mut sql = format!("SELECT {USER_COLS} FROM users WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if email.is_some() {
            sql += &format!(" AND email = ${}", next());
        }
        if let Some(cmp) = s.cmp {
            sql += &format!(" AND id {cmp} ${}", next());
        }
        sql += &format!(" ORDER BY id {} LIMIT ${}", s.dir, next());
        let rows = on_db!(self, read, |pool| {
            let mut q = sqlx::query_as::<_, UserRow>(&sql);
            if let Some(e) = email {
                q = q.bind(e);
            }
            if let Some(c) = &s.cursor {
                q = q.bind(c);
            }
            q.bind(p.limit + 1).fetch_all(pool).await.map_err(internal)
        })?;
        Ok(p.page(&s, rows, |r| r.id.as_str()))
    }

    // ---- factors and challenges ----------------------------------------------------------

    /// Inserts a factor and, when given, its first challenge in one transaction, so an enroll
    /// never leaves a factor without the challenge the client was promised (or vice versa).
    pub async fn insert_factor(
        &self,
        f: &FactorRow,
        c: Option<&ChallengeRow>,
    ) -> Result<(), Error> {
        let fsql = format!("INSERT INTO auth_factors ({FACTOR_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
        let csql = format!("INSERT INTO auth_challenges ({CHALLENGE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(internal)?;
            sqlx::query(&fsql)
                .bind(&f.id)
                .bind(&f.user_id)
                .bind(&f.r#type)
                .bind(&f.totp_issuer)
                .bind(&f.totp_user)
                .bind(&f.secret_key_id)
                .bind(&f.secret_sealed)
                .bind(&f.phone_number)
                .bind(f.last_totp_step)
                .bind(f.created_at)
                .bind(f.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(internal)?;
            if let Some(c) = c {
                sqlx::query(&csql)
                    .bind(&c.id)
                    .bind(&c.factor_id)
                    .bind(&c.code_hash)
                    .bind(c.expires_at)
                    .bind(c.verified_at)
                    .bind(c.attempts)
                    .bind(c.created_at)
                    .bind(c.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(internal)?;
            }
            tx.commit().await.map_err(internal)
        })
    }

    pub async fn find_factor(&self, id: &str) -> Result<Option<FactorRow>, Error> {
        let sql = format!("SELECT {FACTOR_COLS} FROM auth_factors WHERE id = $1");
        on_db!(self, read, |pool| sqlx::query_as::<_, FactorRow>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(internal))
    }

    pub async fn get_factor(&self, id: &str) -> Result<FactorRow, Error> {
        self.find_factor(id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::AuthenticationFactor, id))
    }

    /// Deletes a factor; its challenges go with it (ON DELETE CASCADE), so none of them can be
    /// verified afterwards (revocation with immediate effect, ASVS 2.8.6).
    pub async fn delete_factor(&self, id: &str) -> Result<(), Error> {
        let n = on_db!(self, write, |pool| sqlx::query(
            "DELETE FROM auth_factors WHERE id = $1"
        )
        .bind(id)
        .execute(pool)
        .await
        .map_err(internal)?
        .rows_affected());
        if n == 1 {
            Ok(())
        } else {
            Err(Error::not_found(Entity::AuthenticationFactor, id))
        }
    }

    pub async fn list_user_factors(
        &self,
        user_id: &str,
        p: &ListParams,
    ) -> Result<Page<FactorRow>, Error> {
        let s = p.scan();
        let mut sql = format!("SELECT {FACTOR_COLS} FROM auth_factors WHERE user_id = $1");
        if let Some(cmp) = s.cmp {
            sql += &format!(" AND id {cmp} $2 ORDER BY id {} LIMIT $3", s.dir);
        } else {
            sql += &format!(" ORDER BY id {} LIMIT $2", s.dir);
        }
        let rows = on_db!(self, read, |pool| {
            let mut q = sqlx::query_as::<_, FactorRow>(&sql).bind(user_id);
            if let Some(c) = &s.cursor {
                q = q.bind(c);
            }
            q.bind(p.limit + 1).fetch_all(pool).await.map_err(internal)
        })?;
        Ok(p.page(&s, rows, |r| r.id.as_str()))
    }

    pub async fn find_challenge(&self, id: &str) -> Result<Option<ChallengeRow>, Error> {
        let sql = format!("SELECT {CHALLENGE_COLS} FROM auth_challenges WHERE id = $1");
        on_db!(self, read, |pool| sqlx::query_as::<_, ChallengeRow>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(internal))
    }
}
