-- Hosted sign-in (AuthKit) and sessions that end (sqlite).
-- Twin of migrations/postgres/20261201000050_hosted_signin.sql.

-- Sessions get what the WorkOS session object shows, and the two limits that end them:
-- expires_at is fixed at creation (the maximum age); last_active_at moves with every refresh
-- and is compared with the inactivity timeout, which stays a setting (so changing it applies
-- to existing sessions). "expired" is derived from both, never stored: no job has to run for
-- a session to end. revoked_at (from the first sign-in migration) and end_reason record an
-- explicit end (revocation, logout, password change, factor deletion, token reuse).
ALTER TABLE sessions ADD COLUMN auth_method TEXT NOT NULL DEFAULT 'password';
ALTER TABLE sessions ADD COLUMN ip_address TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
ALTER TABLE sessions ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN last_active_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN end_reason TEXT;
-- The hosted-page browser session that created this session, ended with it at logout.
ALTER TABLE sessions ADD COLUMN browser_session_id TEXT;
-- Sessions from before this version get the default limits (30 days, counted from creation).
UPDATE sessions SET expires_at = created_at + 2592000000, last_active_at = created_at,
    updated_at = COALESCE(revoked_at, created_at);
CREATE INDEX sessions_by_user ON sessions (user_id, id);

-- Where /user_management/authorize may send a browser back, and where logout may return
-- to: exact URIs (see tessera_core::authkit for the one explicit port wildcard).
CREATE TABLE redirect_uris (
    uri TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

-- Self-service sign-up on the hosted pages (`tessera settings sign-up on`); off by default.
ALTER TABLE environment ADD COLUMN sign_up_enabled BOOLEAN NOT NULL DEFAULT FALSE;

-- Tessera's own browser session after a hosted sign-in: lets a second /authorize from the
-- same browser answer at once. The cookie holds a 238-bit random token; only its SHA-256 is
-- stored.
CREATE TABLE browser_sessions (
    id TEXT PRIMARY KEY,
    token_hash BLOB NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX browser_sessions_by_user ON browser_sessions (user_id);

-- Authorization codes: random, stored only as SHA-256, single use (one conditional UPDATE
-- sets used_at), short-lived, bound to the client, the redirect URI and the PKCE challenge.
CREATE TABLE authorization_codes (
    code_hash BLOB PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT,
    browser_session_id TEXT,
    ip_address TEXT,
    user_agent TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX authorization_codes_by_user ON authorization_codes (user_id);
-- The maintenance task deletes expired codes and browser sessions (store/src/prune.rs).
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);
CREATE INDEX browser_sessions_by_expiry ON browser_sessions (expires_at);
