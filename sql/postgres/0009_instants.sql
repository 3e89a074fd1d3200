-- PostgreSQL's own step (SQLite has julianday() built in): an instant
-- written as text read as seconds since 1970, NULL where the text is not
-- one, as SQLite's julianday() gives NULL; naive values read in UTC. The
-- punch ledger walks punches in this order, through the index below.

CREATE FUNCTION rappel_instant(t text) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET timezone = 'UTC' SET datestyle = 'ISO, YMD'
AS $$
BEGIN
    RETURN extract(epoch FROM t::timestamptz);
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

CREATE INDEX rappel_attendance_logs_unsent ON attendance_logs (coalesce(rappel_instant(punched_at), -1), id)
    WHERE sync_status IN ('pending', 'sending') OR (sync_status = 'failed' AND next_attempt_at IS NOT NULL);
CREATE INDEX rappel_punch_state_unsent_at ON rappel_punch_state (coalesce(rappel_instant(punched_at), -1), log_id)
    WHERE sync_status IN ('pending', 'sending') OR (sync_status = 'failed' AND next_attempt_at IS NOT NULL);
