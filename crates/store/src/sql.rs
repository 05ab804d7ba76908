//! The two connection types that [`crate::db::on_db!`] bodies run on, with the same method
//! names, so each statement is written once for both backends:
//!
//! * [`Lite`]: SQLite through `rusqlite`, run in place on the calling task. A statement costs
//!   a few microseconds, less than handing it to another thread (which is what an async
//!   SQLite driver does per statement: two context switches each, and on two cores those
//!   dominated verification). Writers take the one writer connection behind an async mutex
//!   and never wait on anything else while they hold it, so a transaction never spans an
//!   `.await` that could pend; readers take a connection from a small pool (WAL readers never
//!   block the writer).
//! * [`Pg`]: PostgreSQL through `sqlx`, a pool or one transaction's connection.
//!
//! Parameters are [`Arg`]s, typed (a PostgreSQL NULL needs its type); rows decode by position
//! into [`FromRow`] types.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rusqlite::types::{ToSql, ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OpenFlags};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{PgConnection, Postgres};
use tessera_core::Error;

/// A failed statement. Converts into [`Error::Internal`], or [`Error::Unavailable`] when the
/// database could not be reached; callers that expect a constraint violation look at
/// `unique` first.
#[derive(Debug)]
pub(crate) struct DbError {
    pub unique: bool,
    /// The database is out of reach (see [`crate::outage::is_unavailable`]).
    pub unavailable: bool,
    pub message: String,
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Self {
        if e.unavailable {
            Error::Unavailable(format!("database: {}", e.message))
        } else {
            Error::Internal(format!("database: {}", e.message))
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        // SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY
        let unique = e
            .sqlite_error()
            .is_some_and(|f| matches!(f.extended_code, 2067 | 1555));
        DbError {
            unique,
            unavailable: false,
            message: e.to_string(),
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        let (unique, message) = match &e {
            sqlx::Error::Database(db) => (
                db.is_unique_violation(),
                format!("{} {}", db.message(), db.constraint().unwrap_or_default()),
            ),
            _ => (false, e.to_string()),
        };
        DbError {
            unique,
            unavailable: crate::outage::is_unavailable(&e),
            message,
        }
    }
}

/// What a transaction body decided.
pub(crate) enum Tx<T> {
    Commit(T),
    /// Undo every write of the body (a refusal half-way through a multi-step rule).
    Rollback(T),
}

/// A statement parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    Blob(Option<&'a [u8]>),
    Bool(bool),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(v))
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(v))
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::Text(v.as_deref())
    }
}
impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Blob(Some(v))
    }
}
impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Arg::Blob(Some(v))
    }
}
impl<'a> From<&'a Option<Vec<u8>>> for Arg<'a> {
    fn from(v: &'a Option<Vec<u8>>) -> Self {
        Arg::Blob(v.as_deref())
    }
}

/// `args![a, b, c]`: a parameter list, `$1` first.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$($crate::sql::Arg::from($a)),*]
    };
}
pub(crate) use args;

impl ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Arg::Int(Some(v)) => ToSqlOutput::Owned(Value::Integer(v)),
            Arg::Bool(b) => ToSqlOutput::Owned(Value::Integer(i64::from(b))),
            Arg::Text(Some(s)) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Arg::Blob(Some(b)) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Arg::Int(None) | Arg::Text(None) | Arg::Blob(None) => ToSqlOutput::Owned(Value::Null),
        })
    }
}

/// A column type both backends decode.
pub(crate) trait Col:
    rusqlite::types::FromSql + for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>
{
}
impl<T> Col for T where
    T: rusqlite::types::FromSql + for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>
{
}

/// A result row of either backend, read by column position.
pub(crate) trait Cols {
    fn col<T: Col>(&self, i: usize) -> Result<T, DbError>;
}

impl Cols for rusqlite::Row<'_> {
    fn col<T: Col>(&self, i: usize) -> Result<T, DbError> {
        Ok(self.get(i)?)
    }
}

impl Cols for PgRow {
    fn col<T: Col>(&self, i: usize) -> Result<T, DbError> {
        Ok(sqlx::Row::try_get(self, i)?)
    }
}

