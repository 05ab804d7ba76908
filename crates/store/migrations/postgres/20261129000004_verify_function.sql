-- One verification attempt in one round trip (PostgreSQL).
-- Twin of migrations/sqlite/20261129000004_verify_function.sql, which has nothing to create:
-- on SQLite, Store::verify_attempt runs the same rule statement by statement in-process,
-- where a statement costs microseconds; here each would be a network round trip (8 of them),
-- and round trips were the limit of verification throughput.
--
-- The rule, exactly as crates/store/src/mfa.rs states it: lock the factor row (then the
-- user's), so every check below and every write after it see one state; a correct TOTP code
-- is accepted only for a step after the factor's last accepted one (else it is a replay and
-- counts as a failure); the factor's and the user's failure limits (GCRA) must have room for
-- one more failure, or the attempt is refused, right code or not; the challenge takes one
-- attempt only while unverified, unexpired and under the attempt limit; then the step, the
-- failure charges and the event are written. A refusal writes nothing.
CREATE FUNCTION tessera_verify_attempt(
    p_challenge TEXT, p_factor TEXT, p_user TEXT, p_correct BOOLEAN, p_step BIGINT,
    p_now BIGINT, p_max BIGINT,
    p_f_interval BIGINT, p_f_window BIGINT, p_u_interval BIGINT, p_u_window BIGINT,
    p_event_at BIGINT,
    p_ok_id TEXT, p_ok_name TEXT, p_ok_data TEXT,
    p_fail_id TEXT, p_fail_name TEXT, p_fail_data TEXT,
    p_replay_id TEXT, p_replay_name TEXT, p_replay_data TEXT,
    OUT o_outcome TEXT, OUT o_tat BIGINT,
    OUT o_id TEXT, OUT o_factor_id TEXT, OUT o_code_hash BYTEA, OUT o_expires_at BIGINT,
    OUT o_verified_at BIGINT, OUT o_attempts BIGINT, OUT o_created_at BIGINT,
    OUT o_updated_at BIGINT
) LANGUAGE plpgsql AS $$
DECLARE
    f_step BIGINT;
    f_tat BIGINT;
    u_tat BIGINT;
    accepted BOOLEAN;
BEGIN
    SELECT f.last_totp_step, f.fail_tat INTO f_step, f_tat
        FROM auth_factors f WHERE f.id = p_factor FOR UPDATE;
    IF NOT FOUND THEN
        o_outcome := 'not_found';
        RETURN;
    END IF;
    accepted := p_correct AND (p_step IS NULL OR f_step < p_step);
    IF GREATEST(f_tat, p_now) + p_f_interval - p_now > p_f_window THEN
        o_outcome := 'factor_limited';
        o_tat := f_tat;
        RETURN;
    END IF;
    IF p_user IS NOT NULL THEN
        SELECT u.mfa_fail_tat INTO u_tat FROM users u WHERE u.id = p_user FOR UPDATE;
        IF NOT FOUND OR GREATEST(u_tat, p_now) + p_u_interval - p_now > p_u_window THEN
            o_outcome := 'user_limited';
            o_tat := u_tat;
            RETURN;
        END IF;
    END IF;
    UPDATE auth_challenges c
        SET attempts = c.attempts + 1,
            verified_at = CASE WHEN accepted THEN p_now ELSE c.verified_at END,
            updated_at = p_now
        WHERE c.id = p_challenge AND c.verified_at IS NULL AND c.expires_at > p_now
            AND c.attempts < p_max
        RETURNING c.id, c.factor_id, c.code_hash, c.expires_at, c.verified_at, c.attempts,
            c.created_at, c.updated_at
        INTO o_id, o_factor_id, o_code_hash, o_expires_at, o_verified_at, o_attempts,
            o_created_at, o_updated_at;
    IF NOT FOUND THEN
        o_outcome := 'challenge_refused';
        RETURN;
    END IF;
    UPDATE auth_factors f
        SET last_totp_step = CASE WHEN accepted AND p_step IS NOT NULL THEN p_step
                                  ELSE f.last_totp_step END,
            fail_tat = CASE WHEN accepted THEN f.fail_tat
                            ELSE GREATEST(f.fail_tat, p_now) + p_f_interval END
        WHERE f.id = p_factor;
    IF p_user IS NOT NULL AND NOT accepted THEN
        UPDATE users u SET mfa_fail_tat = GREATEST(u.mfa_fail_tat, p_now) + p_u_interval
            WHERE u.id = p_user;
    END IF;
    IF accepted THEN
        INSERT INTO events (id, event, data, created_at)
            VALUES (p_ok_id, p_ok_name, p_ok_data, p_event_at);
        o_outcome := 'verified';
    ELSIF p_correct THEN
        INSERT INTO events (id, event, data, created_at)
            VALUES (p_replay_id, p_replay_name, p_replay_data, p_event_at);
        o_outcome := 'replayed';
    ELSE
        INSERT INTO events (id, event, data, created_at)
            VALUES (p_fail_id, p_fail_name, p_fail_data, p_event_at);
        o_outcome := 'rejected';
    END IF;
END
$$;
