//! The SQL plumbing under the store: one [`Conn`] trait with the four ways to run a
//! statement (`exec`, `all`, `opt`, `one`), implemented by both backends' connections, so a
//! store function is ordinary generic code (`async fn f<C: Conn>(c: &mut C, ..)`), written and
//! type-checked once and monomorphised per backend (no boxed futures, no dynamic dispatch).
//!
//! * [`row`]: statement parameters ([`Arg`], `args!`), decoding rows by column position
//!   ([`FromRow`], `from_row!`), and [`DbError`];
//! * [`sqlite`]: SQLite through `rusqlite`, run in place on the calling task, with one writer
//!   connection (group commit) and a pool of readers;
//! * [`pg`]: PostgreSQL through `sqlx`, one connection (checked out per store call) or a
//!   transaction's.
//!
//! Which connection a function gets (a reader, the writer for one statement, a transaction)
//! is chosen by `crate::db::call!`; see `crate::db` for how to write a store function.

pub(crate) mod pg;
pub(crate) mod row;
pub(crate) mod sqlite;

pub(crate) use pg::Pg;
pub(crate) use row::{args, from_row, Arg, Cols, DbError, FromRow, Unique};
pub(crate) use sqlite::{Lite, Sqlite};

/// A connection of either backend. `$N` placeholders, numbered from 1, in every statement.
pub(crate) trait Conn {
    /// Runs a statement; the number of rows it changed.
    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, DbError>;
    /// Every row.
    async fn all<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>, DbError>;
    /// The first row, if any (a statement is always run to its end).
    async fn opt<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<T>, DbError>;
    /// The first row; no row is an error.
    async fn one<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<T, DbError>;
}

/// What a transaction body decided.
pub(crate) enum Tx<T> {
    Commit(T),
    /// Undo every write of the body (a refusal half-way through a multi-step rule).
    Rollback(T),
}

/// The connection of a `write` body: good for exactly one statement. Its methods take it by
/// value, so a second statement does not compile ("use of moved value: `c`"), on either
/// backend. A PostgreSQL `write` runs without BEGIN/COMMIT round trips, where
/// each statement commits alone; allowing a second one would make a body atomic on SQLite
/// (a savepoint) and not on PostgreSQL. A body of several statements is a `transaction`.
pub(crate) struct Single<'a, C>(pub(crate) &'a mut C);

impl<C: Conn> Single<'_, C> {
    pub(crate) async fn exec(self, sql: &str, args: &[Arg<'_>]) -> Result<u64, DbError> {
        self.0.exec(sql, args).await
    }
    // `all` and `one` are for the write bodies to come (an `INSERT ... RETURNING`).
    #[allow(dead_code)]
    pub(crate) async fn all<T: FromRow>(
        self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<T>, DbError> {
        self.0.all(sql, args).await
    }
    pub(crate) async fn opt<T: FromRow>(
        self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<T>, DbError> {
        self.0.opt(sql, args).await
    }
    #[allow(dead_code)]
    pub(crate) async fn one<T: FromRow>(self, sql: &str, args: &[Arg<'_>]) -> Result<T, DbError> {
        self.0.one(sql, args).await
    }
}
