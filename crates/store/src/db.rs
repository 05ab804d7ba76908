//! Connecting, migrating, and running store functions on the configured backend.
//!
//! # How to write a store function
//!
//! A statement is written once, with `$1, $2, ..` placeholders, and run through the
//! [`crate::sql::Conn`] methods `exec` (rows changed), `all`, `opt` and `one` (rows decoded
//! by position into a [`crate::sql::FromRow`] type: a `*Row` with `from_row!`, a scalar, or
//! a tuple of them). Parameters are `args![a, b]`.
//!
//! * One statement needs no function of its own: `self.read_all / read_opt / read_one(sql,
//!   args![..])` on a reader, `self.write_exec / write_opt(sql, args![..])` as a one-statement
//!   write.
//! * Anything more is an ordinary generic function, run by [`call!`], which only picks the
//!   connection:
//!
//! ```ignore
//! pub async fn end_session(&self, id: &str, now: Timestamp) -> Result<Option<SessionRow>, Error> {
//!     call!(self, transaction, |c| end_session_tx(c, id, now))
//! }
//!
//! async fn end_session_tx<C: Conn>(c: &mut C, id: &str, now: Timestamp)
//!     -> Result<Tx<Option<SessionRow>>, Error> {
//!     let row: Option<SessionRow> = c.opt("UPDATE .. RETURNING ..", args![id, now]).await?;
//!     if row.is_none() {
//!         return Ok(Tx::Rollback(None)); // undo everything written so far
//!     }
//!     c.exec("UPDATE ..", args![id, now]).await?;
//!     Ok(Tx::Commit(row))
//! }
//! ```
//!
//!   `read` functions take `c: &mut C` and return `Result<T, Error>`; `write` functions take
//!   `c: Single<'_, C>` (one statement: a second does not compile) and return `Result<T,
//!   Error>`; `transaction` functions take `c: &mut C` and return `Result<Tx<T>, Error>`. A
//!   [`crate::sql::DbError`] converts into `Error` with `?`; match on its `unique` field ([`crate::sql::Unique`], by constraint)
//!   where a unique constraint means a client error.
//!
//! Times are [`tessera_core::Timestamp`] in the API and BIGINT milliseconds in the
//! columns, factor types [`tessera_core::FactorKind`] and TEXT: both bind as `Arg`s and
//! decode as row fields directly (`sql::row::Column` converts; add an impl there for a new
//! domain type).
//!
//! Porting an `on_db!(self, MODE, |c| { body })` written before: move the body into such a
//! function (its captured variables become parameters) and call it with `call!`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use tessera_core::Error;

use crate::sql::{Arg, Conn, FromRow, Single, Tx};

/// A database URL whose `Debug` and `Display` never show a password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

/// Which backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

