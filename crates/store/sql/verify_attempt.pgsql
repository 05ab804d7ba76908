-- The verification rule as PostgreSQL functions: the one current text of them.
--
-- Applied by the store at every start, after the migrations (Store::connect, in one
-- transaction under an advisory lock, so nodes starting together do not collide), with
-- CREATE OR REPLACE: editing this file is how the rule changes, and the running database
-- always has the text of the binary that started last. CREATE OR REPLACE cannot change
-- parameters or result columns; a change of those needs a migration that drops the old
-- signature first (as 20261201000030 does for the version of 20261129000004).
--
-- SQLite runs the same rule statement by statement in Store::verify_attempt
-- (crates/store/src/mfa.rs), where a statement costs microseconds; here each statement would
-- be a network round trip. The store test `verification_rule` (crates/store/tests/) runs one
-- table of cases on both backends and compares outcomes and rows.

-- GCRA, the rate-limit rule (see crates/core/src/limits.rs, its Rust twin: SQLite calls
-- the Rust functions under these names). One more event at `now` fits when the TAT it would
-- leave runs at most one window ahead of `now`; charging moves the TAT one interval on from
-- max(tat, now). Plain SQL functions: the planner inlines them.
CREATE OR REPLACE FUNCTION tessera_gcra_next(tat BIGINT, now BIGINT, interval_ms BIGINT)
RETURNS BIGINT LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT GREATEST(tat, now) + interval_ms $$;

CREATE OR REPLACE FUNCTION tessera_gcra_allows(
    tat BIGINT, now BIGINT, interval_ms BIGINT, window_ms BIGINT
) RETURNS BOOLEAN LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT tessera_gcra_next(tat, now, interval_ms) - now <= window_ms $$;