/// A value made of `WIDTH` consecutive columns starting at `at` (so joins decode as tuples).
pub(crate) trait FromRow: Sized {
    const WIDTH: usize;
    fn from_cols(r: &impl Cols, at: usize) -> Result<Self, DbError>;
}

macro_rules! scalar_from_row {
    ($($t:ty),*) => {
        $(impl FromRow for $t {
            const WIDTH: usize = 1;
            fn from_cols(r: &impl Cols, at: usize) -> Result<Self, DbError> {
                r.col(at)
            }
        })*
    };
}
scalar_from_row!(i64, String, Option<i64>, Option<String>);

impl<A: FromRow, B: FromRow> FromRow for (A, B) {
    const WIDTH: usize = A::WIDTH + B::WIDTH;
    fn from_cols(r: &impl Cols, at: usize) -> Result<Self, DbError> {
        Ok((A::from_cols(r, at)?, B::from_cols(r, at + A::WIDTH)?))
    }
}

impl<A: FromRow, B: FromRow, C: FromRow> FromRow for (A, B, C) {
    const WIDTH: usize = A::WIDTH + B::WIDTH + C::WIDTH;
    fn from_cols(r: &impl Cols, at: usize) -> Result<Self, DbError> {
        Ok((
            A::from_cols(r, at)?,
            B::from_cols(r, at + A::WIDTH)?,
            C::from_cols(r, at + A::WIDTH + B::WIDTH)?,
        ))
    }
}

/// `from_row!(Type { a, b, c })`: decodes the fields from consecutive columns, in the order
/// given (which must be the order of the type's column list).
macro_rules! from_row {
    ($t:ty { $($f:ident),* $(,)? }) => {
        impl $crate::sql::FromRow for $t {
            const WIDTH: usize = [$(stringify!($f)),*].len();
            #[allow(unused_assignments)]
            fn from_cols(
                r: &impl $crate::sql::Cols,
                at: usize,
            ) -> Result<Self, $crate::sql::DbError> {
                let mut i = at;
                Ok(Self {
                    $($f: {
                        let v = r.col(i)?;
                        i += 1;
                        v
                    }),*
                })
            }
        }
    };
}
pub(crate) use from_row;

// ---- SQLite ------------------------------------------------------------------------------

/// The SQLite database: one writer connection and a pool of read-only connections.
///
/// Writes commit in groups: every write body runs in a savepoint of a shared transaction,
/// and the body that finds nobody queued behind it commits the group, for everyone in it
/// (each caller's result waits for that commit). Under load one commit (one WAL append of
/// the pages the group touched) serves many requests; alone, a body commits at once.
pub(crate) struct Sqlite {
    path: std::path::PathBuf,
    writer: tokio::sync::Mutex<Writer>,
    /// Tasks queued for the writer (a body that sees some defers the commit to them).
    queued: AtomicUsize,
    /// Group commits, and those made by a member whose group lost its last body.
    commits: AtomicU64,
    rescue_commits: AtomicU64,
    readers: std::sync::Mutex<Vec<Connection>>,
    /// Idle readers kept; more are opened under load and closed when returned.
    keep_readers: usize,
    /// Readers handed out and not yet returned (for the pool gauges of `/metrics`).
    readers_in_use: AtomicUsize,
}

const STATEMENT_CACHE: usize = 64;

fn open_error(path: &Path, e: rusqlite::Error) -> Error {
    Error::Internal(format!(
        "cannot open SQLite database {}: {e}",
        path.display()
    ))
}

impl Sqlite {
    /// Opens the (already migrated, WAL-mode) database file.
    pub(crate) fn open(path: &Path, max_readers: u32) -> Result<Self, Error> {
        let writer = Self::connect(path, false)?;
        // Checkpoints (copying the WAL back into the database file, then an fsync) run on
        // their own connection and thread; SQLite would otherwise run one inside whichever
        // commit crosses its threshold, holding the writer (and every queued request) for
        // milliseconds. Its own threshold stays as a backstop, ten times higher.
        writer
            .execute_batch("PRAGMA wal_autocheckpoint = 10000;")
            .map_err(|e| open_error(path, e))?;
        let checkpointer = Self::start_checkpointer(Self::connect(path, false)?);
        let reader = Self::connect(path, true)?;
        Ok(Sqlite {
            path: path.to_owned(),
            writer: tokio::sync::Mutex::new(Writer {
                conn: writer,
                open: false,
                checkpoint: checkpointer,
                in_body: false,
                group: Vec::new(),
            }),
            queued: AtomicUsize::new(0),
            commits: AtomicU64::new(0),
            rescue_commits: AtomicU64::new(0),
            readers: std::sync::Mutex::new(vec![reader]),
            keep_readers: usize::try_from(max_readers.max(1)).unwrap_or(1),
            readers_in_use: AtomicUsize::new(0),
        })
    }

