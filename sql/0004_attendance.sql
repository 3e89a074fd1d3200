-- (The index of unsent punches on attendance_logs: db/host.rs.)

-- The batch each log was last posted in, while its outcome is open (in
-- flight, or failed and to be retried): a retry posts the same logs together
-- again, under the same Idempotency-Key, even when newer punches wait.
CREATE TABLE IF NOT EXISTS rappel_attendance_batches (
    log_id INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    batch_key TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rappel_attendance_batches_key ON rappel_attendance_batches (service, batch_key);
