-- rappel schema 2: report attachments, recurring reports, channel payloads.

-- A file sent with the message: an absolute path, its name in the email and
-- its MIME type. The file is read at send time, so a retry sends the same one.
ALTER TABLE deliveries ADD COLUMN attachment_path TEXT;
ALTER TABLE deliveries ADD COLUMN attachment_name TEXT;
ALTER TABLE deliveries ADD COLUMN attachment_type TEXT;

-- Channel extras as JSON: an approved WhatsApp template (content_sid and
-- content_variables) to send instead of the free text in `body`.
ALTER TABLE deliveries ADD COLUMN payload TEXT;

-- One row per recurring report that has produced its next occurrence, so it
-- is inserted once even if the report's status changes again (--force).
CREATE TABLE IF NOT EXISTS report_recurrences (
    report_id INTEGER PRIMARY KEY,
    next_report_id INTEGER NOT NULL,
    created_at TEXT NOT NULL
);

