//! SQLite through `rusqlite`: [`Sqlite`] (one writer connection with group commit, and a
//! pool of read-only connections) and [`Lite`], a connection as a [`Conn`].
//!
//! Statements run in place on the calling task. A statement costs a few microseconds, less
//! than handing it to another thread (which is what an async SQLite driver does per
//! statement: two context switches each, and on two cores those dominated verification).
//! Writers take the one writer connection behind an async mutex and never wait on anything
//! else while they hold it, so a transaction never spans an `.await` that could pend; readers
//! take a connection from a small pool (WAL readers never block the writer).

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tessera_core::Error;

use super::{Arg, Conn, DbError, FromRow, Tx};

/// Whether write bodies share commits (see [`Sqlite`]). `false`: every body commits on its
/// own (one WAL append and, at a checkpoint, one fsync each), as a plain single-writer
/// SQLite would; the one switch for measuring what grouping buys with `tessera-bench`.
const GROUP_COMMIT: bool = true;

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
            WriterGuard(self.writer.lock().await)
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
        if let Err(e) = w.end_body(keep) {
            // The savepoint could be neither kept nor undone: nothing of the group may
            // commit with it half there.
            w.abandon_body();
            return (Err(e), None);
        }
        let out = r.map(|t| match t {
            Tx::Commit(v) | Tx::Rollback(v) => v,
        });
        if GROUP_COMMIT && self.queued.load(Ordering::Acquire) > 0 && w.group.len() < MAX_GROUP {
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

/// The writer, held by one body from [`Sqlite::enter`] to [`Sqlite::leave`]. Dropped in
/// between (the body's future was dropped while it waited on something, or the body
/// panicked), it undoes the body's writes there and then and commits the group: no
/// savepoint stays open, nothing half-written can ever commit, and the members waiting for
/// the group's commit get it.
pub(crate) struct WriterGuard<'a>(tokio::sync::MutexGuard<'a, Writer>);

impl Deref for WriterGuard<'_> {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        &self.0
    }
}

impl DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut Writer {
        &mut self.0
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        if self.0.in_body {
            self.0.abandon_body();
        }
    }
}

