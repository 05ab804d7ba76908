-- The standalone MFA API: verification limits, SMS send limits, events (SQLite).
-- Twin of migrations/postgres/20261129000002_mfa.sql.
--
-- Rate limits use GCRA ("generic cell rate algorithm"): one column holds the theoretical
-- arrival time (TAT, epoch ms) of the next allowed event. An event is allowed when
-- max(tat, now) + interval - now <= window, and then tat becomes max(tat, now) + interval.
-- That is a sliding limit of window/interval events per window, checked and charged in one
-- conditional UPDATE, so parallel requests on any number of nodes cannot overshoot it.

-- Failed verifications per factor (e.g. 10 per 15 minutes) and per user (100 per hour,
-- NIST SP 800-63B §5.2.2). Separate from any password-failure counters.
ALTER TABLE auth_factors ADD COLUMN fail_tat BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN mfa_fail_tat BIGINT NOT NULL DEFAULT 0;

-- SMS sends per phone number, against SMS pumping.
CREATE TABLE sms_send_limits (
    phone_number TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);

-- Append-only audit trail served by GET /events. `data` is a JSON object as text.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_by_name ON events (event, id);
