-- Sign-in: password throttling, signing keys, pending tokens, sessions (PostgreSQL).
-- Twin of migrations/sqlite/20261129000003_signin.sql.

-- Password attempts per account (keyed by the normalised email, so unknown emails are limited
-- exactly like real accounts and the limit reveals nothing) and per end-user IP: GCRA, see the
-- MFA migration. Kept apart from the MFA failure counters so one cannot exhaust the other.
CREATE TABLE password_limits (
    limit_key TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);

-- Access-token signing keys (ES256). The private scalar is sealed like TOTP secrets
-- (associated data = the kid). A retired key stays published in the JWKS until the tokens it
-- signed have expired.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    secret_key_id TEXT NOT NULL,
    secret_sealed BYTEA NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

-- Pending authentication tokens between a password sign-in and its MFA step: stored only as a
-- SHA-256 (they are 190-bit random), bound to the user, single use, short-lived.
CREATE TABLE pending_tokens (
    token_hash BYTEA PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Refresh tokens rotate on every use; presenting a used one revokes the whole session
-- (the token was stolen or replayed).
CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
