-- rappel schema 1: the tables host applications write (created only if the
-- host has not made them already) and the tables rappel owns.
-- Instants are TEXT in UTC, `YYYY-MM-DDTHH:MM:SSZ`.

-- Input tables (DESIGN §4) -------------------------------------------------

CREATE TABLE IF NOT EXISTS contacts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    locale TEXT,
    timezone TEXT,
    email_enabled INTEGER NOT NULL DEFAULT 1,
    whatsapp_enabled INTEGER NOT NULL DEFAULT 0,
    sms_enabled INTEGER NOT NULL DEFAULT 0,
    muted_kinds TEXT NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    device TEXT NOT NULL DEFAULT '',
    customer TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    closed_at TEXT
);

CREATE TABLE IF NOT EXISTS ticket_events (
    id INTEGER PRIMARY KEY,
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    stage TEXT NOT NULL,
    entered_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS alert_recipients (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts(id),
    active INTEGER NOT NULL DEFAULT 1,
    stages TEXT
);

CREATE TABLE IF NOT EXISTS scheduled_reports (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    recipients TEXT NOT NULL,
    scheduled_at TEXT NOT NULL,
    attachment_path TEXT,
    report TEXT,
    recurrence TEXT,
    timezone TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    sent_at TEXT,
    last_error TEXT
);

CREATE TABLE IF NOT EXISTS loans (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts(id),
    item TEXT NOT NULL,
    term TEXT NOT NULL DEFAULT 'long',
    lent_at TEXT NOT NULL,
    due_at TEXT NOT NULL,
    returned_at TEXT
);

CREATE TABLE IF NOT EXISTS students (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts(id),
    parent_contact_id INTEGER REFERENCES contacts(id),
    subscription_active INTEGER NOT NULL DEFAULT 1,
    subscribed_at TEXT,
    last_active_at TEXT
);

CREATE TABLE IF NOT EXISTS revision_sessions (
    id INTEGER PRIMARY KEY,
    student_id INTEGER NOT NULL REFERENCES students(id),
    subject TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    objective TEXT NOT NULL DEFAULT '',
    link TEXT,
    cancelled INTEGER NOT NULL DEFAULT 0,
    completed_at TEXT
);

CREATE TABLE IF NOT EXISTS manual_reminders (
    id INTEGER PRIMARY KEY,
    student_id INTEGER NOT NULL REFERENCES students(id),
    author_contact_id INTEGER REFERENCES contacts(id),
    message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT
);

CREATE TABLE IF NOT EXISTS terminals (
    id INTEGER PRIMARY KEY,
    serial TEXT NOT NULL UNIQUE,
    name TEXT,
    timezone TEXT
);

CREATE TABLE IF NOT EXISTS attendance_logs (
    id INTEGER PRIMARY KEY,
    terminal_id INTEGER NOT NULL REFERENCES terminals(id),
    enroll_id INTEGER NOT NULL,
    user_name TEXT NOT NULL DEFAULT '',
    punched_at TEXT NOT NULL,
    mode INTEGER NOT NULL DEFAULT 0,
    inout INTEGER NOT NULL DEFAULT 0,
    event INTEGER NOT NULL DEFAULT 0,
    temperature REAL,
    access_granted INTEGER NOT NULL DEFAULT 1,
    sync_status TEXT NOT NULL DEFAULT 'pending',
    sync_attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    sync_lease_until TEXT,
    synced_at TEXT,
    sync_error TEXT,
    UNIQUE (terminal_id, enroll_id, punched_at)
);

-- The indexes rappel's queries need on the input tables are created after
-- the migrations, each only where its table has the columns (db/host.rs).

-- Tables rappel owns ---------------------------------------------------------

CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    kind TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    source_table TEXT,
    source_id INTEGER,
    contact_id INTEGER,
    channel TEXT NOT NULL,             -- email | whatsapp | sms
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL DEFAULT '',     -- text part, as sent
    html_body TEXT,                    -- HTML part of an email, if any
    status TEXT NOT NULL DEFAULT 'pending',   -- pending | sending | sent | failed
    error_class TEXT,                  -- temporary | permanent | credentials
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    valid_until TEXT,                  -- not sent after this instant
    claimed_by TEXT,
    lease_until TEXT,
    last_error TEXT,
    provider_ref TEXT,
    provider_status TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT
);
-- Claims walk the pending rows in id order; leases are reclaimed by expiry.
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (id, next_attempt_at, job, channel) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_sending ON deliveries (lease_until) WHERE status = 'sending';
CREATE INDEX IF NOT EXISTS deliveries_job_status ON deliveries (job, status);
CREATE INDEX IF NOT EXISTS deliveries_source ON deliveries (source_table, source_id);

CREATE TABLE IF NOT EXISTS delay_alert_log (
    id INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL,
    ticket_id INTEGER NOT NULL,
    stage TEXT NOT NULL,
    days_in_stage INTEGER NOT NULL,
    alerted_at TEXT NOT NULL,
    delivery_id INTEGER REFERENCES deliveries(id)
);
CREATE INDEX IF NOT EXISTS delay_alert_log_event ON delay_alert_log (event_id, alerted_at);

CREATE TABLE IF NOT EXISTS attendance_users (
    service TEXT NOT NULL,
    enroll_id INTEGER NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    admin INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1,
    weekzone INTEGER,
    grp INTEGER,
    synced_at TEXT NOT NULL,
    PRIMARY KEY (service, enroll_id)
);

CREATE TABLE IF NOT EXISTS terminal_sync_state (
    terminal_id INTEGER NOT NULL REFERENCES terminals(id),
    service TEXT NOT NULL,
    last_attendance_sync TEXT,
    last_users_sync TEXT,
    PRIMARY KEY (terminal_id, service)
);

CREATE TABLE IF NOT EXISTS job_runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    started_at TEXT NOT NULL,          -- the run's now
    finished_at TEXT,                  -- NULL: still running, or killed
    planned INTEGER NOT NULL DEFAULT 0,
    sent INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    retrying INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    error TEXT
);
CREATE INDEX IF NOT EXISTS job_runs_job ON job_runs (job, started_at);
