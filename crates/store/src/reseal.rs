//! Master-key rotation at the row level: reading the values sealed in a column batch by batch,
//! and writing them back sealed under another key with compare-and-swap updates, so a
//! rotation can run while servers keep writing.
//!
//! Which columns hold sealed values is one list, kept by the caller (the server, which owns the
//! seal purposes): [`SealedColumn`] names a column and how its rows are identified. The SQL
//! here is built from those names, which are compile-time constants of that list, never from
//! input.

use tessera_core::{Error, Timestamp};

use crate::db::{call, Db};
use crate::sql::{args, Conn, Tx};
use crate::Store;

/// A column of values sealed with the master key ([`tessera_core::seal::KeyRing`]), and what
/// its seal is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedColumn {
    pub table: &'static str,
    /// An SQL expression of type TEXT over the row: its identity, and the row id the seal's
    /// associated data names (`<purpose>:<row id>`). A TEXT primary key as is; an integer one
    /// cast (`CAST(id AS TEXT)`).
    pub id: &'static str,
    /// The column naming the master key that sealed the value.
    pub key_id: &'static str,
    /// The sealed bytes (NULL in rows that hold no secret).
    pub sealed: &'static str,
    /// The seal's purpose (the first part of its associated data).
    pub purpose: &'static str,
    pub kind: SealKind,
}

/// How a column's values can be moved to another master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealKind {
    /// Sealed with the master key alone: opened and sealed again.
    MasterKey,
    /// Sealed with a key derived from the master key and a secret the database does not hold
    /// (a client's token): it cannot be opened here, so it cannot be sealed again. Such values
    /// are short-lived: after `until` (a column of milliseconds) they are useless and erased.
    WithClientSecret { until: &'static str },
}

/// One sealed value and its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRow {
    pub id: String,
    pub key_id: String,
    pub sealed: Vec<u8>,
}

crate::sql::from_row!(SealedRow { id, key_id, sealed });

/// A value sealed again: replaces `old` in row `id` only if the row still holds `old`.
#[derive(Debug, Clone)]
pub struct Reseal<'a> {
    pub id: &'a str,
    pub old: &'a SealedRow,
    pub key_id: &'a str,
    pub sealed: &'a [u8],
}

impl Store {
    /// Up to `limit` sealed values of `col` whose row id sorts after `after` (`""` for the
    /// first batch), in row-id order; with `not_under`, only values sealed by another key.
    pub async fn sealed_rows_after(
        &self,
        col: &SealedColumn,
        after: &str,
        not_under: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SealedRow>, Error> {
        let SealedColumn {
            table,
            id,
            key_id,
            sealed,
            ..
        } = *col;
        let sql = format!(
            "SELECT {id}, {key_id}, {sealed} FROM {table} \
             WHERE {sealed} IS NOT NULL AND {key_id} IS NOT NULL AND {id} > $1 \
             AND ($2 IS NULL OR {key_id} <> $2) ORDER BY {id} LIMIT $3"
        );
        self.read_all(&sql, args![after, not_under, limit]).await
    }

    /// How many sealed values of `col` each master key sealed: (key id, count), by key id.
    pub async fn count_sealed_by_key(
        &self,
        col: &SealedColumn,
    ) -> Result<Vec<(String, i64)>, Error> {
        let SealedColumn {
            table,
            key_id,
            sealed,
            ..
        } = *col;
        let sql = format!(
            "SELECT {key_id}, COUNT(*) FROM {table} WHERE {sealed} IS NOT NULL AND {key_id} IS NOT NULL \
             GROUP BY {key_id} ORDER BY {key_id}"
        );
        self.read_all(&sql, &[]).await
    }

    /// Writes re-sealed values in one transaction, each with a compare-and-swap: a row is
    /// changed only if it still holds the value that was read (same key id and bytes), so a
    /// value written meanwhile (a server sealing it anew, a row deleted) is never overwritten.
    /// Returns how many rows changed.
    pub async fn reseal_rows(&self, col: &SealedColumn, rows: &[Reseal<'_>]) -> Result<u64, Error> {
        if rows.is_empty() {
            return Ok(0);
        }
        let SealedColumn {
            table,
            id,
            key_id,
            sealed,
            ..
        } = *col;
        let sql = format!(
            "UPDATE {table} SET {key_id} = $2, {sealed} = $3 \
             WHERE {id} = $1 AND {key_id} = $4 AND {sealed} = $5"
        );
        call!(self, transaction, |c| reseal_rows(c, &sql, rows))
    }

    /// Erases the values of a [`SealKind::WithClientSecret`] column whose time is over at
    /// `now` (what the periodic sweep does for them), so none is left under an old key.
    /// Returns how many were erased; other columns erase nothing.
    pub async fn erase_expired_sealed(
        &self,
        col: &SealedColumn,
        now: Timestamp,
    ) -> Result<u64, Error> {
        let SealKind::WithClientSecret { until } = col.kind else {
            return Ok(0);
        };
        let SealedColumn {
            table,
            key_id,
            sealed,
            ..
        } = *col;
        let sql = format!(
            "UPDATE {table} SET {key_id} = NULL, {sealed} = NULL \
             WHERE {sealed} IS NOT NULL AND {until} <= $1"
        );
        self.write_exec(&sql, args![now.millis()]).await
    }

    /// The latest `until` of the values of a [`SealKind::WithClientSecret`] column sealed by
    /// another key than `current` (when they stop mattering); `None` when there is none.
    pub async fn latest_live_sealed_until(
        &self,
        col: &SealedColumn,
        current: &str,
    ) -> Result<Option<i64>, Error> {
        let SealKind::WithClientSecret { until } = col.kind else {
            return Ok(None);
        };
        let SealedColumn {
            table,
            key_id,
            sealed,
            ..
        } = *col;
        let sql = format!(
            "SELECT MAX({until}) FROM {table} WHERE {sealed} IS NOT NULL AND {key_id} <> $1"
        );
        self.read_one(&sql, args![current]).await
    }

    /// Every (table, column) of the schema whose column name contains `sealed`, sorted: for a
    /// test that the list of sealed columns misses none.
    pub async fn columns_named_like_sealed(&self) -> Result<Vec<(String, String)>, Error> {
        // Backend-specific on purpose: the catalogues differ.
        let sql = match &*self.db {
            Db::Sqlite(_) => {
                "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND p.name LIKE '%sealed%' ORDER BY m.name, p.name"
            }
            Db::Postgres(_) => {
                "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND column_name LIKE '%sealed%' \
                 ORDER BY 1, 2"
            }
        };
        self.read_all(sql, &[]).await
    }
}

/// [`Store::reseal_rows`]'s transaction.
async fn reseal_rows<C: Conn>(c: &mut C, sql: &str, rows: &[Reseal<'_>]) -> Result<Tx<u64>, Error> {
    let mut changed = 0;
    for r in rows {
        changed += c
            .exec(
                sql,
                args![r.id, r.key_id, r.sealed, &r.old.key_id, &r.old.sealed],
            )
            .await?;
    }
    Ok(Tx::Commit(changed))
}
