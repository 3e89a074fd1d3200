-- rappel schema 12 on PostgreSQL (its own step, as 9 and 11): the index the
-- delay-alert scan walks for each open ticket's events also holds each
-- event's id, so the scan reads the index alone (an index-only scan) and
-- not one table page per event: over a million tickets, 126 ms instead of
-- 256. SQLite's index already holds the id (the rowid) and is unchanged.
-- Only where ticket_events has the columns it names (see 0007).
DO $$
BEGIN
    BEGIN
        CREATE INDEX IF NOT EXISTS rappel_ticket_events_cover ON ticket_events (ticket_id, entered_at, stage) INCLUDE (id);
    EXCEPTION WHEN undefined_column OR undefined_table OR wrong_object_type OR undefined_function
        OR undefined_object OR invalid_text_representation THEN NULL;
    END;
END
$$;
DROP INDEX IF EXISTS rappel_ticket_events_ticket;