impl DatabaseUrl {
    /// Accepts `postgres://`/`postgresql://` URLs, `sqlite:` URLs, and plain file paths
    /// (SQLite). Any other scheme is refused rather than mistaken for a file name, so a typo
    /// like `postgress://` never silently creates an empty SQLite database.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the database URL is empty".into());
        }
        if let Some((scheme, _)) = s.split_once("://") {
            if !matches!(scheme, "postgres" | "postgresql" | "sqlite") {
                return Err(format!(
                    "unsupported database URL scheme '{scheme}://': use postgres://... for PostgreSQL, or sqlite://PATH (or a plain file path) for SQLite"
                ));
            }
        } else if let Some((scheme, _)) = s.split_once(':') {
            // `sqlite:path` is fine; a Windows drive letter never reaches a Linux server.
            if scheme != "sqlite"
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+')
                && !scheme.is_empty()
                && !s.starts_with('/')
                && !s.starts_with('.')
            {
                return Err(format!(
                    "unsupported database URL scheme '{scheme}:': use postgres://... for PostgreSQL, or sqlite://PATH (or a plain file path) for SQLite"
                ));
            }
        }
        Ok(DatabaseUrl(s.to_owned()))
    }

    pub fn kind(&self) -> DbKind {
        if self.0.starts_with("postgres://") || self.0.starts_with("postgresql://") {
            DbKind::Postgres
        } else {
            DbKind::Sqlite
        }
    }

    /// For SQLite, the database file path; `None` for PostgreSQL.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        if self.kind() != DbKind::Sqlite {
            return None;
        }
        let p = self
            .0
            .strip_prefix("sqlite://")
            .or_else(|| self.0.strip_prefix("sqlite:"))
            .unwrap_or(&self.0);
        let p = p.split('?').next().unwrap_or(p);
        Some(std::path::PathBuf::from(p))
    }

    /// Which database this is, for people: `SQLite database /abs/path/tessera.db` or
    /// `PostgreSQL database postgres://user:***@host/db` (never the password).
    pub fn describe(&self) -> String {
        match self.sqlite_path() {
            Some(p) => format!("SQLite database {}", absolute(&p).display()),
            None => format!("PostgreSQL database {}", self.masked()),
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn masked(&self) -> String {
        // scheme://user:password@host -> scheme://user:***@host
        if let Some((scheme, rest)) = self.0.split_once("://") {
            if let Some((userinfo, host)) = rest.rsplit_once('@') {
                if let Some((user, _)) = userinfo.split_once(':') {
                    return format!("{scheme}://{user}:***@{host}");
                }
            }
        }
        self.0.clone()
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.masked())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Pool size and the database timeout.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// PostgreSQL: how long getting a connection (opening one included), and then each
    /// operation, may take before it fails with [`Error::Unavailable`] (see
    /// [`crate::outage`]). Unused by SQLite.
    pub timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
            timeout: crate::outage::DEFAULT_DATABASE_TIMEOUT,
        }
    }
}

pub(crate) enum Db {
    Sqlite(Box<crate::sql::Sqlite>),
    Postgres(PgPool),
}

/// The persistence handle. Cheap to clone (pools are reference-counted).
#[derive(Clone)]
pub struct Store {
    pub(crate) db: std::sync::Arc<Db>,
    /// [`StoreOptions::timeout`], the bound of every PostgreSQL operation.
    pub(crate) deadline: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?})", self.kind())
    }
}

