//! Master-key rotation (`tessera master-key rotate`): every value sealed with the master key
//! is sealed again under the current key, so old keys can leave `TESSERA_OLD_MASTER_KEYS`.
//!
//! [`SEALED_COLUMNS`] is the one list of the database's sealed columns; a test fails when the
//! schema has a column named like a sealed one that is not on it. The rotation first opens
//! every value with the key ring and changes nothing if any fails; then it re-seals, batch by
//! batch, each batch one transaction of compare-and-swap updates, so it runs beside live
//! servers without overwriting what they write meanwhile.

use tessera_core::seal::{KeyRing, SealError, Sealed};
use tessera_core::{Error, Timestamp};
use tessera_store::{Reseal, SealKind, SealedColumn, SealedRow, Store};

/// Every column of values sealed with the master key. Adding a sealed column is one line here.
pub const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "auth_factors",
        id: "id",
        key_id: "secret_key_id",
        sealed: "secret_sealed",
        purpose: crate::services::factors::TOTP_SEAL_PURPOSE,
        kind: SealKind::MasterKey,
    },
    SealedColumn {
        table: "signing_keys",
        id: "kid",
        key_id: "secret_key_id",
        sealed: "secret_sealed",
        purpose: crate::services::signin::SIGNING_KEY_PURPOSE,
        kind: SealKind::MasterKey,
    },
    SealedColumn {
        table: "master_key_check",
        id: "CAST(id AS TEXT)",
        key_id: "key_id",
        sealed: "sealed",
        purpose: crate::startup::KEY_CHECK_PURPOSE,
        kind: SealKind::MasterKey,
    },
    // The answers kept for Idempotency-Key replays (24 h).
    SealedColumn {
        table: "idempotency_keys",
        id: "id",
        key_id: "response_key_id",
        sealed: "response_sealed",
        purpose: crate::idempotency::SEAL_PURPOSE,
        kind: SealKind::MasterKey,
    },
    // The answer kept for a refresh retry is sealed with a key derived from the master key
    // and the client's token, which the database does not hold: it cannot be re-sealed, and
    // it is useless after its grace (60 s at most).
    SealedColumn {
        table: "refresh_tokens",
        id: "token_hash",
        key_id: "grace_key_id",
        sealed: "grace_sealed",
        purpose: crate::services::signin::REFRESH_GRACE_PURPOSE,
        kind: SealKind::WithClientSecret {
            until: "grace_until",
        },
    },
];

/// Rows read and re-sealed per transaction: short enough that the SQLite writer (shared with
/// running servers) is held for milliseconds.
pub const BATCH: i64 = 500;

/// A column whose values do not all open with the key ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unopenable {
    pub column: SealedColumn,
    /// Values sealed by a key that is not in the ring: (key id, count).
    pub unknown_keys: Vec<(String, u64)>,
    /// Values whose key is in the ring but that fail authentication (tampered, or moved).
    pub corrupt: u64,
}

impl Unopenable {
    pub fn count(&self) -> u64 {
        self.unknown_keys.iter().map(|(_, n)| n).sum::<u64>() + self.corrupt
    }
}

/// What the rotation did to one column.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnReport {
    pub table: &'static str,
    pub column: &'static str,
    /// Values sealed again under the current key.
    pub resealed: u64,
    /// Values that were under the current key already.
    pub already_current: u64,
    /// Values changed or deleted by someone else between the read and the write: left as
    /// they were (a server wrote them, so they need nothing).
    pub changed_meanwhile: u64,
    /// Values that cannot be re-sealed ([`SealKind::WithClientSecret`]) and were erased
    /// because their time was over.
    pub erased_expired: u64,
    /// Values still sealed by another key when the rotation ended: (key id, count).
    pub left_under_other_keys: Vec<(String, u64)>,
    /// For values that cannot be re-sealed: when the last of them still under another key
    /// stops mattering (milliseconds).
    pub live_until: Option<i64>,
}

