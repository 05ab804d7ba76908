-- Tessera foundation schema (PostgreSQL). Kept statement-for-statement parallel to
-- migrations/sqlite/20261129000001_foundation.sql; a test checks the two folders pair up.
--
-- Conventions, chosen so that one SQL text runs on both databases:
--   * timestamps are BIGINT milliseconds since the epoch (no date types that differ);
--   * ids are TEXT `prefix_ULID`, so ORDER BY id is creation order for pagination;
--   * booleans are BOOLEAN (native in PostgreSQL).

-- The single row that describes this deployment (its client id, environment settings).
CREATE TABLE environment (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    client_id TEXT NOT NULL,
    mfa_required BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

-- API keys: only a SHA-256 of the key is kept; `lookup` is the public part of the key that
-- finds the row, the hash is then compared in constant time.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    lookup TEXT NOT NULL UNIQUE,
    key_hash BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Users. `email` is stored normalised (trimmed, lower case) and unique; `metadata` is a JSON
-- object kept as text (both databases, no JSON type differences).
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    first_name TEXT,
    last_name TEXT,
    name TEXT,
    profile_picture_url TEXT,
    external_id TEXT UNIQUE,
    metadata TEXT NOT NULL DEFAULT '{}',
    locale TEXT,
    password_hash TEXT,
    last_sign_in_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Authentication factors. The TOTP secret is sealed (AES-256-GCM, associated data = this
-- row's id) and tagged with the id of the key that sealed it; it never exists here in clear.
-- `last_totp_step` is the replay guard (RFC 6238 §5.2): the step of the last accepted code.
CREATE TABLE auth_factors (
    id TEXT PRIMARY KEY,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('totp', 'sms', 'generic_otp')),
    totp_issuer TEXT,
    totp_user TEXT,
    secret_key_id TEXT,
    secret_sealed BYTEA,
    phone_number TEXT,
    last_totp_step BIGINT NOT NULL DEFAULT -1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX auth_factors_by_user ON auth_factors (user_id, id);

-- Challenges. Deleting a factor deletes its challenges, so none can be verified afterwards.
CREATE TABLE auth_challenges (
    id TEXT PRIMARY KEY,
    factor_id TEXT NOT NULL REFERENCES auth_factors (id) ON DELETE CASCADE,
    code_hash BYTEA,
    expires_at BIGINT NOT NULL,
    verified_at BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX auth_challenges_by_factor ON auth_challenges (factor_id);
