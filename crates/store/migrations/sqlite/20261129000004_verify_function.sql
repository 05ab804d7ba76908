-- Twin of migrations/postgres/20261129000004_verify_function.sql: PostgreSQL gets the
-- verification rule as one function (one round trip); SQLite runs the same rule statement
-- by statement in-process (crates/store/src/mfa.rs), so there is nothing to create here.
SELECT 1;
