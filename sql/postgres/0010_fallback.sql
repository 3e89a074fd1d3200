-- rappel schema 10 on PostgreSQL (as sql/0009_fallback.sql): a delivery may
-- replace another (channel fallback, DESIGN §9).
ALTER TABLE rappel_deliveries ADD COLUMN IF NOT EXISTS replaces_id bigint;
CREATE INDEX IF NOT EXISTS rappel_deliveries_replaces ON rappel_deliveries (replaces_id)
    WHERE replaces_id IS NOT NULL;
