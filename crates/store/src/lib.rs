//! Tessera's persistence layer: one [`Store`] over SQLite (embedded default) or PostgreSQL
//! (many stateless nodes).
//!
//! Every SQL statement is written once, with `$N` placeholders that both backends accept, and
//! run on whichever pool is configured through the [`on_db!`] macro, which expands the same
//! body once per backend. Security state (replay steps, attempt counters, single-use flags)
//! only ever changes in single conditional statements, so rules hold across nodes.
//!
//! SQLite is given one writer connection and a pool of readers: SQLite serialises writers
//! anyway, and letting many connections race for the write lock turns contention into
//! `busy_timeout` sleeps.

mod admin;
mod authkit;
mod db;
mod idempotency;
mod keys;
pub mod list;
mod mfa;
mod prune;
mod queries;
mod rows;
mod signin;
mod sql;

pub use admin::{AdminRow, AdminSessionRow};
pub use authkit::{AuthCodeRow, BrowserSession, NewSession, SessionRow};
pub use db::{loosely_permitted_files, DatabaseUrl, DbKind, Store, StoreOptions};
pub use idempotency::{idempotency_id, IdempotencyClaim, IdempotencyResponse, IdempotencyRow};
pub use keys::SealedSample;
pub use list::{ListParams, Order, Page};
pub use mfa::{
    challenge_refusal, AttemptKind, FactorGuardRow, FactorLockRow, Refusal, Rejection,
    VerificationRows, VerifyAttempt, VerifyOutcome,
};
pub use prune::{PruneCutoffs, Pruned};
pub use queries::MetadataMerge;
pub use rows::*;
pub use signin::{NextRefresh, RefreshOutcome, RefreshTokenRow, SigningKeyRow};
