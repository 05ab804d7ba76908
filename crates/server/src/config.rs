//! Server configuration as one plain value, built by the CLI from flags and environment and
//! by tests directly. No globals: everything reaches handlers through `AppState`.

use std::net::SocketAddr;
use tessera_store::DatabaseUrl;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: DatabaseUrl,
    /// Default TOTP issuer (WorkOS uses the environment's team name).
    pub environment_name: String,
    /// `TESSERA_MASTER_KEY`: base64 of 32 bytes. When `None` on SQLite, a key file beside the
    /// database is used (created on first start); PostgreSQL refuses to start without it.
    pub master_key: Option<zeroize::Zeroizing<String>>,
    /// Earlier master keys, still accepted to open old rows after a rotation.
    pub old_master_keys: Vec<zeroize::Zeroizing<String>>,
    /// How long a challenge can be verified (WorkOS: 10 minutes).
    pub challenge_ttl_ms: i64,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Database pool size.
    pub max_connections: u32,
    /// Print the first API key to the log when the database has none.
    pub bootstrap_api_key: bool,
}

impl Config {
    /// The defaults `tessera serve` uses, for a given database.
    pub fn new(database_url: DatabaseUrl) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url,
            environment_name: "Tessera".to_owned(),
            master_key: None,
            old_master_keys: Vec::new(),
            challenge_ttl_ms: 10 * 60 * 1000,
            body_limit_bytes: 256 * 1024,
            max_connections: 16,
            bootstrap_api_key: true,
        }
    }
}
