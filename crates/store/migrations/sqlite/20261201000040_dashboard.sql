-- The admin dashboard (SQLite). Parallel to migrations/postgres/20261201000040_dashboard.sql.

-- Dashboard administrators, apart from end users: an admin is never a `user_...`, cannot
-- sign in through the API, and no API call lists or changes them.
-- `factor_id` is the admin's confirmed TOTP factor: a row of auth_factors without a user, so
-- the replay guard, the per-factor failure limit and the challenge rules of the API apply to
-- admins unchanged (one implementation). NULL until the admin has enrolled.
CREATE TABLE admins (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    factor_id TEXT REFERENCES auth_factors (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL
);

-- Server-side dashboard sessions. Only a SHA-256 of the cookie's random token is stored.
-- `stage` is 'mfa' between the password and the code (with the factor and challenge being
-- verified) and 'active' once signed in; an active session is a new row with a new token,
-- so a token seen before the code never becomes a signed-in one. Removing an admin removes
-- their sessions at once (cascade).
CREATE TABLE admin_sessions (
    token_hash BLOB PRIMARY KEY,
    admin_id TEXT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    stage TEXT NOT NULL CHECK (stage IN ('mfa', 'active')),
    factor_id TEXT,
    challenge_id TEXT,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX admin_sessions_by_admin ON admin_sessions (admin_id);

-- The TOTP issuer shown in authenticator apps, a stored setting; the first start seeds it
-- from --environment-name.
ALTER TABLE environment ADD COLUMN totp_issuer TEXT;

-- Prefix search of users by email without a full scan: emails are stored in lower case, and
-- SQLite's LIKE (case-insensitive) can use a NOCASE index for a constant prefix.
CREATE INDEX users_by_email_prefix ON users (email COLLATE NOCASE);

-- The user an event concerns (`user_id` in its data, or `id` of a user.* event), as a
-- generated column with an index, so the event log filters by user without a full scan.
ALTER TABLE events ADD COLUMN user_id TEXT GENERATED ALWAYS AS (
    COALESCE(json_extract(data, '$.user_id'), CASE WHEN event LIKE 'user.%' THEN json_extract(data, '$.id') END)
) VIRTUAL;
CREATE INDEX events_by_user ON events (user_id, id);
