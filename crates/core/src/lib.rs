//! Tessera's domain core: everything that can be decided without I/O.
//!
//! This crate owns the security primitives (TOTP, sealing, password hashing, token hashing),
//! identifiers and timestamps in WorkOS format, the injected [`clock::Clock`], input
//! validation and the one domain [`error::Error`] enum. It knows nothing of HTTP or SQL, so
//! every rule here is unit-tested without a server.

pub mod authkit;
pub mod clock;
pub mod error;
pub mod factor;
pub mod id;
pub mod jwt;
pub mod limits;
pub mod otp;
pub mod password;
pub mod qr;
pub mod seal;
pub mod token;
pub mod totp;
pub mod validate;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use error::{Error, FieldError, MfaInterruption, MfaStep};
pub use factor::FactorKind;
