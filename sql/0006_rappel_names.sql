-- rappel schema 6: rappel's own tables are named rappel_*, so none of them
-- ever takes a name a host application uses in the same database. Each
-- table is renamed: its rows stay, and SQLite rewrites the references to it
-- (delay_alert_log.delivery_id's foreign key). SQLite cannot rename an
-- index, so each index is dropped and made again, the same, under its new
-- name. The former table names stay as read-only views, where nothing of
-- the host's holds them: db/former.rs makes them after the migrations.

ALTER TABLE deliveries RENAME TO rappel_deliveries;
ALTER TABLE delay_alert_log RENAME TO rappel_delay_alert_log;
ALTER TABLE attendance_users RENAME TO rappel_attendance_users;
ALTER TABLE terminal_sync_state RENAME TO rappel_terminal_sync_state;
ALTER TABLE job_runs RENAME TO rappel_job_runs;

-- Claims walk the pending rows in id order; leases are reclaimed by expiry.
DROP INDEX IF EXISTS deliveries_pending;
CREATE INDEX IF NOT EXISTS rappel_deliveries_pending ON rappel_deliveries (id, next_attempt_at, job, channel)
    WHERE status = 'pending';
DROP INDEX IF EXISTS deliveries_sending;
CREATE INDEX IF NOT EXISTS rappel_deliveries_sending ON rappel_deliveries (lease_until) WHERE status = 'sending';
DROP INDEX IF EXISTS deliveries_job_status;
CREATE INDEX IF NOT EXISTS rappel_deliveries_job_status ON rappel_deliveries (job, status);
-- Messages with a source, by it; the open ones apart (schema 5).
DROP INDEX IF EXISTS deliveries_source;
CREATE INDEX IF NOT EXISTS rappel_deliveries_source ON rappel_deliveries (source_table, source_id, source_at)
    WHERE source_table IS NOT NULL;
DROP INDEX IF EXISTS deliveries_source_open;
CREATE INDEX IF NOT EXISTS rappel_deliveries_source_open ON rappel_deliveries (source_table, source_id, source_at)
    WHERE source_table IS NOT NULL AND status IN ('pending', 'sending');

DROP INDEX IF EXISTS delay_alert_log_event;
CREATE INDEX IF NOT EXISTS rappel_delay_alert_log_event ON rappel_delay_alert_log (event_id, alerted_at);
DROP INDEX IF EXISTS delay_alert_log_delivery;
CREATE INDEX IF NOT EXISTS rappel_delay_alert_log_delivery ON rappel_delay_alert_log (delivery_id);

DROP INDEX IF EXISTS job_runs_job;
CREATE INDEX IF NOT EXISTS rappel_job_runs_job ON rappel_job_runs (job, started_at);