#[derive(Debug)]
pub enum RotateOutcome {
    /// Some values cannot be opened: nothing was changed.
    Refused(Vec<Unopenable>),
    Done(Vec<ColumnReport>),
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn open(keys: &KeyRing, col: &SealedColumn, row: &SealedRow) -> Result<(), SealError> {
    keys.open(
        col.purpose,
        &row.id,
        &Sealed {
            key_id: row.key_id.clone(),
            blob: row.sealed.clone(),
        },
    )
    .map(drop)
}

/// Opens every value of every column that the ring can open; the columns where some fail.
pub async fn check_every_value_opens(
    store: &Store,
    keys: &KeyRing,
    batch: i64,
) -> Result<Vec<Unopenable>, Error> {
    let mut refused = Vec::new();
    for col in SEALED_COLUMNS {
        let mut bad = Unopenable {
            column: *col,
            unknown_keys: Vec::new(),
            corrupt: 0,
        };
        match col.kind {
            SealKind::MasterKey => {
                let mut after = String::new();
                loop {
                    let rows = store.sealed_rows_after(col, &after, None, batch).await?;
                    for row in &rows {
                        match open(keys, col, row) {
                            Ok(()) => {}
                            Err(SealError::UnknownKey(k)) => {
                                match bad.unknown_keys.iter_mut().find(|(id, _)| *id == k) {
                                    Some((_, n)) => *n += 1,
                                    None => bad.unknown_keys.push((k, 1)),
                                }
                            }
                            Err(_) => bad.corrupt += 1,
                        }
                    }
                    match rows.last() {
                        Some(last) if to_u64(batch) == rows.len() as u64 => {
                            after.clone_from(&last.id)
                        }
                        _ => break,
                    }
                }
            }
            // Cannot be opened without the client's token, and not worth refusing for:
            // such a value under a missing key only makes one retry within seconds fail.
            SealKind::WithClientSecret { .. } => {}
        }
        if bad.count() > 0 {
            refused.push(bad);
        }
    }
    Ok(refused)
}

/// Seals every value again under the current key of `keys`, column by column (see the module
/// header). Refuses, changing nothing, when any value cannot be opened.
pub async fn rotate(store: &Store, keys: &KeyRing, now: Timestamp) -> Result<RotateOutcome, Error> {
    rotate_in_batches(store, keys, now, BATCH).await
}

/// [`rotate`] with `batch` rows per read and per transaction (tests use small batches).
pub async fn rotate_in_batches(
    store: &Store,
    keys: &KeyRing,
    now: Timestamp,
    batch: i64,
) -> Result<RotateOutcome, Error> {
    let batch = batch.max(1);
    let refused = check_every_value_opens(store, keys, batch).await?;
    if !refused.is_empty() {
        return Ok(RotateOutcome::Refused(refused));
    }
    let current = keys.current_key_id();
    let mut reports = Vec::new();
    for col in SEALED_COLUMNS {
        let mut report = ColumnReport {
            table: col.table,
            column: col.sealed,
            ..ColumnReport::default()
        };
        let before = store.count_sealed_by_key(col).await?;
        report.already_current = before
            .iter()
            .filter(|(k, _)| k == current)
            .map(|(_, n)| to_u64(*n))
            .sum();
        match col.kind {
            SealKind::MasterKey => reseal_column(store, keys, col, batch, &mut report).await?,
            SealKind::WithClientSecret { .. } => {
                report.erased_expired = store.erase_expired_sealed(col, now).await?;
                report.live_until = store.latest_live_sealed_until(col, current).await?;
            }
        }
        report.left_under_other_keys = store
            .count_sealed_by_key(col)
            .await?
            .into_iter()
            .filter(|(k, _)| k != current)
            .map(|(k, n)| (k, to_u64(n)))
            .collect();
        reports.push(report);
    }
    Ok(RotateOutcome::Done(reports))
}

async fn reseal_column(
    store: &Store,
    keys: &KeyRing,
    col: &SealedColumn,
    batch: i64,
    report: &mut ColumnReport,
) -> Result<(), Error> {
    let current = keys.current_key_id();
    let mut after = String::new();
    loop {
        let rows = store
            .sealed_rows_after(col, &after, Some(current), batch)
            .await?;
        let mut sealed = Vec::with_capacity(rows.len());
        for row in &rows {
            let plain = keys
                .open(
                    col.purpose,
                    &row.id,
                    &Sealed {
                        key_id: row.key_id.clone(),
                        blob: row.sealed.clone(),
                    },
                )
                // Every value opened a moment ago; one that does not now was written since
                // by someone holding another key ring: a fault to stop at, not to skip.
                .map_err(|e| {
                    Error::Internal(format!(
                        "{}.{} of row {} no longer opens ({e}); rows re-sealed so far stay re-sealed, run the rotation again",
                        col.table, col.sealed, row.id
                    ))
                })?;
            sealed.push(
                keys.seal(col.purpose, &row.id, &plain)
                    .map_err(Error::internal)?,
            );
        }
        let updates: Vec<Reseal<'_>> = rows
            .iter()
            .zip(&sealed)
            .map(|(old, new)| Reseal {
                id: &old.id,
                old,
                key_id: &new.key_id,
                sealed: &new.blob,
            })
            .collect();
        let changed = store.reseal_rows(col, &updates).await?;
        report.resealed += changed;
        report.changed_meanwhile += updates.len() as u64 - changed;
        match rows.last() {
            Some(last) if to_u64(batch) == rows.len() as u64 => after.clone_from(&last.id),
            _ => return Ok(()),
        }
    }
}
