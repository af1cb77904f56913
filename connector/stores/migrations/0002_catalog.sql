-- Management write model of the catalog (DSP 2025-1 Catalog Protocol, dsp.md §7):
-- assets (datasets), ODRL policies, offers (EDC "contract definitions") and the denormalised
-- offer_assets join, rewritten on every offer/asset write so the catalog query is a join.

CREATE TABLE IF NOT EXISTS assets (
    id            text PRIMARY KEY,
    properties    jsonb NOT NULL DEFAULT '{}'::jsonb,
    data_address  jsonb NOT NULL,
    distributions text[] NOT NULL DEFAULT '{}',
    version       bigint NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS assets_created_at_idx ON assets (created_at, id);

CREATE TABLE IF NOT EXISTS policies (
    id          text PRIMARY KEY,
    policy      jsonb NOT NULL,
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS policies_created_at_idx ON policies (created_at, id);

CREATE TABLE IF NOT EXISTS offers (
    id                  text PRIMARY KEY,
    -- {"assetIds": [...]} or {"criteria": [{"operandLeft", "operator", "operandRight"}, ...]}
    asset_selector      jsonb NOT NULL,
    access_policy_id    text NOT NULL REFERENCES policies (id) ON DELETE RESTRICT,
    contract_policy_id  text NOT NULL REFERENCES policies (id) ON DELETE RESTRICT,
    version             bigint NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS offers_created_at_idx ON offers (created_at, id);
CREATE INDEX IF NOT EXISTS offers_access_policy_idx ON offers (access_policy_id);
CREATE INDEX IF NOT EXISTS offers_contract_policy_idx ON offers (contract_policy_id);
CREATE INDEX IF NOT EXISTS offers_asset_ids_idx ON offers USING gin ((asset_selector -> 'assetIds'));

-- Which offer covers which asset, with the offer's access policy copied in: the catalog page is
-- an index-ordered scan of (asset_id, access_policy_id) filtered by the admitted policies.
CREATE TABLE IF NOT EXISTS offer_assets (
    offer_id          text NOT NULL REFERENCES offers (id) ON DELETE CASCADE,
    asset_id          text NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    access_policy_id  text NOT NULL,
    PRIMARY KEY (offer_id, asset_id)
);
CREATE INDEX IF NOT EXISTS offer_assets_catalog_idx
    ON offer_assets (asset_id, access_policy_id, offer_id);
