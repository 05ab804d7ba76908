-- Refresh-token reuse grace (postgres). Twin of migrations/sqlite/20261201000021_refresh_grace.sql.
--
-- A client whose refresh answer was lost (timeout, 5xx, dropped connection) retries with the
-- same token. Within a short grace after the rotation, from the same client (grace_client: a
-- SHA-256 of the API key id and the request's ip_address and user_agent), that retry
-- gets the very pair the rotation issued instead of revoking the session as reuse. To give
-- the same refresh token again, which is stored only hashed, the rotation keeps the pair
-- sealed (grace_sealed, under grace_key_id) with a key derived from the master key AND the
-- presented token, which the database does not hold: a copy of the database opens nothing.
-- The sealed copy is useless after grace_until (the server refuses it) and is erased at the
-- session's next rotation, when the session ends, and by a periodic sweep.
ALTER TABLE refresh_tokens ADD COLUMN grace_until BIGINT;
ALTER TABLE refresh_tokens ADD COLUMN grace_client TEXT;
ALTER TABLE refresh_tokens ADD COLUMN grace_key_id TEXT;
ALTER TABLE refresh_tokens ADD COLUMN grace_sealed BYTEA;
-- Only rows still holding a sealed pair, for the sweep.
CREATE INDEX refresh_tokens_grace ON refresh_tokens (grace_until) WHERE grace_sealed IS NOT NULL;
