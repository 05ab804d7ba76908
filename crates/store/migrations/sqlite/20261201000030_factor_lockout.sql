-- Lockout after consecutive failed verifications (SQLite). Twin of
-- migrations/postgres/20261201000030_factor_lockout.sql.
--
-- The failure rate limits slow guessing but never stop it (960 guesses a day per factor,
-- forever). NIST SP 800-63B §5.2.2 allows at most 100 consecutive failed attempts: after that
-- many wrong codes in a row (configurable, at most 100) the factor is locked until an
-- administrator unlocks it (`tessera factors unlock FACTOR_ID`).
--   * consecutive_failures: wrong codes since the last accepted one; an accepted code resets
--     it, a replayed right code leaves it alone (it is not a guess);
--   * locked_at: when the factor was locked (epoch ms), NULL while usable.
-- Both change only inside the verification transaction (Store::verify_attempt), in the same
-- statement that charges the failure limits.
ALTER TABLE auth_factors ADD COLUMN consecutive_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE auth_factors ADD COLUMN locked_at BIGINT;
