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

mod db;
pub mod list;
mod mfa;
mod queries;
mod rows;
mod signin;
mod sql;

pub use db::{DatabaseUrl, DbKind, Store, StoreOptions};
pub use list::{ListParams, Order, Page};
pub use mfa::{
    challenge_refusal, AttemptKind, FactorGuardRow, FactorLockRow, Refusal, Rejection,
    VerificationRows, VerifyAttempt, VerifyOutcome,
};
pub use rows::*;
pub use signin::{RefreshOutcome, SigningKeyRow};
