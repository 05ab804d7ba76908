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
    /// Bounds concurrent Argon2 work to the number of cores so a burst of password requests
    /// queues instead of starving everything else on the blocking pool.
    pub hashing: Arc<tokio::sync::Semaphore>,
    pub sms: crate::sms::SmsSender,
}

impl AppState {
    pub fn now(&self) -> tessera_core::Timestamp {
        self.clock.now()
    }

    /// Runs CPU-heavy password work on the blocking pool, at most one job per core.
    pub async fn hash_work<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tessera_core::Error> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(tessera_core::Error::internal)?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(tessera_core::Error::internal)
    }
}
