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
use tessera_core::seal::{KeyRing, MasterKey};
use tessera_core::{id, token, Clock};
use tessera_store::{ApiKeyRow, DbKind, Store, StoreOptions};

use crate::{AppState, Config};

pub struct Application {
    listener: tokio::net::TcpListener,
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
    let store = Store::connect(
        &config.database_url,
        &StoreOptions {
            max_connections: config.max_connections,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let env = store
        .ensure_environment(
            &id::new_id(id::prefix::CLIENT, clock.now()),
            clock.now().millis(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((store, env.client_id))
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
        created_at: now.millis(),
        revoked_at: None,
    };
    store.insert_api_key(&row).await?;
    Ok((row, k.secret))
}

impl Application {
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let keys = load_keys(&config)?;
        if config.database_url.kind() == DbKind::Postgres {
            tracing::info!(database = %config.database_url, "using PostgreSQL");
        }
        let (store, client_id) = open_store(&config, clock.as_ref()).await?;
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
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        // One core is left to everything else (measured on 2 cores: verify kept 55% of its
        // throughput beside 8 password connections with 2 permits); one 19 MiB Argon2 buffer
        // per permit.
        let hash_slots = cores.saturating_sub(1).max(1);
        let state = AppState {
            store,
            clock,
            keys: Arc::new(keys),
            client_id: Arc::from(client_id),
            hashing: Arc::new(tokio::sync::Semaphore::new(hash_slots)),
            password_memory: Arc::new(tessera_core::password::BlockPool::new(hash_slots)),
            sms: crate::sms::SmsSender::new(config.sms_provider.clone()),
            api_keys: Arc::default(),
            config: Arc::new(config),
        };
        crate::services::signin::ensure_signing_key(&state)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Application {
            listener,
            state,
            bootstrap_key,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.config.listen)
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
        tracing::info!(address = %self.local_addr(), client_id = %self.state.client_id, "tessera is listening");
        let r = crate::serve::serve(
            self.listener,
            app,
            self.state.config.header_read_timeout,
            shutdown,
        )
        .await;
        self.state.store.close().await;
        r
    }
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
