-- Lockout after consecutive failed verifications (PostgreSQL). Twin of
-- migrations/sqlite/20261201000030_factor_lockout.sql, which explains the columns.
ALTER TABLE auth_factors ADD COLUMN consecutive_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE auth_factors ADD COLUMN locked_at BIGINT;

-- The verification function is no longer created by a migration: its current text lives in
-- crates/store/sql/verify_attempt.pgsql, applied with CREATE OR REPLACE at every start.
-- CREATE OR REPLACE cannot change a function's parameters or result columns, so the
-- version created by migration 20261129000004 is dropped here (a migration, so exactly once).
DROP FUNCTION IF EXISTS tessera_verify_attempt(
    TEXT, TEXT, TEXT, BOOLEAN, BIGINT, BIGINT, BIGINT, BIGINT, BIGINT, BIGINT, BIGINT, BIGINT,
    TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT
);
