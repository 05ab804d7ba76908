//! The operations commands of the command line: `tessera master-key rotate` and
//! `tessera backup PATH` (see docs/operations.md). Like the other management commands they
//! open an existing database only; results go to stdout, what changed and reminders to
//! stderr.

use std::path::{Path, PathBuf};

use anyhow::bail;
use tessera_core::{Clock, Timestamp};

use crate::services::master_key::{self, RotateOutcome};
use crate::Config;

/// `tessera master-key rotate`.
pub async fn rotate_master_key(config: &Config, clock: &dyn Clock) -> anyhow::Result<()> {
    // The database first: for SQLite, loading the keys of a database that does not exist
    // would create a key file.
    let (store, _) = crate::startup::open_existing_store(config).await?;
    let r = async {
        let keys = crate::startup::load_keys(config)?;
        let outcome = master_key::rotate(&store, &keys, clock.now()).await?;
        Ok::<_, anyhow::Error>((keys, outcome))
    }
    .await;
    store.close().await;
    let (keys, outcome) = r?;
    let reports = match outcome {
        RotateOutcome::Refused(columns) => {
            let mut why = Vec::new();
            for c in &columns {
                let mut parts: Vec<String> = c
                    .unknown_keys
                    .iter()
                    .map(|(k, n)| format!("{n} sealed by master key {k}, which is not configured"))
                    .collect();
                if c.corrupt > 0 {
                    parts.push(format!(
                        "{} failing authentication (tampered or moved)",
                        c.corrupt
                    ));
                }
                why.push(format!(
                    "{}.{}: {} value(s) cannot be opened ({})",
                    c.column.table,
                    c.column.sealed,
                    c.count(),
                    parts.join("; ")
                ));
            }
            bail!(
                "refusing to rotate the master key, nothing was changed: {}. This command holds master keys {} (TESSERA_MASTER_KEY or the key file first, then TESSERA_OLD_MASTER_KEYS): add the missing keys to TESSERA_OLD_MASTER_KEYS and run it again.",
                why.join("; "),
                keys.key_ids().join(", ")
            );
        }
        RotateOutcome::Done(reports) => reports,
    };
    let current = keys.current_key_id();
    let mut changed = false;
    let mut left = Vec::new();
    let mut live_until = None::<i64>;
    for r in &reports {
        let mut line = format!("{}.{}: ", r.table, r.column);
        if is_client_sealed(r) {
            // Sealed with a client's token: never re-sealed, only outlived.
            line.push_str(&format!(
                "cannot be re-sealed (sealed with the client's token); {} expired erased",
                r.erased_expired
            ));
            let older: u64 = r.left_under_other_keys.iter().map(|(_, n)| n).sum();
            match r.live_until.filter(|_| older > 0) {
                Some(until) => {
                    live_until = Some(live_until.map_or(until, |u| u.max(until)));
                    line.push_str(&format!(
                        ", {older} under older keys until {}",
                        Timestamp(until).to_rfc3339_millis()
                    ));
                }
                None => line.push_str(", none under older keys"),
            }
        } else {
            line.push_str(&format!(
                "{} re-sealed, {} already under the current key",
                r.resealed, r.already_current
            ));
            if r.changed_meanwhile > 0 {
                line.push_str(&format!(
                    ", {} changed meanwhile by a server (left as it wrote them)",
                    r.changed_meanwhile
                ));
            }
            for (k, n) in &r.left_under_other_keys {
                left.push(format!("{}.{}: {n} under {k}", r.table, r.column));
            }
        }
        changed |= r.resealed > 0 || r.erased_expired > 0;
        println!("{line}");
    }
    if changed {
        crate::cli::changed(config);
    }
    if !left.is_empty() {
        bail!(
            "some secrets are still sealed by other master keys ({}): a server still seals with an older key. Give every node the new TESSERA_MASTER_KEY, restart them, and run the rotation again before removing old keys.",
            left.join(", ")
        );
    }
    let wait = match live_until {
        Some(t) => format!(
            "once open challenges and hosted sign-in forms (the challenge TTL, 10 minutes by default) and the refresh retry copies above (until {}) have expired",
            Timestamp(t).to_rfc3339_millis()
        ),
        None => "once open challenges and hosted sign-in forms have expired (the challenge TTL, 10 minutes by default)".to_owned(),
    };
    eprintln!(
        "every stored secret is sealed under master key {current}; remove the old keys from TESSERA_OLD_MASTER_KEYS on every node {wait}"
    );
    Ok(())
}

fn is_client_sealed(r: &master_key::ColumnReport) -> bool {
    master_key::SEALED_COLUMNS.iter().any(|c| {
        c.table == r.table
            && c.sealed == r.column
            && matches!(c.kind, tessera_store::SealKind::WithClientSecret { .. })
    })
}

/// `tessera backup PATH [--force]`.
pub async fn backup(config: &Config, dest: &Path, force: bool) -> anyhow::Result<()> {
    let Some(db_path) = config.database_url.sqlite_path() else {
        bail!(
            "`tessera backup` copies SQLite databases. Back up PostgreSQL with its own tools, e.g. `pg_dump --format=custom --file=tessera.dump \"$TESSERA_DATABASE_URL\"` (restore with pg_restore), and keep TESSERA_MASTER_KEY (and TESSERA_OLD_MASTER_KEYS) apart from the dump: see docs/operations.md"
        );
    };
    // Not through the Store: a backup only reads (no migration of the live database, and no
    // checkpoint at close waiting for the servers' readers).
    tessera_store::check_sqlite_database(&db_path)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let dest = std::path::absolute(dest)?;
    if std::fs::symlink_metadata(&dest).is_ok() {
        if !force {
            bail!(
                "{} exists: choose another path, or pass --force to replace it",
                dest.display()
            );
        }
        let ours = protected_files(&db_path);
        let target = dest.canonicalize()?;
        if ours.contains(&target) {
            bail!(
                "{} is the database or its key file, not a place for its backup",
                dest.display()
            );
        }
        std::fs::remove_file(&dest)?;
    }
    let bytes = tessera_store::backup_sqlite(&db_path, &dest)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", dest.display());
    eprintln!(
        "backup: {} -> {} ({bytes} bytes, mode 0600)",
        config.database_url.describe(),
        dest.display()
    );
    if config.master_key.is_some() {
        eprintln!(
            "The backup holds no master key: this database's is TESSERA_MASTER_KEY (with TESSERA_OLD_MASTER_KEYS). Keep a copy of it apart from the backup; without it the backup's TOTP secrets and signing keys cannot be opened."
        );
    } else {
        let key = crate::startup::key_file_path(&std::path::absolute(&db_path)?);
        eprintln!(
            "The backup holds no master key: keep a copy of the key file {} too (restore it beside the database, named <database>.key); without it the backup's TOTP secrets and signing keys cannot be opened.",
            key.display()
        );
    }
    Ok(())
}

/// The database's own files, which `--force` must never replace.
fn protected_files(db_path: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for suffix in ["", "-wal", "-shm", ".key"] {
        let mut p = db_path.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(c) = PathBuf::from(p).canonicalize() {
            files.push(c);
        }
    }
    files
}
