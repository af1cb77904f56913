-- Contract negotiations: projection of the negotiation workflows (one row per side), their
-- timeline, and the agreements they produced. Written by version-guarded upserts only.
CREATE TABLE IF NOT EXISTS negotiations (
    own_pid              text PRIMARY KEY,
    role                 text NOT NULL,
    state                text NOT NULL,
    consumer_pid         text,
    provider_pid         text,
    counterparty_id      text NOT NULL,
    counterparty_address text,
    dsp_version          text NOT NULL,
    offer_id             text,
    asset_id             text,
    agreement_id         text,
    awaiting_decision    boolean NOT NULL DEFAULT false,
    termination_code     text,
    termination_reason   jsonb,
    deadline_at          timestamptz,
    record               jsonb NOT NULL,
    version              bigint NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS negotiations_counterparty_offer ON negotiations (counterparty_id, offer_id);
CREATE INDEX IF NOT EXISTS negotiations_state ON negotiations (state);
CREATE INDEX IF NOT EXISTS negotiations_updated ON negotiations (updated_at DESC, own_pid);

CREATE TABLE IF NOT EXISTS negotiation_events (
    own_pid     text NOT NULL,
    version     bigint NOT NULL,
    at          timestamptz NOT NULL,
    direction   text NOT NULL,
    kind        text NOT NULL,
    from_state  text NOT NULL,
    to_state    text NOT NULL,
    detail      text,
    PRIMARY KEY (own_pid, version)
);

CREATE TABLE IF NOT EXISTS agreements (
    agreement_id    text PRIMARY KEY,
    own_pid         text NOT NULL,
    role            text NOT NULL,
    provider_id     text NOT NULL,
    consumer_id     text NOT NULL,
    target          text NOT NULL,
    offer_id        text,
    asset_id        text,
    agreement       jsonb NOT NULL,
    signed_at       timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS agreements_consumer ON agreements (consumer_id);
CREATE INDEX IF NOT EXISTS agreements_provider ON agreements (provider_id);
