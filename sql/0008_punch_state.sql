-- rappel schema 8: the time clock's tables may be mapped onto a host
-- application's own ([sources.terminals], [sources.attendance_logs]).

-- sync-attendance's ledger of the punches of a mapped attendance_logs: each
-- punch's sync columns, as a contract attendance_logs row holds them, live
-- here, never in the host's table. A row is keyed by the punch's id and its
-- punched_at as the source gives it, so a new punch under a deleted one's id
-- starts afresh. A contract attendance_logs keeps its own columns.
CREATE TABLE IF NOT EXISTS rappel_punch_state (
    log_id INTEGER NOT NULL,
    punched_at TEXT NOT NULL,
    sync_status TEXT NOT NULL,       -- pending | sending | sent | failed
    sync_attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    sync_lease_until TEXT,
    synced_at TEXT,
    sync_error TEXT,
    PRIMARY KEY (log_id, punched_at)
);
-- The punches still to push, in time order as instants: the same expression
-- and condition as the index on a contract attendance_logs (db/host.rs), so
-- the ledger's queries read either through the same words.
CREATE INDEX IF NOT EXISTS rappel_punch_state_unsent
    ON rappel_punch_state (coalesce(julianday(punched_at), -1), log_id)
    WHERE sync_status IN ('pending', 'sending') OR (sync_status = 'failed' AND next_attempt_at IS NOT NULL);

-- A terminal's sync times are keyed by its id without a foreign key: the
-- terminals may be the host's own table (a TEMP view on rappel's
-- connection), and the key would point at a table rappel no longer reads, or
-- stop the host deleting a terminal. Made again without it, rows kept (no
-- RENAME: the former name's view refers to this table by name).
CREATE TEMP TABLE rappel_terminal_sync_copy AS SELECT * FROM main.rappel_terminal_sync_state;
DROP TABLE main.rappel_terminal_sync_state;
CREATE TABLE main.rappel_terminal_sync_state (
    terminal_id INTEGER NOT NULL,
    service TEXT NOT NULL,
    last_attendance_sync TEXT,
    last_users_sync TEXT,
    PRIMARY KEY (terminal_id, service)
);
INSERT INTO main.rappel_terminal_sync_state (terminal_id, service, last_attendance_sync, last_users_sync)
    SELECT terminal_id, service, last_attendance_sync, last_users_sync FROM temp.rappel_terminal_sync_copy;
DROP TABLE temp.rappel_terminal_sync_copy;
