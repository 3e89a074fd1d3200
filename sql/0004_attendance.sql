-- sync-attendance. Logs still to push are found in punch order through a
-- partial index that holds only the logs that may still go (not the sent
-- ones, nor those failed for good), so old punches cost nothing.
CREATE INDEX IF NOT EXISTS rappel_attendance_logs_unsent ON attendance_logs (punched_at, id)
    WHERE sync_status IN ('pending', 'sending') OR (sync_status = 'failed' AND next_attempt_at IS NOT NULL);

-- The batch each log was last posted in, while its outcome is open (in
-- flight, or failed and to be retried): a retry posts the same logs together
-- again, under the same Idempotency-Key, even when newer punches wait.
CREATE TABLE IF NOT EXISTS rappel_attendance_batches (
    log_id INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    batch_key TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rappel_attendance_batches_key ON rappel_attendance_batches (service, batch_key);
