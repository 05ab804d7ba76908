//! Tessera's HTTP server: a WorkOS-compatible MFA and User Management API.
//!
//! Layout: [`config`] is a plain value; [`startup`] turns it into a running [`startup::Application`]
//! (store, keys, listener); [`routes`] holds one module per resource with thin handlers that
//! authenticate by extractor, call one function of [`services`], and map the result to the
//! types of [`views`]. [`error`] maps every domain error to a WorkOS-shaped response.
//! [`web`] holds the server-rendered pages (dashboard, hosted sign-in), merged as a router of
//! their own beside the documented API.

pub mod cli;
pub mod cli_ops;
pub mod config;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod logging;
pub mod maintenance;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod serve;
pub mod services;
pub mod sms;
pub mod startup;
pub mod state;
pub mod views;
pub mod web;

pub use config::Config;
pub use startup::Application;
pub use state::AppState;