/// `call!(store, MODE, |c| f(c, more, args))`: runs the store function `f` (an ordinary
/// generic `async fn f<C: Conn>(..) -> Result<T, tessera_core::Error>`) on a connection of
/// the configured backend, chosen by MODE. The macro only picks the connection and brackets
/// the call; it takes nothing but a call of a function by name, so every body is a normal
/// function, type-checked once.
///
/// * `read`: `f(c: &mut C, ..)`, on a SQLite reader connection, or a PostgreSQL connection from the pool;
/// * `write`: `f(c: Single<'_, C>, ..)`, ONE statement ([`crate::sql::Single`] is used up by
///   it: a second one does not compile), on the single SQLite writer (in a savepoint of the
///   current commit group: see [`crate::sql::Sqlite`]) or a PostgreSQL connection from the pool.
///   One statement is atomic on both, and costs no BEGIN/COMMIT round trips on PostgreSQL;
/// * `transaction`: `f(c: &mut C, ..) -> Result<Tx<T>, Error>`, all or nothing for any number
///   of statements; `f` returns [`crate::sql::Tx`] to keep or undo its writes (an `Err` always
///   undoes them). SQLite: a savepoint of the commit group; PostgreSQL: a transaction.
///
/// A future dropped half-way leaves nothing behind: on SQLite the writer's guard undoes the
/// savepoint when dropped ([`crate::sql::sqlite::WriterGuard`]), on PostgreSQL `sqlx` rolls
/// back a transaction that was dropped before its commit.
///
/// On PostgreSQL the whole call, the checkout of its connection included, is bounded by the
/// database timeout, and a connection whose call did not run to its end is closed, not
/// returned to the pool ([`crate::outage`]).
macro_rules! call {
    ($store:expr, read, |$c:ident| $($f:ident)::+ ( $($a:expr),* $(,)? )) => {
        match &*$store.db {
            $crate::db::Db::Sqlite(lite) => match lite.reader() {
                Ok(mut reader) => match reader.conn() {
                    Ok(conn) => {
                        let $c = &mut $crate::sql::Lite::new(conn);
                        let r: Result<_, tessera_core::Error> = $($f)::+($($a),*).await;
                        r
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            $crate::db::Db::Postgres(pool) => {
                $crate::outage::bounded($store.deadline, async {
                    let mut conn = $crate::outage::Checkout::acquire(pool).await?;
                    let r: Result<_, tessera_core::Error> = {
                        let $c = &mut $crate::sql::Pg(conn.conn());
                        $($f)::+($($a),*).await
                    };
                    conn.finish();
                    r
                })
                .await
            }
        }
    };
    ($store:expr, write, |$c:ident| $($f:ident)::+ ( $($a:expr),* $(,)? )) => {
        match &*$store.db {
            $crate::db::Db::Sqlite(lite) => match lite.enter().await {
                Ok(mut w) => {
                    let r: Result<_, tessera_core::Error> = {
                        let mut conn = $crate::sql::Lite::new(&mut w.conn);
                        let $c = $crate::sql::Single(&mut conn);
                        $($f)::+($($a),*).await
                    };
                    let (out, ticket) = lite.leave(w, r.map($crate::sql::Tx::Commit));
                    lite.settle(out, ticket).await
                }
                Err(e) => Err(e),
            },
            $crate::db::Db::Postgres(pool) => {
                $crate::outage::bounded($store.deadline, async {
                    let mut conn = $crate::outage::Checkout::acquire(pool).await?;
                    let r: Result<_, tessera_core::Error> = {
                        let mut pg = $crate::sql::Pg(conn.conn());
                        let $c = $crate::sql::Single(&mut pg);
                        $($f)::+($($a),*).await
                    };
                    conn.finish();
                    r
                })
                .await
            }
        }
    };
    ($store:expr, transaction, |$c:ident| $($f:ident)::+ ( $($a:expr),* $(,)? )) => {
        match &*$store.db {
            $crate::db::Db::Sqlite(lite) => match lite.enter().await {
                Ok(mut w) => {
                    let r: Result<$crate::sql::Tx<_>, tessera_core::Error> = {
                        let $c = &mut $crate::sql::Lite::new(&mut w.conn);
                        $($f)::+($($a),*).await
                    };
                    let (out, ticket) = lite.leave(w, r);
                    lite.settle(out, ticket).await
                }
                Err(e) => Err(e),
            },
            $crate::db::Db::Postgres(pool) => {
                $crate::outage::bounded($store.deadline, async {
                    let mut conn = $crate::outage::Checkout::acquire(pool).await?;
                    let r = match sqlx::Connection::begin(conn.conn()).await {
                        Ok(mut tx) => {
                            let r: Result<$crate::sql::Tx<_>, tessera_core::Error> = {
                                let $c = &mut $crate::sql::Pg(&mut tx);
                                $($f)::+($($a),*).await
                            };
                            $crate::db::pg_finish(tx, r).await
                        }
                        Err(e) => Err($crate::db::internal(e)),
                    };
                    conn.finish();
                    r
                })
                .await
            }
        }
    };
}
pub(crate) use call;

/// A sqlx error as [`Error::Internal`], or [`Error::Unavailable`] when the database is out
/// of reach ([`crate::outage::db_error`]).
pub(crate) fn internal(e: sqlx::Error) -> Error {
    crate::outage::db_error(e)
}

/// Ends a PostgreSQL transaction as its body decided (an `Err` rolls back when `tx` drops).
pub(crate) async fn pg_finish<T>(
    tx: sqlx::Transaction<'_, sqlx::Postgres>,
    r: Result<Tx<T>, Error>,
) -> Result<T, Error> {
    match r? {
        Tx::Commit(v) => {
            tx.commit().await.map_err(internal)?;
            Ok(v)
        }
        Tx::Rollback(v) => {
            tx.rollback().await.map_err(internal)?;
            Ok(v)
        }
    }
}

// One statement on the connection a mode gives: for the many store functions that are
// just one statement, so they need no function of their own.
async fn all<C: Conn, T: FromRow>(c: &mut C, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>, Error> {
    Ok(c.all(sql, args).await?)
}
async fn opt<C: Conn, T: FromRow>(
    c: &mut C,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<Option<T>, Error> {
    Ok(c.opt(sql, args).await?)
}
async fn one<C: Conn, T: FromRow>(c: &mut C, sql: &str, args: &[Arg<'_>]) -> Result<T, Error> {
    Ok(c.one(sql, args).await?)
}
async fn exec_one<C: Conn>(c: Single<'_, C>, sql: &str, args: &[Arg<'_>]) -> Result<u64, Error> {
    Ok(c.exec(sql, args).await?)
}
async fn opt_one<C: Conn, T: FromRow>(
    c: Single<'_, C>,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<Option<T>, Error> {
    Ok(c.opt(sql, args).await?)
}

impl Store {
    /// Runs one read statement: every row.
    pub(crate) async fn read_all<T: FromRow>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<T>, Error> {
        call!(self, read, |c| all(c, sql, args))
    }

    /// Runs one read statement: its first row, if any.
    pub(crate) async fn read_opt<T: FromRow>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<T>, Error> {
        call!(self, read, |c| opt(c, sql, args))
    }

    /// Runs one read statement: its first row; none is an error.
    pub(crate) async fn read_one<T: FromRow>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<T, Error> {
        call!(self, read, |c| one(c, sql, args))
    }

    /// Runs one writing statement: the number of rows it changed.
    pub(crate) async fn write_exec(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, Error> {
        call!(self, write, |c| exec_one(c, sql, args))
    }

    /// Runs one writing statement with a `RETURNING` clause: its first row, if any.
    pub(crate) async fn write_opt<T: FromRow>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<T>, Error> {
        call!(self, write, |c| opt_one(c, sql, args))
    }
}

impl Store {
    /// Connects and runs the migrations of the backend, creating the database (SQLite file,
    /// or the schema in an empty PostgreSQL database) when it does not exist yet.
    pub async fn connect(url: &DatabaseUrl, opts: &StoreOptions) -> Result<Self, Error> {
        Self::open(url, opts, true).await
    }

    /// Like [`Store::connect`], but only for a database that Tessera has already created: a
    /// missing SQLite file, or a PostgreSQL database without Tessera's tables, is an error
    /// naming the database, and nothing is created. For the management commands, so that one
    /// run in the wrong directory (or with a mistyped URL) cannot leave an empty database
    /// behind and report success.
    pub async fn connect_existing(url: &DatabaseUrl, opts: &StoreOptions) -> Result<Self, Error> {
        Self::open(url, opts, false).await
    }

    async fn open(url: &DatabaseUrl, opts: &StoreOptions, create: bool) -> Result<Self, Error> {
        let db = match url.kind() {
            DbKind::Postgres => {
                // Unreachable at start is an error, not a wait: the operator sees the cause at
                // once, and a supervisor (systemd, Kubernetes) restarts the process anyway.
                let pool = PgPoolOptions::new()
                    .max_connections(opts.max_connections)
                    .acquire_timeout(opts.timeout)
                    .connect(url.expose())
                    .await
                    .map_err(|e| {
                        let why = match e {
                            sqlx::Error::PoolTimedOut => format!(
                                "no connection within {} s (is it running, and reachable from here? the wait is --database-timeout-seconds)",
                                opts.timeout.as_secs_f32()
                            ),
                            e => e.to_string(),
                        };
                        Error::Internal(format!("cannot connect to PostgreSQL at {url}: {why}"))
                    })?;
                // Backend-specific on purpose: the catalogue query differs, and it must run
                // before the migrations, which would otherwise create the tables.
                if !create {
                    let (exists,): (bool,) =
                        sqlx::query_as("SELECT to_regclass('environment') IS NOT NULL")
                            .fetch_one(&pool)
                            .await
                            .map_err(internal)?;
                    if !exists {
                        pool.close().await;
                        return Err(Error::Internal(format!(
                            "the PostgreSQL database {url} has no Tessera data (run `tessera serve` or `tessera init` with this URL once to create it)"
                        )));
                    }
                }
                sqlx::migrate!("./migrations/postgres")
                    .run(&pool)
                    .await
                    .map_err(|e| Error::Internal(format!("PostgreSQL migration failed: {e}")))?;
                install_pg_functions(&pool).await?;
                Db::Postgres(pool)
            }
            DbKind::Sqlite => {
                let path = url.sqlite_path().unwrap_or_default();
                if !create && !path.is_file() {
                    return Err(Error::Internal(format!(
                        "no database at {} (run `tessera serve` or `tessera init` there once to create it, or pass --database-url)",
                        absolute(&path).display()
                    )));
                }
                if create {
                    create_private_file(&path)?;
                }
                migrate_sqlite(&path, create).await?;
                Db::Sqlite(Box::new(crate::sql::Sqlite::open(
                    &path,
                    opts.max_connections,
                )?))
            }
        };
        Ok(Store {
            db: std::sync::Arc::new(db),
            deadline: opts.timeout,
        })
    }

    pub fn kind(&self) -> DbKind {
        match &*self.db {
            Db::Sqlite(_) => DbKind::Sqlite,
            Db::Postgres(_) => DbKind::Postgres,
        }
    }

    /// Closes the pools (SQLite checkpoints its WAL when the last connection closes).
    pub async fn close(&self) {
        match &*self.db {
            Db::Sqlite(lite) => lite.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }

    /// Cheap readiness probe: one round trip on PostgreSQL, bounded by the database timeout.
    pub async fn ping(&self) -> Result<(), Error> {
        // BIGINT: PostgreSQL types a bare `1` as INT4, which does not decode as i64.
        let _: i64 = self.read_one("SELECT CAST(1 AS BIGINT)", &[]).await?;
        Ok(())
    }
}

/// Creates a new SQLite database file readable by its owner only (0600).
///
/// SQLite creates files 0644 less the umask, so under the usual umask every local user could
/// read emails and password hashes. Creating the empty file first is enough: SQLite gives the
/// `-wal` and `-shm` files it creates later the mode of the database file (its unix VFS copies
/// it), so they are 0600 too. An existing file keeps its mode (the operator may have chosen
/// it); `tessera serve` warns when it is open to group or others.
fn create_private_file(path: &std::path::Path) -> Result<(), Error> {
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
        return Ok(());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::Internal(format!(
            "cannot create the SQLite database {}: {e}",
            path.display()
        ))),
    }
}

/// The SQLite database's files (`path`, `-wal`, `-shm`) that exist and that group or others
/// may access, with their modes: they hold emails, password hashes and sealed secrets.
pub fn loosely_permitted_files(path: &std::path::Path) -> Vec<(std::path::PathBuf, u32)> {
    let mut found = Vec::new();
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = std::path::PathBuf::from(p);
        if let Ok(meta) = std::fs::metadata(&p) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                found.push((p, mode));
            }
        }
    }
    found
}

/// The PostgreSQL functions of the verification rule; their one current text.
pub(crate) const PG_FUNCTIONS: &str = include_str!("../sql/verify_attempt.pgsql");

/// Installs [`PG_FUNCTIONS`] (`CREATE OR REPLACE`), after the migrations, so the database
/// runs the rule of this binary. In one transaction holding an advisory lock: nodes starting
/// together replace the functions one after the other (concurrent `CREATE OR REPLACE` of one
/// function can fail with "tuple concurrently updated"), and a failure leaves the old text.
async fn install_pg_functions(pool: &PgPool) -> Result<(), Error> {
    /// An arbitrary key, the same in every Tessera node ("tesseraf" in ASCII).
    const LOCK: i64 = 0x7465_7373_6572_6166;
    let fail = |e: sqlx::Error| {
        Error::Internal(format!(
            "installing sql/verify_attempt.pgsql on PostgreSQL failed: {e}"
        ))
    };
    let mut tx = pool.begin().await.map_err(fail)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    sqlx::raw_sql(PG_FUNCTIONS)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    tx.commit().await.map_err(fail)
}

/// Runs the SQLite migrations with sqlx's migrator (its `_sqlx_migrations` bookkeeping is
/// the schema version of existing databases), on a connection closed right after.
async fn migrate_sqlite(path: &std::path::Path, create: bool) -> Result<(), Error> {
    use sqlx::Connection;
    let opts = SqliteConnectOptions::from_str("sqlite:")
        .map_err(internal)?
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .map_err(|e| {
            Error::Internal(format!(
                "cannot open SQLite database {}: {e}",
                path.display()
            ))
        })?;
    sqlx::migrate!("./migrations/sqlite")
        .run(&mut conn)
        .await
        .map_err(|e| Error::Internal(format!("SQLite migration failed: {e}")))?;
    conn.close().await.map_err(internal)
}

/// `path` made absolute against the working directory, for messages: a database missing
/// because a command ran in the wrong directory is then obvious.
fn absolute(path: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_mask_the_password() {
        let u = DatabaseUrl::parse("postgres://alice:hunter2@db.example:5432/tessera").unwrap();
        assert!(!format!("{u:?}").contains("hunter2"));
        assert!(!format!("{u}").contains("hunter2"));
        assert!(format!("{u}").contains("alice:***@db.example"));
        assert_eq!(u.kind(), DbKind::Postgres);
    }

    #[test]
    fn unknown_schemes_are_refused_not_taken_for_file_names() {
        for bad in [
            "postgress://x/y",
            "mysql://root@localhost/db",
            "redis://x",
            "file:x",
        ] {
            assert!(DatabaseUrl::parse(bad).is_err(), "{bad}");
        }
        for good in [
            "tessera.db",
            "./data/t.db",
            "/var/lib/t.db",
            "sqlite://t.db",
            "sqlite:t.db",
            "postgresql://h/d",
        ] {
            assert!(DatabaseUrl::parse(good).is_ok(), "{good}");
        }
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/t.db?mode=rwc")
                .unwrap()
                .sqlite_path()
                .unwrap(),
            std::path::PathBuf::from("data/t.db")
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_sqlite_database_and_its_wal_and_shm_files_are_readable_by_the_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let url = DatabaseUrl::parse(path.to_str().unwrap()).unwrap();
        let store = Store::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        // A write and a read while open: the WAL and the shared-memory index exist now.
        store.set_mfa_required(true).await.unwrap();
        store.ping().await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let p = dir.path().join(format!("t.db{suffix}"));
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}: {mode:o}", p.display());
        }
        assert!(loosely_permitted_files(&path).is_empty());
        store.close().await;
    }

    #[cfg(unix)]
    #[test]
    fn files_open_to_group_or_others_are_reported_with_their_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let wal = dir.path().join("t.db-wal");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(loosely_permitted_files(&path), vec![(path.clone(), 0o644)]);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(loosely_permitted_files(&path), vec![(path, 0o640)]);
    }

    #[test]
    fn sqlite_and_postgres_migrations_stay_paired() {
        let names = |dir: &str| {
            let mut v: Vec<String> =
                std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
            v.sort();
            v
        };
        let (s, p) = (names("sqlite"), names("postgres"));
        assert!(!s.is_empty());
        assert_eq!(
            s, p,
            "every migration needs a twin with the same version and name"
        );
    }
}
