-- DCP holder (decision 0023): the verifiable credentials we hold, and our requests for them.
-- `payload` is the VC JWT sealed with the data key ring (purpose `credential`, bound to the
-- credential id): never in clear here, nor in backups (they dump this table as it is).
CREATE TABLE IF NOT EXISTS held_credentials (
    id          text PRIMARY KEY,
    types       text[] NOT NULL,
    issuer_did  text NOT NULL,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz,
    status      text NOT NULL DEFAULT 'ISSUED',
    holder_pid  text,
    payload     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS held_credentials_expires ON held_credentials (expires_at);
CREATE INDEX IF NOT EXISTS held_credentials_holder_pid ON held_credentials (holder_pid);

-- Projection of the `dcp.credential_request` workflows (version-guarded upserts).
CREATE TABLE IF NOT EXISTS credential_requests (
    holder_pid       text PRIMARY KEY,
    issuer_did       text NOT NULL,
    credential_type  text NOT NULL,
    issuer_pid       text,
    status           text NOT NULL,
    renewal_of       text,
    credential_ids   text[] NOT NULL DEFAULT '{}',
    error            text,
    deadline_at      timestamptz NOT NULL,
    version          bigint NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS credential_requests_created ON credential_requests (created_at DESC);
CREATE INDEX IF NOT EXISTS credential_requests_renewal_of
    ON credential_requests (renewal_of) WHERE renewal_of IS NOT NULL;
