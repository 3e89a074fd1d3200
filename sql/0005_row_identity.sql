-- rappel schema 5: a message belongs to one source row, not to a reused id.
-- SQLite gives a new row the id of a deleted last row, so an id alone does
-- not name a row: with it goes the row's own creation or scheduling instant
-- (scheduled_reports.scheduled_at, loans.lent_at, revision_sessions.starts_at,
-- students.subscribed_at, manual_reminders.created_at), in rappel's format.
-- Existing rows get theirs, and their dedupe keys the same, in the step that
-- follows this file (db/identity.rs), where host instants are parsed.
ALTER TABLE deliveries ADD COLUMN source_at TEXT;
DROP INDEX IF EXISTS deliveries_source;
-- Only messages with a source are indexed by it (delay digests have none),
-- and a message's status changes never touch this index: sending stays
-- as cheap as before. Open messages have their own small index, for the
-- question "is any message of this row still in flight?".
CREATE INDEX IF NOT EXISTS deliveries_source ON deliveries (source_table, source_id, source_at)
    WHERE source_table IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_source_open ON deliveries (source_table, source_id, source_at)
    WHERE source_table IS NOT NULL AND status IN ('pending', 'sending');

-- A stage entry is its event's id and entered_at.
ALTER TABLE delay_alert_log ADD COLUMN entered_at TEXT;

-- The next occurrence of a recurring report, once per report row (id and
-- scheduled_at), where report_recurrences keyed the id alone.
CREATE TABLE IF NOT EXISTS rappel_report_recurrences (
    report_id INTEGER NOT NULL,
    scheduled_at TEXT NOT NULL,
    next_report_id INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (report_id, scheduled_at)
);

-- A message whose source stopped wanting it before it went (loan returned,
-- session cancelled, contact opted out...) ends `cancelled`: not a failure.
ALTER TABLE job_runs ADD COLUMN cancelled INTEGER NOT NULL DEFAULT 0;

-- sync-attendance walks unsent punches oldest first as instants, not as
-- text: the index on punched_at as text goes, for one on julianday(punched_at)
-- that db/host.rs creates.
DROP INDEX IF EXISTS rappel_attendance_logs_unsent;

-- The last look before a delay digest goes reads the entries it carries (and,
-- through db/host.rs's index, whether its recipient still receives alerts).
CREATE INDEX IF NOT EXISTS delay_alert_log_delivery ON delay_alert_log (delivery_id);
