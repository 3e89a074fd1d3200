-- rappel schema 9: channel fallback (DESIGN §9, delivery policy). Under
-- `[reminders] channels = "first"`, a reminder goes on one channel at a
-- time; when it does not reach the person, the next channel's message is a
-- delivery of its own that names the one it replaces (its id, without a
-- foreign key: `rappel purge` may remove the older one first).
ALTER TABLE rappel_deliveries ADD COLUMN replaces_id INTEGER;
CREATE INDEX IF NOT EXISTS rappel_deliveries_replaces ON rappel_deliveries (replaces_id)
    WHERE replaces_id IS NOT NULL;
