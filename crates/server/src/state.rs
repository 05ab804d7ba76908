//! What every handler can reach: store, clock, keys and configuration. Cheap to clone.

use std::sync::Arc;

use tessera_core::seal::KeyRing;
use tessera_core::Clock;
use tessera_store::Store;

use crate::Config;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub keys: Arc<KeyRing>,
    pub config: Arc<Config>,
    pub client_id: Arc<str>,
    /// Bounds concurrent Argon2 work to one less than the cores (at least one), so a burst
    /// of password requests queues instead of taking every core from verifications.
    pub hashing: Arc<tokio::sync::Semaphore>,
    /// Argon2's working memory (19 MiB per hash), one buffer per `hashing` permit, reused:
    /// peak memory stays bounded however many sign-ins run.
    pub password_memory: Arc<tessera_core::password::BlockPool>,
    pub sms: crate::sms::SmsSender,
    pub api_keys: Arc<ApiKeyCache>,
    /// The database's last health probe, for `GET /health`.
    pub db_health: Arc<crate::services::health::DbHealth>,
    /// This application's Prometheus metrics (its own registry: see [`crate::metrics`]).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// API keys recently read from the database, by lookup part: `(key id, SHA-256 of the key,
/// read at)`. Only keys that exist and are unrevoked are kept; a presented key is still
/// hashed and compared in constant time on every request.
#[derive(Debug, Default)]
pub struct ApiKeyCache {
    entries: std::sync::RwLock<std::collections::HashMap<String, CachedKey>>,
}

/// `(key id, SHA-256 of the key, read at)`.
type CachedKey = (String, Vec<u8>, i64);

/// Bounds the cache: clearing it when full costs one read per key afterwards.
const API_KEY_CACHE_ENTRIES: usize = 1024;

impl ApiKeyCache {
    /// The cached `(id, hash)` for `lookup` when read less than `ttl_ms` before `now`.
    pub fn get(&self, lookup: &str, now: i64, ttl_ms: i64) -> Option<(String, Vec<u8>)> {
        let map = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(lookup)
            .filter(|(_, _, at)| now >= *at && now - at < ttl_ms)
            .map(|(id, hash, _)| (id.clone(), hash.clone()))
    }

    pub fn put(&self, lookup: &str, id: &str, hash: &[u8], now: i64) {
        let mut map = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= API_KEY_CACHE_ENTRIES {
            map.clear();
        }
        map.insert(lookup.to_owned(), (id.to_owned(), hash.to_vec(), now));
    }

    /// Drops the key with this id, so a revocation made through this node takes effect here
    /// at once (other nodes notice within their cache time).
    pub fn forget_id(&self, id: &str) {
        let mut map = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, (key_id, _, _)| key_id != id);
    }
}

impl AppState {
    pub fn now(&self) -> tessera_core::Timestamp {
        self.clock.now()
    }

    /// Runs CPU-heavy password work on the blocking pool, at most one job per `hashing`
    /// permit; `f` gets the Argon2 memory pool.
    ///
    /// The permit moves into the job and is released when the job ends, not when the caller
    /// stops waiting: a blocking job cannot be cancelled, so a permit released by a dropped
    /// request (the client went away) would let an unbounded number of hashes run at once.
    pub async fn hash_work<T: Send + 'static>(
        &self,
        f: impl FnOnce(&tessera_core::password::BlockPool) -> T + Send + 'static,
    ) -> Result<T, tessera_core::Error> {
        let memory = Arc::clone(&self.password_memory);
        let permit = Arc::clone(&self.hashing)
            .acquire_owned()
            .await
            .map_err(tessera_core::Error::internal)?;
        tokio::task::spawn_blocking(move || {
            let out = f(&memory);
            drop(permit);
            out
        })
        .await
        .map_err(tessera_core::Error::internal)
    }
}
