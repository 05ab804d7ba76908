-- Idempotent retries of API POSTs (`Idempotency-Key`) (sqlite).
-- Twin of migrations/postgres/20261202000100_idempotency_keys.sql.

-- One row per (API key, Idempotency-Key): id is "<api key id>:<Idempotency-Key>" (API key
-- ids never contain ':'), one column so that it is also the row id the stored answer is
-- sealed to and the key `tessera master-key rotate` pages by. The primary key is what makes
-- a POST run once across nodes: the first request claims the key with one INSERT (ON
-- CONFLICT, taking over only an expired or abandoned row), and only the request whose
-- INSERT wrote the row runs the handler. No foreign key to api_keys: it would cost every
-- claim a lookup, and API keys are revoked, never deleted.
--
-- created_at is when the current claim was made. It is also the claim's token: the answer is
-- stored (response_* set) only by the request that holds the claim made at that moment, so a
-- request whose abandoned claim was taken over cannot overwrite the new one's answer. The row
-- expires 24 hours after it (the maintenance task prunes it by the created_at index; the
-- index costs each claim one insert, the price of never scanning the table).
-- fingerprint is SHA-256 of method, path and body: the same key with another request is
-- refused. response_status is NULL while the first request runs. The stored body is sealed
-- with the master key (purpose "idempotency_response", row id = id), like every secret: an
-- enrolment's answer holds the TOTP secret.
CREATE TABLE idempotency_keys (
    id TEXT PRIMARY KEY,
    fingerprint BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    response_status BIGINT,
    response_content_type TEXT,
    response_key_id TEXT,
    response_sealed BLOB
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
