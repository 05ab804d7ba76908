//! `tessera backup`: a consistent copy of a SQLite database while servers keep writing to it.
//!
//! SQLite's `VACUUM INTO` writes the database as one read transaction sees it, so the copy is a
//! snapshot even under a steady write load (in WAL mode the writers go on meanwhile). It is
//! preferred here to the online-backup API, which copies pages in steps and starts over
//! whenever another connection writes between two steps (so it may never finish under load
//! unless it copies everything in one step, which is what `VACUUM INTO` does, compacted).
//! PostgreSQL has its own tools (`pg_dump`); see docs/operations.md.

use std::path::Path;

use tessera_core::Error;

/// Writes a consistent copy of the SQLite database at `source` to `dest`, a new file created
/// readable by its owner only (0600): it holds emails, password hashes and sealed secrets.
/// Fails if `dest` exists (and then leaves it alone). Returns the size of the copy in bytes.
pub async fn backup_sqlite(source: &Path, dest: &Path) -> Result<u64, Error> {
    let (source, dest) = (source.to_owned(), dest.to_owned());
    tokio::task::spawn_blocking(move || vacuum_into(&source, &dest))
        .await
        .map_err(|e| Error::Internal(format!("the backup task failed: {e}")))?
}

/// Checks that `source` is a SQLite database Tessera has set up, without changing it (no
/// migration: a backup taken by a newer binary must not alter the live database).
pub async fn check_sqlite_database(source: &Path) -> Result<(), Error> {
    let source = source.to_owned();
    tokio::task::spawn_blocking(move || open_source(&source).map(drop))
        .await
        .map_err(|e| Error::Internal(format!("the backup task failed: {e}")))?
}

/// A read-only connection to an existing Tessera database.
fn open_source(source: &Path) -> Result<rusqlite::Connection, Error> {
    let abs = std::path::absolute(source).unwrap_or_else(|_| source.to_owned());
    if !source.is_file() {
        return Err(Error::Internal(format!(
            "no database at {} (run `tessera serve` or `tessera init` there once to create it, or pass --database-url)",
            abs.display()
        )));
    }
    let fail = |e: rusqlite::Error| {
        Error::Internal(format!(
            "cannot read the SQLite database {}: {e}",
            abs.display()
        ))
    };
    let conn = rusqlite::Connection::open_with_flags(
        source,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fail)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(fail)?;
    let set_up: Result<i64, _> =
        conn.query_row("SELECT COUNT(*) FROM environment", [], |r| r.get(0));
    if !matches!(set_up, Ok(1..)) {
        return Err(Error::Internal(format!(
            "the SQLite database {} has not been set up by Tessera (run `tessera serve` or `tessera init` with it once)",
            abs.display()
        )));
    }
    Ok(conn)
}

fn vacuum_into(source: &Path, dest: &Path) -> Result<u64, Error> {
    // Before the destination is created: a wrong source leaves nothing behind.
    let conn = open_source(source)?;
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Error::Internal(format!("cannot {what} {}: {e}", dest.display()))
    };
    // Created first, empty and 0600 (VACUUM INTO accepts an empty file and keeps its mode);
    // `create_new` refuses an existing file, whatever it is.
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(dest).map_err(|e| fail("create", &e))?;
    let copied = (|| {
        let dest_text = dest
            .to_str()
            .ok_or_else(|| fail("name", &"the path is not UTF-8"))?;
        conn.execute("VACUUM INTO ?1", [dest_text])
            .map_err(|e| fail("write the backup", &e))?;
        drop(conn);
        // VACUUM INTO does not fsync its output: make the copy durable before saying so.
        let f = std::fs::File::open(dest).map_err(|e| fail("sync", &e))?;
        f.sync_all().map_err(|e| fail("sync", &e))?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(f.metadata().map_err(|e| fail("sync", &e))?.len())
    })();
    if copied.is_err() {
        // Ours, created above: never leave a half-written copy that looks like a backup.
        let _ = std::fs::remove_file(dest);
    }
    copied
}
