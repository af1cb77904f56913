-- Base schema: facts about this deployment (participant, key ids, maintenance mode, ...).
CREATE TABLE IF NOT EXISTS connector_meta (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
