-- Transfer requests held for a person (decision 0013): what the provider's side awaits
-- ("start"), NULL when nothing; the operator queue (`GET /management/v1/transfers?awaiting=operator`)
-- lists the rows where it is set, newest first.
ALTER TABLE transfers ADD COLUMN IF NOT EXISTS awaiting text;
CREATE INDEX IF NOT EXISTS transfers_awaiting
    ON transfers (updated_at DESC, own_pid) WHERE awaiting IS NOT NULL;
