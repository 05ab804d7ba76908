//! API-key authentication: the check behind the `Authorization: Bearer sk_...` header and the
//! `client_secret` of the authenticate endpoint. The HTTP extractor only finds the key in the
//! request; the rule (lookup, constant-time comparison, the short trust cache) lives here.

use tessera_core::{token, Error};

use crate::AppState;

/// Checks a presented API key and returns the key's id.
///
/// Security: the row is found by the key's public lookup part, then the SHA-256 of the whole
/// key is compared in constant time, so response timing says nothing about stored hashes.
/// A key read from the database is trusted for `api_key_cache_ms` (a revocation reaches
/// every node within that time); unknown keys are never cached.
pub async fn authenticate_key(state: &AppState, presented: &str) -> Result<String, Error> {
    let lookup = token::api_key_lookup(presented).ok_or(Error::Unauthorized)?;
    let now = state.now().millis();
    let ttl = state.config.api_key_cache_ms;
    let (id, key_hash) = match state.api_keys.get(lookup, now, ttl) {
        Some(hit) => hit,
        None => {
            let row = state
                .store
                .find_active_api_key(lookup)
                .await?
                .ok_or(Error::Unauthorized)?;
            if ttl > 0 {
                state.api_keys.put(lookup, &row.id, &row.key_hash, now);
            }
            (row.id, row.key_hash)
        }
    };
    if token::ct_eq(&token::hash(presented), &key_hash) {
        Ok(id)
    } else {
        Err(Error::Unauthorized)
    }
}
