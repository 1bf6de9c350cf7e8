-- Attachments (finished uploads) an outbox message carries: a JSON array of attachment ids.
ALTER TABLE outbox ADD COLUMN attachments TEXT NOT NULL DEFAULT '[]';
