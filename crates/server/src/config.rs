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
    /// Where `GET /metrics` (Prometheus) is served, on a listener of its own; `None` (the
    /// default): not served. Never the API's address, so metrics are not public by accident.
    pub metrics_listen: Option<SocketAddr>,
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
    /// PostgreSQL: how long a request may wait for a database connection, and then for each
    /// database operation, before it is answered 503 (`--database-timeout-seconds`). Also
    /// how long the start waits for the database.
    pub database_timeout: std::time::Duration,
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
    /// The URL clients and browsers reach this server at (`https://auth.example.com`, no
    /// trailing `/`): the access tokens' `iss` (unless `issuer` is set), and whether pages
    /// can use `Secure` cookies (an `https://` URL). Empty: `Application::build` sets it to
    /// `http://` + the address it bound (so `--listen 127.0.0.1:0` gets the real port).
    pub public_url: String,
    /// `iss` of access tokens when it must differ from `public_url` (`TESSERA_ISSUER`).
    pub issuer: Option<String>,
    /// Lifetime of access tokens (WorkOS: 5 minutes).
    pub access_token_ttl_ms: i64,
    /// How long a node trusts an API key it has looked up before reading it again: a
    /// revocation reaches every node within this time. 0 reads the key on every request.
    pub api_key_cache_ms: i64,
    /// How long after a rotation the same refresh token, presented again by the same API
    /// key for the same end user (`ip_address`, `user_agent`), gets the same answer instead of revoking the session (a retry after a lost
    /// answer; Auth0 and Okta have the same grace). 0 turns it off.
    pub refresh_reuse_grace_ms: i64,
    /// Lifetime of pending authentication tokens between password and MFA.
    pub pending_token_ttl_ms: i64,
    /// Password failures allowed per account, and per client IP.
    pub password_account_rate: Rate,
    pub password_ip_rate: Rate,
    /// How long a client may take to send a request's headers (slowloris defence), and to
    /// finish a whole request including its body.
    pub header_read_timeout: std::time::Duration,
    pub request_timeout: std::time::Duration,
    /// How long a connection with no request in flight stays open (HTTP/1 keep-alive and
    /// HTTP/2 alike).
    pub idle_timeout: std::time::Duration,
    /// Open client connections at most; past it new connections are closed at once. Lowered
    /// at start to fit the open-files limit.
    pub max_open_connections: usize,
    /// The first access-token signing key (PKCS#8 DER of an RSA-2048 key) when the database
    /// has none, instead of generating one. For tests only: a key generation costs up to a
    /// second of CPU per server start, and the test suite starts hundreds. `tessera serve`
    /// never sets it.
    pub first_signing_key: Option<std::sync::Arc<zeroize::Zeroizing<Vec<u8>>>>,
    /// Print the first API key to the log when the database has none.
    pub bootstrap_api_key: bool,
    /// Sessions (and hosted-page browser sessions) end this long after sign-in, whatever
    /// happens (`--session-max-age`).
    pub session_max_age_ms: i64,
    /// Sessions end when not refreshed for this long (`--session-inactivity-timeout`).
    pub session_inactivity_ms: i64,
    /// Lifetime of authorization codes (OAuth 2.0 recommends at most 10 minutes).
    pub authorization_code_ttl_ms: i64,
    /// Events older than this many days are deleted by the maintenance task; 0 keeps them.
    pub event_retention_days: u32,
    /// How often the maintenance task prunes expired rows and old events.
    pub maintenance_interval: std::time::Duration,
    /// How long a POST whose `Idempotency-Key` is held by a request still running waits for
    /// that request's answer before it gets 409 `idempotency_error` (real time: a wait, not
    /// an expiry). Tests set 0 to see the 409 at once.
    pub idempotency_wait: std::time::Duration,
}

/// Parses a duration as `30d`, `12h`, `90m`, `45s` or a bare number of seconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (like 30d, 12h, 90m, 45s)"))?;
    let unit_ms = match unit {
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("'{s}': the unit is one of d, h, m, s")),
    };
    n.checked_mul(unit_ms)
        .filter(|ms| *ms > 0)
        .ok_or_else(|| format!("'{s}' is not a positive duration"))
}