    /// After each commit (coalesced while one runs), a PASSIVE checkpoint: it never waits
    /// for the writer or readers and copies what the readers allow; once it has caught up,
    /// the next commit starts the WAL over from its beginning, so the file stays small.
    /// Small, frequent checkpoints keep each fsync short: measured at 64 connections, the
    /// verify p99 was 78 ms with one checkpoint a second, 10 ms with one every 5 ms.
    fn start_checkpointer(conn: Connection) -> std::sync::mpsc::SyncSender<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let spawned = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                // Ends when the writer (holding the sender) is dropped.
                while rx.recv().is_ok() {
                    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                        tracing::warn!(error = %e, "SQLite checkpoint failed");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the SQLite checkpointer thread");
        }
        tx
    }

    fn connect(path: &Path, read_only: bool) -> Result<Connection, Error> {
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| open_error(path, e))?;
        // NORMAL in WAL mode is durable against application crashes and keeps commits off
        // fsync; a power cut can lose the last transactions only.
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
            .map_err(|e| open_error(path, e))?;
        register_gcra(&conn).map_err(|e| open_error(path, e))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    /// A read-only connection, back to the pool when dropped.
    pub(crate) fn reader(&self) -> Result<Reader<'_>, Error> {
        let idle = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(c) => c,
            None => Self::connect(&self.path, true)?,
        };
        self.readers_in_use.fetch_add(1, Ordering::Relaxed);
        Ok(Reader {
            conn: Some(conn),
            pool: self,
        })
    }

    /// `(readers in use, idle readers, tasks queued for the writer)`, for `/metrics`: two
    /// atomic loads and the length of the idle list.
    pub(crate) fn pool_figures(&self) -> (usize, usize, usize) {
        let idle = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        (
            self.readers_in_use.load(Ordering::Relaxed),
            idle,
            self.queued.load(Ordering::Relaxed),
        )
    }

    /// The writer, exclusively, with a savepoint open for one body (see [`Sqlite`]).
    pub(crate) async fn enter(&self) -> Result<WriterGuard<'_>, Error> {
        let mut w = {
            let _queued = Queued::new(&self.queued);
            self.writer.lock().await
        };
        w.start_body()?;
        Ok(w)
    }

    /// Ends a body: keeps or undoes its savepoint, then commits the group or joins it.
    pub(crate) fn leave<T>(
        &self,
        mut w: WriterGuard<'_>,
        r: Result<Tx<T>, Error>,
    ) -> (Result<T, Error>, Option<GroupTicket>) {
        let keep = matches!(r, Ok(Tx::Commit(_)));
        let out = w.end_body(keep).and(r).map(|t| match t {
            Tx::Commit(v) | Tx::Rollback(v) => v,
        });
        if self.queued.load(Ordering::Acquire) > 0 && w.group.len() < MAX_GROUP {
            if out.is_err() {
                return (out, None);
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            w.group.push(tx);
            return (out, Some(rx));
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
        let committed = w.commit();
        (committed.and(out), None)
    }

    /// Waits for the group commit a body joined. Should the group's last member vanish (its
    /// request cancelled while queued), the wait ends by committing the group itself.
    pub(crate) async fn settle<T>(
        &self,
        out: Result<T, Error>,
        ticket: Option<GroupTicket>,
    ) -> Result<T, Error> {
        let Some(mut rx) = ticket else {
            return out;
        };
        let done = match tokio::time::timeout(Duration::from_millis(20), &mut rx).await {
            Ok(done) => done,
            Err(_) => {
                {
                    let mut w = self.writer.lock().await;
                    if w.open && !w.in_body {
                        // Our own sender is in this group; the commit answers it.
                        self.rescue_commits.fetch_add(1, Ordering::Relaxed);
                        let _ = w.commit();
                    }
                }
                rx.await
            }
        };
        match done {
            Ok(Ok(())) => out,
            Ok(Err(message)) => Err(Error::Internal(format!("database: {message}"))),
            Err(_) => Err(Error::Internal(
                "database: the commit group was lost".into(),
            )),
        }
    }

    /// Drops the idle readers and checkpoints the WAL into the database file.
    pub(crate) async fn close(&self) {
        self.readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        let mut w = self.writer.lock().await;
        if w.open && !w.in_body {
            let _ = w.commit();
        }
        if let Err(e) = w.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
            tracing::warn!(error = %e, "SQLite checkpoint at close failed");
        }
    }
}

