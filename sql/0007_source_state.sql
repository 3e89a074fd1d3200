-- rappel schema 7: what rappel records about the rows of a source mapped
-- onto a host application's own table ([sources], DESIGN §9) lives here,
-- never in the host's table: a report row's progress, a manual reminder's
-- sending. Each row is keyed by the source row's id and its own instant as
-- the source gives it (scheduled_at, created_at), so a new row under a
-- deleted one's id starts afresh. Contract tables keep their own columns.

CREATE TABLE IF NOT EXISTS rappel_report_state (
    report_id INTEGER NOT NULL,
    scheduled_at TEXT NOT NULL,
    status TEXT NOT NULL,            -- pending | sent | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    sent_at TEXT,
    last_error TEXT,
    PRIMARY KEY (report_id, scheduled_at)
);

CREATE TABLE IF NOT EXISTS rappel_manual_state (
    reminder_id INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    PRIMARY KEY (reminder_id, created_at)
);
