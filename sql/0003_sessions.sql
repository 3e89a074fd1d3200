-- Revision-session reminders and weekly digests find sessions by their start
-- time, parsed (hosts write instants in several forms, so text order is not
-- time order). julianday() is in every SQLite a host may use; a value it
-- cannot parse is indexed as NULL, which the planner also looks up, to report it.
CREATE INDEX IF NOT EXISTS revision_sessions_start ON revision_sessions (julianday(starts_at));
-- Manual reminders not yet sent: the only ones each run reads.
CREATE INDEX IF NOT EXISTS manual_reminders_unsent ON manual_reminders (id) WHERE sent_at IS NULL;