/// The GCRA rule as the SQL functions `tessera_gcra_next(tat, now, interval)` and
/// `tessera_gcra_allows(tat, now, interval, window)`, which PostgreSQL gets from
/// `sql/verify_attempt.pgsql`: here they call the Rust of `tessera_core::limits`, so SQLite
/// has no SQL copy of the rule.
fn register_gcra(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    use tessera_core::limits::{gcra_allows, gcra_next};
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    conn.create_scalar_function("tessera_gcra_next", 3, flags, |ctx| {
        Ok(gcra_next(ctx.get(0)?, ctx.get(1)?, ctx.get(2)?))
    })?;
    conn.create_scalar_function("tessera_gcra_allows", 4, flags, |ctx| {
        Ok(gcra_allows(
            ctx.get(0)?,
            ctx.get(1)?,
            ctx.get(2)?,
            ctx.get(3)?,
        ))
    })
}

/// The most bodies one commit serves (bounds how long the first of them waits).
const MAX_GROUP: usize = 64;

pub(crate) type GroupTicket = tokio::sync::oneshot::Receiver<Result<(), String>>;
pub(crate) type WriterGuard<'a> = tokio::sync::MutexGuard<'a, Writer>;

/// The writer connection and its group-commit state.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    /// A group transaction is open.
    open: bool,
    /// A body's savepoint is open (still true on entry: the last body panicked).
    in_body: bool,
    /// Bodies done and waiting for the group's commit.
    group: Vec<tokio::sync::oneshot::Sender<Result<(), String>>>,
    /// Wakes the checkpointer thread.
    checkpoint: std::sync::mpsc::SyncSender<()>,
}

impl Writer {
    fn start_body(&mut self) -> Result<(), Error> {
        if self.open && self.conn.is_autocommit() {
            // SQLite rolled the group back itself (an I/O error, a full disk): its members
            // must not be told their writes committed.
            self.in_body = false;
            let _ = self.commit();
        }
        if self.in_body {
            // A body panicked half-way: undo what it wrote, keep the group.
            self.conn
                .execute_batch("ROLLBACK TO body; RELEASE body;")
                .map_err(DbError::from)?;
            self.in_body = false;
        }
        if !self.open {
            if !self.conn.is_autocommit() {
                self.conn.execute_batch("ROLLBACK").map_err(DbError::from)?;
            }
            self.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(DbError::from)?;
            self.open = true;
        }
        self.conn
            .execute_batch("SAVEPOINT body")
            .map_err(DbError::from)?;
        self.in_body = true;
        Ok(())
    }

    fn end_body(&mut self, keep: bool) -> Result<(), Error> {
        let sql = if keep {
            "RELEASE body;"
        } else {
            "ROLLBACK TO body; RELEASE body;"
        };
        self.conn.execute_batch(sql).map_err(DbError::from)?;
        self.in_body = false;
        Ok(())
    }

    /// Commits the group and answers everyone in it.
    fn commit(&mut self) -> Result<(), Error> {
        self.open = false;
        let r = if self.conn.is_autocommit() {
            Err("the transaction was rolled back by SQLite".to_owned())
        } else {
            self.conn.execute_batch("COMMIT").map_err(|e| e.to_string())
        };
        if r.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        if r.is_ok() {
            // Full means a checkpoint is already due: this commit joins it.
            let _ = self.checkpoint.try_send(());
        }
        for member in self.group.drain(..) {
            let _ = member.send(r.clone());
        }
        r.map_err(|m| Error::Internal(format!("database: {m}")))
    }
}

