//! Tessera's persistence layer: one [`Store`] over SQLite (embedded default) or PostgreSQL
//! (many stateless nodes).
//!
//! Every SQL statement is written once, with `$N` placeholders that both backends accept, in
//! ordinary functions generic over the connection (`sql::Conn`, implemented by both
//! backends), run on whichever backend is configured by `db::call!` (which only picks the
//! connection; `db` says how to write a store function). Security state (replay steps,
//! attempt counters, single-use flags) only ever changes in single conditional statements,
//! so rules hold across nodes.
//!
//! SQLite is given one writer connection and a pool of readers: SQLite serialises writers
//! anyway, and letting many connections race for the write lock turns contention into
//! `busy_timeout` sleeps.

mod admin;
mod authkit;
mod backup;
mod challenge_events;
mod db;
mod idempotency;
mod keys;
pub mod list;
mod mfa;
mod outage;
mod prune;
mod queries;
mod reseal;
mod rows;
mod signin;
mod sql;
mod stats;

pub use admin::{AdminRow, AdminSessionRow};
pub use authkit::{AuthCodeRow, BrowserSession, NewSession, SessionRow};
pub use backup::{backup_sqlite, check_sqlite_database};
pub use db::{loosely_permitted_files, DatabaseUrl, DbKind, Store, StoreOptions};
pub use idempotency::{idempotency_id, IdempotencyClaim, IdempotencyResponse, IdempotencyRow};
pub use keys::SealedSample;
pub use list::{ListParams, Order, Page};
pub use mfa::{
    challenge_refusal, AttemptKind, FactorGuardRow, FactorLockRow, Refusal, Rejection,
    VerificationRows, VerifyAttempt, VerifyOutcome,
};
pub use outage::DEFAULT_DATABASE_TIMEOUT;
pub use prune::{PruneCutoffs, Pruned};
pub use queries::MetadataMerge;
pub use reseal::{Reseal, SealKind, SealedColumn, SealedRow};
pub use rows::*;
pub use signin::{NextRefresh, RefreshOutcome, RefreshTokenRow, SigningKeyRow};
pub use stats::PoolStats;
