-- PostgreSQL's own step (SQLite has julianday() built in): an instant
-- written as text read as seconds since 1970, NULL where the text is not
-- one, as SQLite's julianday() gives NULL; naive values read in UTC. The
-- punch ledger walks punches in this order, through the index below.

CREATE FUNCTION rappel_instant(t text) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET timezone = 'UTC' SET datestyle = 'ISO, YMD'
AS $$
DECLARE
    at timestamptz;
BEGIN
    -- A date first, as rappel reads instants: not 'now', 'today' or 'infinity'.
    IF t !~ '^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}' THEN
        RETURN NULL;
    END IF;
    at := t::timestamptz;
    RETURN CASE WHEN isfinite(at) THEN extract(epoch FROM at) END;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

-- The same for a punch column the application typed `timestamptz`.
CREATE FUNCTION rappel_instant(t timestamptz) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN isfinite(t) THEN extract(epoch FROM t)::double precision END $$;

-- And `timestamp` (Django with USE_TZ = False), read in UTC as naive text
-- is. Without it the index below would call the `timestamptz` one through
-- a cast that depends on the session's time zone, which an index may not.
CREATE FUNCTION rappel_instant(t timestamp) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN isfinite(t) THEN extract(epoch FROM t)::double precision END $$;

-- The punch ledger's index, where attendance_logs has the columns it names
-- (see 0007).
DO $$
BEGIN
    BEGIN
        CREATE INDEX IF NOT EXISTS rappel_attendance_logs_unsent ON attendance_logs (coalesce(rappel_instant(punched_at), -1), id)
            WHERE sync_status IN ('pending', 'sending') OR (sync_status = 'failed' AND next_attempt_at IS NOT NULL);
    -- invalid_object_definition: a `punched_at` of a type whose instant is
    -- not immutable (`date`, whose cast depends on the session's zone).
    EXCEPTION WHEN undefined_column OR undefined_table OR wrong_object_type OR undefined_function
        OR invalid_object_definition OR undefined_object OR invalid_text_representation THEN NULL;
    END;
END
$$;

CREATE INDEX IF NOT EXISTS rappel_punch_state_unsent_at ON rappel_punch_state (coalesce(rappel_instant(punched_at), -1), log_id)
    WHERE sync_status IN ('pending', 'sending') OR (sync_status = 'failed' AND next_attempt_at IS NOT NULL);