-- One verification attempt, already evaluated by the caller (`p_correct`: the code matched;
-- `p_step`: the TOTP step it matched, NULL for SMS and generic OTP), in one round trip.
--
-- The rule, in order; a refusal writes nothing:
--  1. lock the factor row (then the user's), so every check and write below sees one state;
--     a missing factor or user is `not_found`;
--  2. a locked factor (`locked_at`) is refused, right code or not: `locked`;
--  3. the factor's, then the user's, failure limit must have room for one more failure, or
--     the attempt is refused, right code or not: `factor_limited` / `user_limited` (with the
--     TAT, for Retry-After);
--  4. a right TOTP code is accepted only for a step after the factor's last accepted one;
--     a right code for an old step is a replay: refused, but not a guess, so it is charged to
--     no failure limit and leaves the consecutive-failure count alone;
--  5. the challenge takes one attempt only while unverified, unexpired and under
--     `p_max_attempts`, and is verified by an accepted code; otherwise `challenge_refused`,
--     with the challenge's current row (NULL columns if it is gone) so the caller can say why;
--  6. an accepted code records its step and resets the consecutive failures; a wrong code
--     charges both failure limits and counts one consecutive failure, and the one that makes
--     `p_lock_after` locks the factor;
--  7. the event of the outcome is appended (`p_events` holds one per outcome: `succeeded`,
--     `failed`, `replayed`, each {id, event, data, created_at}), plus `locked` when the
--     factor was locked.
-- Outcomes: verified, rejected, replayed, rejected_and_locked, not_found, locked,
-- factor_limited, user_limited, challenge_refused (decoded by `Step::from_code` in mfa.rs).
CREATE OR REPLACE FUNCTION tessera_verify_attempt(
    p_challenge TEXT, p_factor TEXT, p_user TEXT, p_correct BOOLEAN, p_step BIGINT,
    p_now BIGINT, p_max_attempts BIGINT,
    p_factor_interval BIGINT, p_factor_window BIGINT,
    p_user_interval BIGINT, p_user_window BIGINT,
    p_lock_after BIGINT, p_events JSONB,
    OUT o_outcome TEXT, OUT o_tat BIGINT,
    OUT o_id TEXT, OUT o_factor_id TEXT, OUT o_code_hash BYTEA, OUT o_expires_at BIGINT,
    OUT o_verified_at BIGINT, OUT o_attempts BIGINT, OUT o_created_at BIGINT,
    OUT o_updated_at BIGINT
) LANGUAGE plpgsql AS $$
DECLARE
    f_step BIGINT;
    f_tat BIGINT;
    f_failures BIGINT;
    f_locked BIGINT;
    u_tat BIGINT;
    accepted BOOLEAN;
    wrong BOOLEAN := NOT p_correct;
    locks BOOLEAN;
    ev JSONB;
BEGIN
    SELECT f.last_totp_step, f.fail_tat, f.consecutive_failures, f.locked_at
        INTO f_step, f_tat, f_failures, f_locked
        FROM auth_factors f WHERE f.id = p_factor FOR UPDATE;
    IF NOT FOUND THEN
        o_outcome := 'not_found';
        RETURN;
    END IF;
    IF f_locked IS NOT NULL THEN
        o_outcome := 'locked';
        RETURN;
    END IF;
    IF NOT tessera_gcra_allows(f_tat, p_now, p_factor_interval, p_factor_window) THEN
        o_outcome := 'factor_limited';
        o_tat := f_tat;
        RETURN;
    END IF;
    IF p_user IS NOT NULL THEN
        SELECT u.mfa_fail_tat INTO u_tat FROM users u WHERE u.id = p_user FOR UPDATE;
        IF NOT FOUND THEN
            o_outcome := 'not_found';
            RETURN;
        END IF;
        IF NOT tessera_gcra_allows(u_tat, p_now, p_user_interval, p_user_window) THEN
            o_outcome := 'user_limited';
            o_tat := u_tat;
            RETURN;
        END IF;
    END IF;
    accepted := p_correct AND (p_step IS NULL OR f_step < p_step);
    locks := wrong AND f_failures + 1 >= p_lock_after;
    UPDATE auth_challenges c
        SET attempts = c.attempts + 1,
            verified_at = CASE WHEN accepted THEN p_now ELSE c.verified_at END,
            updated_at = p_now
        WHERE c.id = p_challenge AND c.verified_at IS NULL AND c.expires_at > p_now
            AND c.attempts < p_max_attempts
        RETURNING c.id, c.factor_id, c.code_hash, c.expires_at, c.verified_at, c.attempts,
            c.created_at, c.updated_at
        INTO o_id, o_factor_id, o_code_hash, o_expires_at, o_verified_at, o_attempts,
            o_created_at, o_updated_at;
    IF NOT FOUND THEN
        SELECT c.id, c.factor_id, c.code_hash, c.expires_at, c.verified_at, c.attempts,
                c.created_at, c.updated_at
            INTO o_id, o_factor_id, o_code_hash, o_expires_at, o_verified_at, o_attempts,
                o_created_at, o_updated_at
            FROM auth_challenges c WHERE c.id = p_challenge;
        o_outcome := 'challenge_refused';
        RETURN;
    END IF;
    UPDATE auth_factors f
        SET last_totp_step = CASE WHEN accepted AND p_step IS NOT NULL THEN p_step
                                  ELSE f.last_totp_step END,
            fail_tat = CASE WHEN wrong
                            THEN tessera_gcra_next(f.fail_tat, p_now, p_factor_interval)
                            ELSE f.fail_tat END,
            consecutive_failures = CASE WHEN accepted THEN 0
                                        WHEN wrong THEN f.consecutive_failures + 1
                                        ELSE f.consecutive_failures END,
            locked_at = CASE WHEN locks THEN p_now ELSE f.locked_at END
        WHERE f.id = p_factor;
    IF p_user IS NOT NULL AND wrong THEN
        UPDATE users u
            SET mfa_fail_tat = tessera_gcra_next(u.mfa_fail_tat, p_now, p_user_interval)
            WHERE u.id = p_user;
    END IF;
    IF accepted THEN
        o_outcome := 'verified';
        ev := p_events -> 'succeeded';
    ELSIF wrong THEN
        o_outcome := CASE WHEN locks THEN 'rejected_and_locked' ELSE 'rejected' END;
        ev := p_events -> 'failed';
    ELSE
        o_outcome := 'replayed';
        ev := p_events -> 'replayed';
    END IF;
    INSERT INTO events (id, event, data, created_at)
        VALUES (ev ->> 'id', ev ->> 'event', ev ->> 'data', (ev ->> 'created_at')::BIGINT);
    IF locks THEN
        ev := p_events -> 'locked';
        INSERT INTO events (id, event, data, created_at)
            VALUES (ev ->> 'id', ev ->> 'event', ev ->> 'data', (ev ->> 'created_at')::BIGINT);
    END IF;
END
$$;
