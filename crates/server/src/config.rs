//! Server configuration as one plain value, built by the CLI from flags and environment and
//! by tests directly. No globals: everything reaches handlers through `AppState`.

use std::net::SocketAddr;
use tessera_core::limits::Rate;
use tessera_store::DatabaseUrl;

/// Where SMS codes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsProvider {
    /// Writes the message to the server log. For development only: codes appear in the log.
    Log,
    /// POSTs `{to, body, challenge_id}` as JSON to `url`, signed with HMAC-SHA256 of
    /// `"<timestamp>.<body>"` under `secret` in `Tessera-Signature: t=<ts>,v1=<hex>`.
    Webhook {
        url: String,
        secret: zeroize::Zeroizing<String>,
    },
    /// The Twilio Messages API (`{base_url}/2010-04-01/Accounts/{sid}/Messages.json`).
    Twilio {
        base_url: String,
        account_sid: String,
        auth_token: zeroize::Zeroizing<String>,
        from: String,
    },
}

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
    /// TOTP steps accepted either side of the current one (RFC 6238 §5.2: at most one step
    /// of network delay is recommended).
    pub totp_window: u32,
    /// Evaluated codes per challenge before it is dead (Twilio Verify and Kratos use 5).
    pub max_challenge_attempts: i64,
    /// Failed verifications allowed per factor.
    pub factor_failure_rate: Rate,
    /// Failed verifications allowed per user across factors (NIST SP 800-63B: at most 100).
    pub user_failure_rate: Rate,
    /// Consecutive failed verifications that lock a factor until an administrator unlocks
    /// it (NIST SP 800-63B §5.2.2: at most 100). 1..=100.
    pub factor_lockout_after: i64,
    /// SMS messages per phone number (against SMS pumping).
    pub sms_rate: Rate,
    pub sms_provider: SmsProvider,
    /// `iss` of access tokens.
    pub issuer: String,
    /// Lifetime of access tokens (WorkOS: 5 minutes).
    pub access_token_ttl_ms: i64,
    /// How long a node trusts an API key it has looked up before reading it again: a
    /// revocation reaches every node within this time. 0 reads the key on every request.
    pub api_key_cache_ms: i64,
    /// Lifetime of pending authentication tokens between password and MFA.
    pub pending_token_ttl_ms: i64,
    /// Password failures allowed per account, and per client IP.
    pub password_account_rate: Rate,
    pub password_ip_rate: Rate,
    /// How long a client may take to send a request's headers (slowloris defence), and to
    /// finish a whole request including its body.
    pub header_read_timeout: std::time::Duration,
    pub request_timeout: std::time::Duration,
    /// The first access-token signing key (PKCS#8 DER of an RSA-2048 key) when the database
    /// has none, instead of generating one. For tests only: a key generation costs up to a
    /// second of CPU per server start, and the test suite starts hundreds. `tessera serve`
    /// never sets it.
    pub first_signing_key: Option<std::sync::Arc<zeroize::Zeroizing<Vec<u8>>>>,
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
            totp_window: 1,
            max_challenge_attempts: 5,
            factor_failure_rate: Rate::new(10, 15 * 60 * 1000),
            user_failure_rate: Rate::new(100, 60 * 60 * 1000),
            factor_lockout_after: 100,
            sms_rate: Rate::new(5, 10 * 60 * 1000),
            sms_provider: SmsProvider::Log,
            issuer: "tessera".to_owned(),
            access_token_ttl_ms: 5 * 60 * 1000,
            pending_token_ttl_ms: 10 * 60 * 1000,
            api_key_cache_ms: 1000,
            password_account_rate: Rate::new(10, 15 * 60 * 1000),
            password_ip_rate: Rate::new(100, 15 * 60 * 1000),
            header_read_timeout: std::time::Duration::from_secs(10),
            request_timeout: std::time::Duration::from_secs(30),
            first_signing_key: None,
            bootstrap_api_key: true,
        }
    }
}
