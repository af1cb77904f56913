-- Transfer processes (control plane): projection of the transfer workflows (one row per side)
-- and their timeline. Written by version-guarded upserts only.
CREATE TABLE IF NOT EXISTS transfers (
    own_pid              text PRIMARY KEY,
    role                 text NOT NULL,
    state                text NOT NULL,
    consumer_pid         text,
    provider_pid         text,
    agreement_id         text NOT NULL,
    format               text NOT NULL,
    counterparty_id      text NOT NULL,
    counterparty_address text,
    dsp_version          text NOT NULL,
    asset_id             text,
    push                 boolean NOT NULL DEFAULT false,
    code                 text,
    reason               jsonb,
    record               jsonb NOT NULL,
    version              bigint NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS transfers_agreement ON transfers (agreement_id);
CREATE INDEX IF NOT EXISTS transfers_state ON transfers (state);
CREATE INDEX IF NOT EXISTS transfers_updated ON transfers (updated_at DESC, own_pid);

CREATE TABLE IF NOT EXISTS transfer_events (
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

-- Consumer side: the latest EDR (pull endpoint + token) after a refresh; the token is a
-- credential handed to us, readable only through the management API's explicit EDR call.
CREATE TABLE IF NOT EXISTS transfer_edrs (
    own_pid       text PRIMARY KEY,
    data_address  jsonb NOT NULL,
    expires_at    timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Data plane: one row per data flow (id = the provider's transfer pid).
CREATE TABLE IF NOT EXISTS dataplane_flows (
    flow_id         text PRIMARY KEY,
    agreement_id    text NOT NULL,
    consumer_id     text NOT NULL,
    transfer_type   text NOT NULL,
    push            boolean NOT NULL,
    finite          boolean NOT NULL,
    source          jsonb NOT NULL,
    destination     jsonb,
    state           text NOT NULL,
    attempt         integer NOT NULL DEFAULT 1,
    bytes_moved     bigint NOT NULL DEFAULT 0,
    error           text,
    heartbeat_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Data plane access and refresh tokens, stored as sha256(token) only.
CREATE TABLE IF NOT EXISTS dataplane_tokens (
    token_hash      text PRIMARY KEY,
    flow_id         text NOT NULL REFERENCES dataplane_flows (flow_id) ON DELETE CASCADE,
    kind            text NOT NULL,          -- 'access' | 'refresh'
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dataplane_tokens_flow ON dataplane_tokens (flow_id);
