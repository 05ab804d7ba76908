-- Indexes for the maintenance task's prunes (postgres). Twin of
-- migrations/sqlite/20261201000010_prune_indexes.sql.
--
-- Every prune is a batched DELETE of rows past a cut-off ("WHERE <col> <= $1 AND key IN
-- (SELECT key ... WHERE <col> <= $1 LIMIT $2)"). Without an index on the cut-off column
-- each batch would scan its whole table while holding the writer (SQLite) or a snapshot
-- (PostgreSQL); with one, a batch reads only the rows it deletes.

-- Events older than the retention and challenges a day past their expiry need no index:
-- their ids are ULIDs in time order, so those prunes are ranges of the primary key
-- (store/src/prune.rs). An index on events.created_at or auth_challenges.expires_at would
-- cost every enrolment and verification an index insert (measured on SQLite, 64 conns:
-- verify 13.7k/s with those indexes, 16.2k/s without; 16.7–17.2k/s before this session).

-- Pending authentication tokens once expired (used ones go at once).
CREATE INDEX pending_tokens_by_expiry ON pending_tokens (expires_at);

-- GCRA rows whose theoretical arrival time has passed: such a row means exactly what no
-- row means (no outstanding charge), so deleting it changes no decision.
CREATE INDEX password_limits_by_tat ON password_limits (tat);
CREATE INDEX sms_send_limits_by_tat ON sms_send_limits (tat);
