-- A known value sealed with the master key, so that a server started with the wrong
-- TESSERA_MASTER_KEY refuses to start instead of sealing new secrets under it and answering
-- 500 to every sign-in. Written at the first start (or the first start after this migration),
-- opened at every start, and sealed again under the current key after a master-key rotation.
-- One row (id = 1). Twin of migrations/sqlite/20261201000020_master_key_check.sql.
CREATE TABLE master_key_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key_id TEXT NOT NULL,
    sealed BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);
