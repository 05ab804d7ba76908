#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End-to-end tests over real HTTP (port 0), on SQLite always and on PostgreSQL when
//! `TESSERA_TEST_DATABASE_URL` is set. One test binary; each module covers one resource.

mod helpers;
mod process;

mod hosted;
mod hostile;
mod idempotency;

mod authkit;
mod backup;
mod basics;
mod browser;
mod cli;
mod concurrency;
mod crash;
mod dashboard;
mod events;
mod factors;
mod hardening_users;
mod logs;
mod master_key;
mod metrics;
mod mfa;
mod nodes;
mod openapi;
mod outage;
mod readme;
mod sdk;
mod sdk_wire;
mod signin;
mod sms;
mod storage;
mod users;
mod web;