/// Counts a task as queued for the writer until it holds it (or is cancelled).
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::AcqRel);
        Queued(n)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A pooled reader connection.
pub(crate) struct Reader<'a> {
    conn: Option<Connection>,
    pool: &'a Sqlite,
}

impl Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("present until drop")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.readers_in_use.fetch_sub(1, Ordering::Relaxed);
            let mut idle = self
                .pool
                .readers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < self.pool.keep_readers {
                idle.push(c);
            }
        }
    }
}

/// A SQLite connection for one `on_db!` body. Methods are `async` only to share their names
/// and call sites with [`Pg`]; they finish without ever pending.
pub(crate) struct Lite<'c> {
    conn: &'c mut Connection,
}

impl<'c> Lite<'c> {
    pub(crate) fn new(conn: &'c mut Connection) -> Self {
        Lite { conn }
    }

    fn prepared(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<rusqlite::CachedStatement<'_>, DbError> {
        let mut st = self.conn.prepare_cached(sql)?;
        let mut name = String::with_capacity(4);
        for (i, a) in args.iter().enumerate() {
            use std::fmt::Write;
            name.clear();
            let _ = write!(name, "${}", i + 1);
            // `$N` is a named parameter to SQLite, numbered in order of first appearance.
            if let Some(idx) = st.parameter_index(&name)? {
                st.raw_bind_parameter(idx, a)?;
            }
        }
        Ok(st)
    }

    pub(crate) async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, DbError> {
        let mut st = self.prepared(sql, args)?;
        let n = st.raw_execute()?;
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    pub(crate) async fn all<T: FromRow>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<T>, DbError> {
        self.all_now(sql, args)
    }

    fn all_now<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>, DbError> {
        let mut st = self.prepared(sql, args)?;
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        // Stepped to the end, so an UPDATE ... RETURNING always completes.
        while let Some(row) = rows.next()? {
            out.push(T::from_cols(row, 0)?);
        }
        Ok(out)
    }

    pub(crate) async fn opt<T: FromRow>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<T>, DbError> {
        Ok(self.all_now(sql, args)?.into_iter().next())
    }

    pub(crate) async fn one<T: FromRow>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<T, DbError> {
        self.all_now(sql, args)?
            .into_iter()
            .next()
            .ok_or_else(|| DbError {
                unique: false,
                unavailable: false,
                message: "no rows returned by a query that expected one".into(),
            })
    }
}

// ---- one statement -----------------------------------------------------------------------

/// The connection of a `write` body: good for exactly one statement. Its methods take it by
/// value, so a second statement does not compile ("use of moved value: `c`"), on either
/// backend. A PostgreSQL `write` runs on the bare pool (no BEGIN/COMMIT round trips), where
/// each statement commits alone; allowing a second one would make a body atomic on SQLite
/// (a savepoint) and not on PostgreSQL. A body of several statements is a `transaction`.
pub(crate) struct Single<'a, C>(pub(crate) &'a mut C);