/// The writer connection and its group-commit state.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    /// A group transaction is open.
    open: bool,
    /// A body's savepoint is open.
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
            // Never true here ([`WriterGuard`] cleans up); a backstop.
            self.abandon_body();
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

    /// Undoes the open savepoint of a body that did not finish, then commits the group (the
    /// members' writes, done and kept); if the savepoint cannot be undone, rolls the whole
    /// group back and tells its members so.
    fn abandon_body(&mut self) {
        let undone = self.conn.execute_batch("ROLLBACK TO body; RELEASE body;");
        self.in_body = false;
        match undone {
            Ok(()) if self.open => {
                let _ = self.commit();
            }
            Ok(()) => {}
            Err(e) => {
                self.open = false;
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                let why = format!("an unfinished write could not be undone: {e}");
                for member in self.group.drain(..) {
                    let _ = member.send(Err(why.clone()));
                }
            }
        }
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

impl Reader<'_> {
    /// The connection. It is there until `drop` hands it back to the pool (the `Option` lets
    /// `drop` move it out), so the `Err` is never seen; it replaces an `expect`.
    pub(crate) fn conn(&mut self) -> Result<&mut Connection, Error> {
        self.conn
            .as_mut()
            .ok_or_else(|| Error::Internal("a SQLite reader used after its return".into()))
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

/// A SQLite connection as a [`Conn`]. Its methods are `async` only to share the trait with
/// PostgreSQL; they finish without ever pending.
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

    /// Every row, read at once; the one read path of `all`, `opt` and `one`.
    fn rows<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>, DbError> {
        let mut st = self.prepared(sql, args)?;
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        // Stepped to the end, so an UPDATE ... RETURNING always completes.
        while let Some(row) = rows.next()? {
            out.push(T::from_cols(row, 0)?);
        }
        Ok(out)
    }
}

impl Conn for Lite<'_> {
    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, DbError> {
        let mut st = self.prepared(sql, args)?;
        let n = st.raw_execute()?;
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    async fn all<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>, DbError> {
        self.rows(sql, args)
    }

    async fn opt<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<T>, DbError> {
        Ok(self.rows(sql, args)?.into_iter().next())
    }

    async fn one<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<T, DbError> {
        self.rows(sql, args)?
            .into_iter()
            .next()
            .ok_or_else(|| DbError::other("no rows returned by a query that expected one"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{call, Db};
    use crate::sql::args;
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
        call!(s, transaction, |c| insert_then(c, &id, how))
    }

    async fn insert_then<C: Conn>(c: &mut C, id: &str, how: u8) -> Result<Tx<()>, Error> {
        c.exec(
            "INSERT INTO events (id, event, data, created_at) VALUES ($1, 'x', '{}', 0)",
            args![id],
        )
        .await?;
        match how {
            0 => Ok(Tx::Commit(())),
            1 => Ok(Tx::Rollback(())),
            _ => Err(Error::Internal("refused".into())),
        }
    }

    async fn ids(s: &Store) -> Result<Vec<String>, Error> {
        s.read_all("SELECT id FROM events ORDER BY id", &[]).await
    }

    fn event(id: &str) -> crate::EventRow {
        crate::EventRow {
            id: id.into(),
            event: "x".into(),
            data: "{}".into(),
            created_at: tessera_core::Timestamp::from_millis(0),
        }
    }

    /// Starts `insert_event_then_wait` for event `id`, which waits forever for its commit
    /// once it has inserted (holding the writer); the receiver hears when it has.
    fn stall(
        s: &Store,
        id: &str,
    ) -> (
        tokio::task::JoinHandle<Result<(), Error>>,
        tokio::sync::oneshot::Receiver<()>,
    ) {
        let (inserted, is_inserted) = tokio::sync::oneshot::channel();
        let s = s.clone();
        let e = event(id);
        let task = tokio::spawn(async move {
            s.insert_event_then_wait(&e, async move {
                let _ = inserted.send(());
                std::future::pending::<()>().await
            })
            .await
        });
        (task, is_inserted)
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
            if GROUP_COMMIT { 1 } else { 30 },
            "30 queued bodies, one commit (or 30 without group commit)"
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
        assert_eq!(
            lite(&s).rescue_commits.load(Ordering::Relaxed),
            u64::from(GROUP_COMMIT)
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stored_factor_type_decodes_to_its_kind_and_an_unknown_one_is_an_error() {
        use tessera_core::FactorKind;
        let mut conn = Connection::open_in_memory().unwrap();
        let mut c = Lite::new(&mut conn);
        for k in FactorKind::ALL {
            let got: FactorKind = c.one("SELECT $1", args![k]).await.unwrap();
            assert_eq!(got, k);
        }
        let unknown = c.one::<FactorKind>("SELECT 'email'", &[]).await;
        let e = Error::from(unknown.unwrap_err());
        assert!(
            matches!(&e, Error::Internal(m) if m.contains("unknown factor type \"email\"")),
            "{e:?}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_body_dropped_half_way_is_undone_at_once_and_leaves_no_savepoint_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let (task, inserted) = stall(&s, "dropped");
        inserted.await.unwrap();
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        {
            let w = lite(&s).writer.lock().await;
            assert!(!w.in_body, "the body's savepoint is closed");
            assert!(!w.open, "the group was committed");
            assert!(
                w.conn.is_autocommit(),
                "no transaction is open on the writer"
            );
        }
        assert_eq!(ids(&s).await.unwrap(), Vec::<String>::new());
        body(&s, "next".into(), 0).await.unwrap();
        assert_eq!(ids(&s).await.unwrap(), vec!["next".to_owned()]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_group_member_waiting_behind_a_dropped_body_gets_its_commit() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let held = lite(&s).writer.lock().await;
        let first = {
            let s = s.clone();
            tokio::spawn(async move { body(&s, "first".into(), 0).await })
        };
        let (stalled, inserted) = stall(&s, "stalled");
        while lite(&s).queued.load(Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }
        // `first` gets the writer and, seeing `stalled` queued, leaves the commit to it and
        // waits; `stalled` inserts, then is dropped before it can commit the group.
        drop(held);
        inserted.await.unwrap();
        stalled.abort();
        let first = tokio::time::timeout(Duration::from_secs(5), first)
            .await
            .expect("the member got its answer, not a hang");
        first.unwrap().unwrap();
        assert_eq!(ids(&s).await.unwrap(), vec!["first".to_owned()]);
        assert_eq!(lite(&s).rescue_commits.load(Ordering::Relaxed), 0);
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
