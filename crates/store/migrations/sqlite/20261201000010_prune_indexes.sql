-- Indexes for the maintenance task's prunes (sqlite). Twin of
-- migrations/postgres/20261201000010_prune_indexes.sql.
--
-- Every prune is a batched DELETE of rows past a cut-off ("WHERE <col> <= $1 AND key IN
-- (SELECT key ... WHERE <col> <= $1 LIMIT $2)"). Without an index on the cut-off column
-- each batch would scan its whole table while holding the writer (SQLite) or a snapshot
-- (PostgreSQL); with one, a batch reads only the rows it deletes.

-- Events older than the retention (--event-retention-days, default 90).
CREATE INDEX events_by_created_at ON events (created_at);

-- Challenges a day past their expiry (verified ones included: they expire too).
CREATE INDEX auth_challenges_by_expiry ON auth_challenges (expires_at);

-- Pending authentication tokens once expired (used ones go at once).
CREATE INDEX pending_tokens_by_expiry ON pending_tokens (expires_at);

-- GCRA rows whose theoretical arrival time has passed: such a row means exactly what no
-- row means (no outstanding charge), so deleting it changes no decision.
CREATE INDEX password_limits_by_tat ON password_limits (tat);
CREATE INDEX sms_send_limits_by_tat ON sms_send_limits (tat);
