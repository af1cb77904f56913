-- The delivery journal (decision 0010): one row per outbound DSP message that some attempt got
-- as far as writing to a connected peer. A workflow asks it before it answers a peer's message
-- 400 on the grounds that ours cannot have arrived. Rows of ended processes are deleted.
CREATE TABLE IF NOT EXISTS delivery_journal (
    workflow_id text NOT NULL,
    message     text NOT NULL,
    marked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, message)
);
