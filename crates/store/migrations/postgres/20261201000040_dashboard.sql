-- The admin dashboard (PostgreSQL). Parallel to migrations/sqlite/20261201000040_dashboard.sql;
-- the comments there explain each decision.

CREATE TABLE admins (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    factor_id TEXT REFERENCES auth_factors (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE admin_sessions (
    token_hash BYTEA PRIMARY KEY,
    admin_id TEXT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    stage TEXT NOT NULL CHECK (stage IN ('mfa', 'active')),
    factor_id TEXT,
    challenge_id TEXT,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX admin_sessions_by_admin ON admin_sessions (admin_id);

ALTER TABLE environment ADD COLUMN totp_issuer TEXT;

-- text_pattern_ops: LIKE 'prefix%' uses the index whatever the database's collation.
CREATE INDEX users_by_email_prefix ON users (email text_pattern_ops);

ALTER TABLE events ADD COLUMN user_id TEXT GENERATED ALWAYS AS (
    COALESCE((data::jsonb) ->> 'user_id', CASE WHEN event LIKE 'user.%' THEN (data::jsonb) ->> 'id' END)
) STORED;
CREATE INDEX events_by_user ON events (user_id, id);
