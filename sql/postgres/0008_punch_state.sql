-- rappel schema 8 on PostgreSQL (as sql/0008_punch_state.sql): the ledger
-- of a mapped attendance_logs' punches, keyed by punch id and punched_at as
-- the source gives it; a terminal's sync times keyed without a foreign key
-- (the terminals may be the host's own table).
CREATE TABLE IF NOT EXISTS rappel_punch_state (
    log_id bigint NOT NULL,
    punched_at text NOT NULL,
    sync_status text NOT NULL,          -- pending | sending | sent | failed
    sync_attempts integer NOT NULL DEFAULT 0,
    next_attempt_at text,
    sync_lease_until text,
    synced_at text,
    sync_error text,
    PRIMARY KEY (log_id, punched_at)
);
CREATE INDEX IF NOT EXISTS rappel_punch_state_unsent ON rappel_punch_state (punched_at, log_id)
    WHERE sync_status IN ('pending', 'sending') OR (sync_status = 'failed' AND next_attempt_at IS NOT NULL);

ALTER TABLE rappel_terminal_sync_state DROP CONSTRAINT IF EXISTS rappel_terminal_sync_state_terminal_id_fkey;
