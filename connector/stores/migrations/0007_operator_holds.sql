-- Operator holds (decision 0012). An offer definition may name how the provider answers a
-- contract request for it (NULL: the connector's `negotiation.provider_decision`), and the
-- negotiation projection shows what a held negotiation waits for, since when and until when.
ALTER TABLE offers ADD COLUMN IF NOT EXISTS provider_decision text
    CHECK (provider_decision IN ('auto', 'approve', 'rules'));

ALTER TABLE negotiations ADD COLUMN IF NOT EXISTS awaiting text;
ALTER TABLE negotiations ADD COLUMN IF NOT EXISTS awaiting_since timestamptz;
ALTER TABLE negotiations ADD COLUMN IF NOT EXISTS hold_deadline timestamptz;
ALTER TABLE negotiations ADD COLUMN IF NOT EXISTS decisions integer NOT NULL DEFAULT 0;
-- The operator's queue: what waits for a person, oldest hold first.
CREATE INDEX IF NOT EXISTS negotiations_awaiting
    ON negotiations (awaiting_since, own_pid) WHERE awaiting IS NOT NULL;
