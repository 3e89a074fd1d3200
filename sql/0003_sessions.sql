-- Revision-session reminders and weekly digests read the sessions around now.
-- Hosts write instants in several forms, all beginning with the date, so the
-- text index narrows the search by date with a day of margin and rappel
-- compares the parsed instants. Start times that do not begin with a date
-- have their own small index, so that each run can still report them.
CREATE INDEX IF NOT EXISTS rappel_revision_sessions_start ON revision_sessions (starts_at);
CREATE INDEX IF NOT EXISTS rappel_revision_sessions_odd ON revision_sessions (id)
    WHERE starts_at NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*';
-- Manual reminders not yet sent: the only ones each run reads.
CREATE INDEX IF NOT EXISTS rappel_manual_reminders_unsent ON manual_reminders (id) WHERE sent_at IS NULL;
