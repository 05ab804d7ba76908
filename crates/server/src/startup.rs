//! From a [`Config`] to a running server: master keys, database, environment, listener.
//!
//! [`Application::build`] binds its own listener (port 0 in tests) before returning, so a test
//! knows the address; [`Application::run_until`] serves until the shutdown future resolves and
//! then drains in-flight requests.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use tessera_core::seal::{KeyRing, MasterKey, Sealed};
use tessera_core::{id, token, Clock};
use tessera_store::{ApiKeyRow, DbKind, Store, StoreOptions};

use crate::{AppState, Config};

pub struct Application {
    listener: tokio::net::TcpListener,
    /// `GET /metrics`, when `--metrics-listen` is set.
    metrics_listener: Option<tokio::net::TcpListener>,
    state: AppState,
    /// The API key created on first start (also logged once), for the caller to show.
    pub bootstrap_key: Option<String>,
}

/// The key file used for SQLite when `TESSERA_MASTER_KEY` is unset: `<database>.key`.
pub fn key_file_path(db_path: &Path) -> PathBuf {
    let mut p = db_path.as_os_str().to_owned();
    p.push(".key");
    PathBuf::from(p)
}

pub fn load_keys(config: &Config) -> anyhow::Result<KeyRing> {
    let old = config
        .old_master_keys
        .iter()
        .map(|k| {
            MasterKey::from_base64(k)
                .context("TESSERA_OLD_MASTER_KEYS holds a key that is not 32 bytes of base64")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(k) = &config.master_key {
        let key = MasterKey::from_base64(k).context(
            "TESSERA_MASTER_KEY must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)",
        )?;
        return Ok(KeyRing::new(key, old));
    }
    let Some(db_path) = config.database_url.sqlite_path() else {
        bail!(
            "TESSERA_MASTER_KEY is required with PostgreSQL: every node must seal and open secrets with the same key. Generate one with `openssl rand -base64 32` and give it to all nodes."
        );
    };
    let key_path = key_file_path(&db_path);
    match std::fs::read_to_string(&key_path) {
        Ok(text) => {
            let key = MasterKey::from_base64(&text).with_context(|| {
                format!(
                    "the key file {} is not 32 bytes of base64",
                    key_path.display()
                )
            })?;
            Ok(KeyRing::new(key, old))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if db_path.exists() {
                bail!(
                    "the database {} exists but its key file {} is missing, so its secrets cannot be opened. Restore the key file or set TESSERA_MASTER_KEY.",
                    db_path.display(),
                    key_path.display()
                );
            }
            let (key, b64) = MasterKey::generate();
            write_private(&key_path, b64.as_bytes())
                .with_context(|| format!("cannot create the key file {}", key_path.display()))?;
            tracing::info!(path = %key_path.display(), "created a new master key file (mode 0600); back it up with the database");
            Ok(KeyRing::new(key, old))
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot read the key file {}", key_path.display()))
        }
    }
}

/// Creates `path` readable by its owner only (0600), failing if it exists.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Opens the store, creating the environment row (client id) on first use.
pub async fn open_store(config: &Config, clock: &dyn Clock) -> anyhow::Result<(Store, String)> {
    if let Some(path) = config.database_url.sqlite_path() {
        let mut loose = tessera_store::loosely_permitted_files(&path);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = key_file_path(&path);
            if let Ok(meta) = std::fs::metadata(&key) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    loose.push((key, mode));
                }
            }
        }
        for (file, mode) in loose {
            tracing::warn!(
                file = %file.display(),
                mode = format!("{mode:o}"),
                "this database file can be read by other local users, and it holds emails, password hashes and sealed secrets: `chmod 600` it (new files are created 0600)"
            );
        }
    }
    let store = Store::connect(
        &config.database_url,
        &StoreOptions {
            max_connections: config.max_connections,
            timeout: config.database_timeout,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let env = store
        .ensure_environment(&id::new_id(id::prefix::CLIENT, clock.now()), clock.now())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((store, env.client_id))
}

/// Opens a database that `tessera serve` (or `tessera init`) has already created, and returns
/// it with its client id. Never creates anything: the management commands use it, so a
/// command run in the wrong directory or with a mistyped URL fails, naming the database it
/// looked for, instead of leaving an empty database (without its key file) behind.
pub async fn open_existing_store(config: &Config) -> anyhow::Result<(Store, String)> {
    let store = Store::connect_existing(
        &config.database_url,
        &StoreOptions {
            max_connections: config.max_connections,
            timeout: config.database_timeout,
        },
    )
    .await
    .map_err(|e| match e {
        // The store's own sentences (no database there, cannot connect) need no prefix.
        tessera_core::Error::Internal(m) => anyhow::anyhow!(m),
        e => anyhow::anyhow!("{e}"),
    })?;
    let env = store
        .find_environment()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match env {
        Some(env) => Ok((store, env.client_id)),
        None => {
            store.close().await;
            bail!(
                "the {} has not been set up by Tessera (run `tessera serve` or `tessera init` with it once)",
                config.database_url.describe()
            )
        }
    }
}

pub const KEY_CHECK_PURPOSE: &str = "master_key_check";
const KEY_CHECK_ROW: &str = "1";
const KEY_CHECK_TEXT: &[u8] = b"tessera master key check v1";

/// Proves at start that the key ring opens this database's sealed data, so a wrong
/// `TESSERA_MASTER_KEY` stops the server with a clear message instead of sealing new secrets
/// under it and answering 500 to every sign-in.
///
/// The proof is a known value sealed when the database is first used (or, for a database
/// from before the check existed, after a TOTP secret and the signing key have opened), plus
/// the current signing key at every start, since signing every access token needs it. A
/// check value sealed by an old key still in the ring (`TESSERA_OLD_MASTER_KEYS`) is fine
/// and is sealed again under the current key, so the old key can later leave the ring.
pub async fn verify_master_key(
    store: &Store,
    keys: &KeyRing,
    now: tessera_core::Timestamp,
) -> anyhow::Result<()> {
    let e = |e: tessera_core::Error| anyhow::anyhow!("{e}");
    let mut samples = Vec::new();
    let check = store.find_master_key_check().await.map_err(e)?;
    if check.is_none() {
        if let Some(s) = store.find_any_sealed_totp_secret().await.map_err(e)? {
            samples.push((
                "a TOTP secret",
                crate::services::factors::TOTP_SEAL_PURPOSE,
                s,
            ));
        }
    }
    if let Some(s) = store.find_active_signing_key_sealed().await.map_err(e)? {
        samples.push((
            "the access-token signing key",
            crate::services::signin::SIGNING_KEY_PURPOSE,
            s,
        ));
    }
    if let Some(s) = &check {
        samples.push(("the master-key check value", KEY_CHECK_PURPOSE, s.clone()));
    }
    for (what, purpose, s) in &samples {
        let row_id = if *purpose == KEY_CHECK_PURPOSE {
            KEY_CHECK_ROW
        } else {
            s.row_id.as_str()
        };
        let sealed = Sealed {
            key_id: s.key_id.clone(),
            blob: s.sealed.clone(),
        };
        let opened = keys.open(purpose, row_id, &sealed);
        let right = match (&opened, *purpose == KEY_CHECK_PURPOSE) {
            (Ok(text), true) => text.as_slice() == KEY_CHECK_TEXT,
            (Ok(_), false) => true,
            (Err(_), _) => false,
        };
        if !right {
            bail!(
                "the master key does not open this database's sealed data: {what} was sealed by master key {sealed_by}, and this server holds {held} (TESSERA_MASTER_KEY, or the SQLite key file, then TESSERA_OLD_MASTER_KEYS). Start with the key this database was created with; after a master-key rotation keep the previous key in TESSERA_OLD_MASTER_KEYS until `tessera master-key rotate` has sealed every secret under the new one. Nothing was changed.",
                sealed_by = s.key_id,
                held = keys.key_ids().join(", "),
            );
        }
    }
    match check {
        None => {
            let s = keys.seal(KEY_CHECK_PURPOSE, KEY_CHECK_ROW, KEY_CHECK_TEXT)?;
            if !store
                .insert_master_key_check(&s.key_id, &s.blob, now)
                .await
                .map_err(e)?
            {
                // Another node wrote it first, maybe with another key: check against theirs.
                return Box::pin(verify_master_key(store, keys, now)).await;
            }
        }
        Some(old) if old.key_id != keys.current_key_id() => {
            let s = keys.seal(KEY_CHECK_PURPOSE, KEY_CHECK_ROW, KEY_CHECK_TEXT)?;
            if store
                .reseal_master_key_check(&old.key_id, &s.key_id, &s.blob, now)
                .await
                .map_err(e)?
            {
                tracing::info!(
                    from = %old.key_id,
                    to = %s.key_id,
                    "the master-key check value is now sealed under the current master key"
                );
            }
        }
        Some(_) => {}
    }
    Ok(())
}

/// Creates an API key and returns its secret (shown once; only its hash is stored).
pub async fn create_api_key(
    store: &Store,
    clock: &dyn Clock,
    name: &str,
) -> Result<(ApiKeyRow, String), tessera_core::Error> {
    let k = token::new_api_key();
    let now = clock.now();
    let row = ApiKeyRow {
        id: id::new_id(id::prefix::API_KEY, now),
        name: name.to_owned(),
        lookup: k.lookup,
        key_hash: k.hash,
        created_at: now,
        revoked_at: None,
    };
    store.insert_api_key(&row).await?;
    Ok((row, k.secret))
}

impl Application {
    pub async fn build(mut config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        check_metrics_listen(&config)?;
        let keys = load_keys(&config)?;
        if config.database_url.kind() == DbKind::Postgres {
            tracing::info!(database = %config.database_url, "using PostgreSQL");
        }
        let (store, client_id) = open_store(&config, clock.as_ref()).await?;
        if let Err(e) = verify_master_key(&store, &keys, clock.now()).await {
            store.close().await;
            return Err(e);
        }
        // --environment-name seeds the stored TOTP issuer; the dashboard changes it later.
        store
            .set_totp_issuer(&config.environment_name, true)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut bootstrap_key = None;
        if config.bootstrap_api_key
            && store
                .count_api_keys()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                == 0
        {
            let (row, secret) = create_api_key(&store, clock.as_ref(), "bootstrap")
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            tracing::warn!(
                key_id = %row.id,
                "no API key existed, so one was created. It is shown only this once; store it now: {secret}"
            );
            bootstrap_key = Some(secret);
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?,
            ),
            None => None,
        };
        if config.public_url.is_empty() {
            let bound = listener.local_addr().context("the listener's address")?;
            config.public_url = format!("http://{bound}");
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        // One core is left to everything else (measured on 2 cores: verify kept 55% of its
        // throughput beside 8 password connections with 2 permits); one 19 MiB Argon2 buffer
        // per permit.
        let hash_slots = cores.saturating_sub(1).max(1);
        let db_kind = store.kind();
        let state = AppState {
            store,
            clock,
            keys: Arc::new(keys),
            client_id: Arc::from(client_id),
            hashing: Arc::new(tokio::sync::Semaphore::new(hash_slots)),
            password_memory: Arc::new(tessera_core::password::BlockPool::new(hash_slots)),
            sms: crate::sms::SmsSender::new(config.sms_provider.clone()),
            api_keys: Arc::default(),
            db_health: Arc::default(),
            metrics: Arc::new(crate::metrics::Metrics::new(db_kind)),
            config: Arc::new(config),
        };
        crate::services::signin::ensure_signing_key(&state)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Application {
            listener,
            metrics_listener,
            state,
            bootstrap_key,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.config.listen)
    }

    /// Where `GET /metrics` is served, when it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting and finishes in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = crate::routes::router(self.state.clone());
        if let Some(addr) = self.metrics_addr() {
            tracing::info!(address = %addr, "metrics are served at /metrics");
        }
        tracing::info!(address = %self.local_addr(), client_id = %self.state.client_id, "tessera is listening");
        let config = &self.state.config;
        let limits = crate::serve::ServeLimits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            max_open_connections: crate::serve::connection_cap_within_fd_limit(
                config.max_open_connections,
            ),
        };
        let sweep = tokio::spawn(crate::services::signin::sweep_refresh_grace(
            self.state.clone(),
        ));
        let pruner = crate::maintenance::spawn(self.state.clone());
        let metrics = self.metrics_listener.map(|listener| {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let limits = crate::serve::ServeLimits {
                // A scraper or two, not the public: a small cap leaves the descriptors to
                // the API.
                max_open_connections: 16,
                ..limits
            };
            let server = tokio::spawn(crate::serve::serve(
                listener,
                crate::metrics::router(self.state.clone()),
                limits,
                async move {
                    let _ = stopped.await;
                },
            ));
            (stop, server)
        });
        let r = crate::serve::serve(self.listener, app, limits, shutdown).await;
        // Metrics stay up while the API drains, then stop with it.
        if let Some((stop, server)) = metrics {
            let _ = stop.send(());
            let _ = server.await;
        }
        sweep.abort();
        pruner.abort();
        let _ = pruner.await;
        self.state.store.close().await;
        r
    }
}

/// Refuses a metrics address that would share the API's port: metrics are for the
/// operator's scraper, never on the public listener (and two listeners on one port would
/// fail later with a less clear message).
fn check_metrics_listen(config: &Config) -> anyhow::Result<()> {
    let Some(m) = config.metrics_listen else {
        return Ok(());
    };
    let api = config.listen;
    let overlap = m.port() == api.port()
        && m.port() != 0
        && (m.ip() == api.ip() || m.ip().is_unspecified() || api.ip().is_unspecified());
    if overlap {
        bail!(
            "--metrics-listen ({m}) must not be the API's address (--listen {api}): metrics are served on a listener of their own, e.g. 127.0.0.1:9464"
        );
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
