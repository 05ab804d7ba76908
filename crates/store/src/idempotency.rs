//! Idempotency keys: the rows that let a POST repeated with the same `Idempotency-Key` get
//! the first answer instead of running again (the HTTP side is `tessera_server::idempotency`).
//!
//! A row's id is `<api key id>:<Idempotency-Key>` (see [`idempotency_id`]): keys are per API
//! key. Security and correctness rest on that primary key: a request runs its handler only
//! when its claim statement wrote the row, so two requests with one key, on one node or on
//! many, never both run. Each step is one statement.

use tessera_core::{Error, Timestamp};

use crate::sql::args;
use crate::Store;

/// A stored idempotency key: the request it was claimed for and, once that request has
/// finished, its answer (body sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRow {
    /// SHA-256 of the request (method, path, body) that claimed the key.
    pub fingerprint: Vec<u8>,
    /// When the current claim was made; also the claim's token.
    pub created_at: Timestamp,
    /// `None` while the claiming request runs.
    pub response_status: Option<i64>,
    pub response_content_type: Option<String>,
    /// The master key that sealed the body.
    pub response_key_id: Option<String>,
    pub response_sealed: Option<Vec<u8>>,
}

crate::sql::from_row!(IdempotencyRow {
    fingerprint,
    created_at,
    response_status,
    response_content_type,
    response_key_id,
    response_sealed,
});

/// The id of the row of `key` under the API key `api_key_id` (API key ids never contain
/// `:`, so no two pairs share an id); also the row id its answer is sealed to.
pub fn idempotency_id(api_key_id: &str, key: &str) -> String {
    format!("{api_key_id}:{key}")
}

/// A claim: which key, for which request, and when an existing row may be taken over.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyClaim<'a> {
    /// [`idempotency_id`] of the API key and the key.
    pub id: &'a str,
    pub fingerprint: &'a [u8],
    pub now: Timestamp,
    /// A row created at or before this has expired (24 hours): the key is free again,
    /// whatever request it was for.
    pub expired_by: Timestamp,
    /// A row still without an answer that was claimed at or before this was abandoned (its
    /// node crashed): the same request may take it over and run.
    pub abandoned_by: Timestamp,
}

/// The answer of the request that holds a claim.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyResponse<'a> {
    pub status: i64,
    pub content_type: Option<&'a str>,
    pub key_id: &'a str,
    pub sealed: &'a [u8],
}

// One statement, so the decision "this request runs" is the database's: a new key is
// inserted; an existing row is overwritten only when it has expired, or when it was abandoned
// without an answer by the same request. PostgreSQL evaluates the DO UPDATE condition on the
// row it has locked (the latest version), so of two takeovers racing, the second sees the
// first's fresh `created_at` and writes nothing. Both backends count an upsert's update as
// one changed row and a skipped one as none.
const CLAIM: &str = "INSERT INTO idempotency_keys (id, fingerprint, created_at) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint, \
     created_at = excluded.created_at, response_status = NULL, response_content_type = NULL, \
     response_key_id = NULL, response_sealed = NULL \
     WHERE idempotency_keys.created_at <= $4 \
     OR (idempotency_keys.response_status IS NULL AND idempotency_keys.created_at <= $5 \
     AND idempotency_keys.fingerprint = excluded.fingerprint)";

impl Store {
    /// Claims `claim.id` for this request: true when the caller now holds it (and must run
    /// the request, then [`Store::complete_idempotency_key`] or
    /// [`Store::release_idempotency_key`] with `claim.now`), false when another request
    /// holds it or has answered (read it with [`Store::find_idempotency_key`]).
    pub async fn claim_idempotency_key(&self, claim: &IdempotencyClaim<'_>) -> Result<bool, Error> {
        let n = self
            .write_exec(
                CLAIM,
                args![
                    claim.id,
                    claim.fingerprint,
                    claim.now,
                    claim.expired_by,
                    claim.abandoned_by
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// The row `id` ([`idempotency_id`]), if any.
    pub async fn find_idempotency_key(&self, id: &str) -> Result<Option<IdempotencyRow>, Error> {
        self.read_opt(
            "SELECT fingerprint, created_at, response_status, response_content_type, \
                 response_key_id, response_sealed FROM idempotency_keys WHERE id = $1",
            args![id],
        )
        .await
    }

    /// Stores the answer of the claim made at `claimed_at`: true when stored, false when the
    /// claim was no longer this request's (taken over after it was thought abandoned).
    pub async fn complete_idempotency_key(
        &self,
        id: &str,
        claimed_at: Timestamp,
        response: &IdempotencyResponse<'_>,
    ) -> Result<bool, Error> {
        let n = self
            .write_exec(
                "UPDATE idempotency_keys SET response_status = $3, response_content_type = $4, \
                 response_key_id = $5, response_sealed = $6 \
                 WHERE id = $1 AND created_at = $2 AND response_status IS NULL",
                args![
                    id,
                    claimed_at,
                    response.status,
                    response.content_type,
                    response.key_id,
                    response.sealed
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Gives up the claim made at `claimed_at` without an answer (the request failed with a
    /// server error), so a retry with the key runs again. False when it was no longer held.
    pub async fn release_idempotency_key(
        &self,
        id: &str,
        claimed_at: Timestamp,
    ) -> Result<bool, Error> {
        let n = self
            .write_exec(
                "DELETE FROM idempotency_keys WHERE id = $1 AND created_at = $2 \
                 AND response_status IS NULL",
                args![id, claimed_at],
            )
            .await?;
        Ok(n == 1)
    }
}
