//! Use cases: one function per API operation, taking plain request data and `AppState`,
//! returning domain rows or views. No axum types, so they are callable from the CLI and tests.

pub mod admins;
pub mod api_keys;
pub mod authkit;
pub mod dashboard;
pub mod events;
pub mod factors;
pub mod health;
pub mod master_key;
pub mod mfa;
pub mod sessions;
pub mod signin;
pub mod users;

/// Deserialises a field that distinguishes "absent" (`None`) from explicit `null`
/// (`Some(None)`), for the few update fields where `null` means "clear".
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}