macro_rules! single_statement {
    ($conn:ty) => {
        impl Single<'_, $conn> {
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
            pub(crate) async fn one<T: FromRow>(
                self,
                sql: &str,
                args: &[Arg<'_>],
            ) -> Result<T, DbError> {
                self.0.one(sql, args).await
            }
        }
    };
}
single_statement!(Lite<'_>);
single_statement!(Pg<'_>);

// ---- PostgreSQL --------------------------------------------------------------------------

/// One PostgreSQL connection: checked out for one body ([`crate::outage::Checkout`]), or a
/// transaction's.
pub(crate) struct Pg<'c>(pub(crate) &'c mut PgConnection);

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

fn bind<'q>(mut q: PgQuery<'q>, args: &[Arg<'q>]) -> PgQuery<'q> {
    for a in args {
        q = match *a {
            Arg::Int(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Blob(v) => q.bind(v),
            Arg::Bool(v) => q.bind(v),
        };
    }
    q
}

impl Pg<'_> {
    pub(crate) async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, DbError> {
        let q = bind(sqlx::query(sql), args);
        Ok(q.execute(&mut *self.0).await?.rows_affected())
    }

    pub(crate) async fn all<T: FromRow>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<T>, DbError> {
        let q = bind(sqlx::query(sql), args);
        let rows = q.fetch_all(&mut *self.0).await?;
        rows.iter().map(|r| T::from_cols(r, 0)).collect()
    }

    pub(crate) async fn opt<T: FromRow>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<T>, DbError> {
        let q = bind(sqlx::query(sql), args);
        let row = q.fetch_optional(&mut *self.0).await?;
        row.map(|r| T::from_cols(&r, 0)).transpose()
    }

    pub(crate) async fn one<T: FromRow>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<T, DbError> {
        let q = bind(sqlx::query(sql), args);
        let row = q.fetch_one(&mut *self.0).await?;
        T::from_cols(&row, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{on_db, Db};
    use crate::{DatabaseUrl, Store, StoreOptions};

    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = DatabaseUrl::parse(dir.path().join("t.db").to_str().unwrap()).unwrap();
        Store::connect(&url, &StoreOptions::default())
            .await
            .unwrap()
    }

    fn lite(s: &Store) -> &Sqlite {
        match &*s.db {
            Db::Sqlite(l) => l,
            Db::Postgres(_) => unreachable!(),
        }
    }

    /// Inserts event `id`, then keeps it, undoes it, or fails, as `how` says.
    async fn body(s: &Store, id: String, how: u8) -> Result<(), Error> {
        on_db!(s, transaction, |c| {
            c.exec(
                "INSERT INTO events (id, event, data, created_at) VALUES ($1, 'x', '{}', 0)",
                args![&id],
            )
            .await?;
            match how {
                0 => Ok(Tx::Commit(())),
                1 => Ok(Tx::Rollback(())),
                _ => Err(Error::Internal("refused".into())),
            }
        })
    }

    async fn ids(s: &Store) -> Result<Vec<String>, Error> {
        on_db!(s, read, |c| Ok(c
            .all("SELECT id FROM events ORDER BY id", &[])
            .await?))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn queued_bodies_share_one_commit_and_keep_their_own_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let before = lite(&s).commits.load(Ordering::Relaxed);
        let held = lite(&s).writer.lock().await;
        let tasks: Vec<_> = (0..30u8)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { body(&s, format!("e{i:02}"), i % 3).await })
            })
            .collect();
        while lite(&s).queued.load(Ordering::Acquire) < 30 {
            tokio::task::yield_now().await;
        }
        drop(held);
        let mut results = vec![];
        for t in tasks {
            results.push(t.await.unwrap());
        }
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.is_ok(), i % 3 != 2, "body {i}: {r:?}");
        }
        let expected: Vec<String> = (0..30)
            .filter(|i| i % 3 == 0)
            .map(|i| format!("e{i:02}"))
            .collect();
        assert_eq!(
            ids(&s).await.unwrap(),
            expected,
            "kept bodies committed, undone ones did not"
        );
        assert_eq!(
            lite(&s).commits.load(Ordering::Relaxed) - before,
            1,
            "30 queued bodies, one commit"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_group_whose_last_member_is_cancelled_still_commits() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let held = lite(&s).writer.lock().await;
        let first = {
            let s = s.clone();
            tokio::spawn(async move { body(&s, "first".into(), 0).await })
        };
        let second = {
            let s = s.clone();
            tokio::spawn(async move { body(&s, "second".into(), 0).await })
        };
        while lite(&s).queued.load(Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }
        // `first` gets the writer and, seeing `second` queued, leaves the commit to it; but
        // `second` is cancelled before it runs.
        drop(held);
        second.abort();
        first.await.unwrap().unwrap();
        assert!(second.await.unwrap_err().is_cancelled());
        assert_eq!(ids(&s).await.unwrap(), vec!["first".to_owned()]);
        assert_eq!(lite(&s).rescue_commits.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn parallel_bodies_on_many_threads_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let tasks: Vec<_> = (0..64u8)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { body(&s, format!("p{i:02}"), 0).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(ids(&s).await.unwrap().len(), 64);
    }
}
