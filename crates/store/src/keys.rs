//! The master-key check: a known value sealed with the master key, opened at every start so
//! a server given the wrong key refuses to start (instead of sealing new secrets under it),
//! and samples of other sealed rows for databases created before the check existed.

use tessera_core::Error;
use tessera_core::Timestamp;

use crate::sql::args;
use crate::Store;

/// A sealed value and the row it belongs to (its associated data names the row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSample {
    pub row_id: String,
    pub key_id: String,
    pub sealed: Vec<u8>,
}

crate::sql::from_row!(SealedSample {
    row_id,
    key_id,
    sealed
});

impl Store {
    /// The check value: (id of the master key that sealed it, sealed blob).
    pub async fn find_master_key_check(&self) -> Result<Option<SealedSample>, Error> {
        const SQL: &str = "SELECT CAST('master_key_check' AS TEXT), key_id, sealed \
             FROM master_key_check WHERE id = 1";
        self.read_opt(SQL, &[]).await
    }

    /// Writes the check value unless one exists (another node may have written it first):
    /// true when this call wrote it.
    pub async fn insert_master_key_check(
        &self,
        key_id: &str,
        sealed: &[u8],
        now: Timestamp,
    ) -> Result<bool, Error> {
        const SQL: &str = "INSERT INTO master_key_check (id, key_id, sealed, updated_at) \
             VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING";
        let n = self.write_exec(SQL, args![key_id, sealed, now]).await?;
        Ok(n == 1)
    }

    /// Replaces the check value sealed under `old_key_id` by one sealed under the current
    /// key (after a master-key rotation); a node that lost the race changes nothing.
    pub async fn reseal_master_key_check(
        &self,
        old_key_id: &str,
        key_id: &str,
        sealed: &[u8],
        now: Timestamp,
    ) -> Result<bool, Error> {
        let n = self
            .write_exec(
                "UPDATE master_key_check SET key_id = $2, sealed = $3, updated_at = $4 \
                 WHERE id = 1 AND key_id = $1",
                args![old_key_id, key_id, sealed, now],
            )
            .await?;
        Ok(n == 1)
    }

    /// The newest unretired signing key's sealed private key (row id = its kid).
    pub async fn find_active_signing_key_sealed(&self) -> Result<Option<SealedSample>, Error> {
        self.read_opt(
            "SELECT kid, secret_key_id, secret_sealed FROM signing_keys WHERE retired_at IS NULL \
                 ORDER BY created_at DESC, kid DESC LIMIT 1",
            &[],
        )
        .await
    }

    /// Any one sealed TOTP secret (row id = its factor id).
    pub async fn find_any_sealed_totp_secret(&self) -> Result<Option<SealedSample>, Error> {
        self.read_opt(
            "SELECT id, secret_key_id, secret_sealed FROM auth_factors \
                 WHERE secret_sealed IS NOT NULL AND secret_key_id IS NOT NULL LIMIT 1",
            &[],
        )
        .await
    }
}
