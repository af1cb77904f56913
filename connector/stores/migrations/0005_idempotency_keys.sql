-- Idempotency-Key of the management API's creating POSTs (decision 0009). One row per
-- (scope = principal + route, key): reserved with the body's digest BEFORE the side effect, the
-- answer stored after it. `seed` derives the ids of what the request creates, so a retry after a
-- crash re-runs the side effect with the same ids and meets the process it already started.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope         text NOT NULL,
    key           text NOT NULL,
    digest        text NOT NULL,
    seed          text NOT NULL,
    attempt       integer NOT NULL DEFAULT 1,
    leased_until  timestamptz,
    status        integer,
    response      text,           -- the answer's body, byte for byte
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_expires ON idempotency_keys (expires_at);