impl Config {
    /// The defaults `tessera serve` uses, for a given database.
    pub fn new(database_url: DatabaseUrl) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            database_url,
            environment_name: "Tessera".to_owned(),
            master_key: None,
            old_master_keys: Vec::new(),
            challenge_ttl_ms: 10 * 60 * 1000,
            body_limit_bytes: 256 * 1024,
            max_connections: 16,
            database_timeout: tessera_store::DEFAULT_DATABASE_TIMEOUT,
            totp_window: 1,
            max_challenge_attempts: 5,
            factor_failure_rate: Rate::new(10, 15 * 60 * 1000),
            user_failure_rate: Rate::new(100, 60 * 60 * 1000),
            factor_lockout_after: 100,
            sms_rate: Rate::new(5, 10 * 60 * 1000),
            sms_provider: SmsProvider::Log,
            public_url: "http://127.0.0.1:8080".to_owned(),
            issuer: None,
            access_token_ttl_ms: 5 * 60 * 1000,
            pending_token_ttl_ms: 10 * 60 * 1000,
            refresh_reuse_grace_ms: 10 * 1000,
            api_key_cache_ms: 1000,
            password_account_rate: Rate::new(10, 15 * 60 * 1000),
            password_ip_rate: Rate::new(100, 15 * 60 * 1000),
            header_read_timeout: std::time::Duration::from_secs(10),
            request_timeout: std::time::Duration::from_secs(30),
            idle_timeout: std::time::Duration::from_secs(60),
            max_open_connections: 4096,
            first_signing_key: None,
            bootstrap_api_key: true,
            session_max_age_ms: 30 * 86_400_000,
            session_inactivity_ms: 7 * 86_400_000,
            authorization_code_ttl_ms: 10 * 60 * 1000,
            event_retention_days: 90,
            maintenance_interval: std::time::Duration::from_secs(10 * 60),
            idempotency_wait: std::time::Duration::from_secs(10),
        }
    }

    /// The `iss` of access tokens: `issuer` when set, else the public URL.
    pub fn issuer(&self) -> &str {
        self.issuer.as_deref().unwrap_or(&self.public_url)
    }
}

/// Checks a public URL (an absolute `http(s)` URL) and drops a trailing `/`, so that
/// `https://auth.example.com/` and `https://auth.example.com` give the same `iss`.
pub fn normalize_public_url(raw: &str) -> Result<String, String> {
    let url = raw.trim();
    tessera_core::validate::http_url("public_url", url, tessera_core::validate::MAX_URL).map_err(
        |_| format!("TESSERA_PUBLIC_URL must be an absolute http:// or https:// URL, not '{url}'"),
    )?;
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_their_unit_or_as_seconds() {
        assert_eq!(parse_duration_ms("30d"), Ok(30 * 86_400_000));
        assert_eq!(parse_duration_ms("12h"), Ok(12 * 3_600_000));
        assert_eq!(parse_duration_ms("90m"), Ok(90 * 60_000));
        assert_eq!(parse_duration_ms("45s"), Ok(45_000));
        assert_eq!(parse_duration_ms("600"), Ok(600_000));
        for bad in ["", "d", "0", "-5s", "3w", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_issuer_is_the_public_url_unless_set() {
        let mut c = Config::new(DatabaseUrl::parse("t.db").unwrap());
        assert_eq!(c.issuer(), "http://127.0.0.1:8080");
        c.public_url = "https://auth.example.com".into();
        assert_eq!(c.issuer(), "https://auth.example.com");
        c.issuer = Some("tessera".into());
        assert_eq!(c.issuer(), "tessera");
    }

    #[test]
    fn public_urls_must_be_http_and_lose_a_trailing_slash() {
        assert_eq!(
            normalize_public_url(" https://auth.example.com/ ").unwrap(),
            "https://auth.example.com"
        );
        assert_eq!(
            normalize_public_url("http://10.0.0.5:8080").unwrap(),
            "http://10.0.0.5:8080"
        );
        for bad in ["auth.example.com", "ftp://x", "javascript:alert(1)", ""] {
            assert!(normalize_public_url(bad).is_err(), "{bad}");
        }
    }
}
