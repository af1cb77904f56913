#!/usr/bin/env bash
# Regenerate dashboard.strict.schema.json from Grafana's TypeScript types (needs npm; not used by CI).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
WORK="$ROOT/var/gschema"
GRAFANA_SCHEMA_VERSION="${GRAFANA_SCHEMA_VERSION:-13.2.3}"
GENERATOR_VERSION="${GENERATOR_VERSION:-2.4.0}"

mkdir -p "$WORK"
cd "$WORK"
[[ -f package.json ]] || npm init -y >/dev/null
npm install --no-audit --no-fund "@grafana/schema@${GRAFANA_SCHEMA_VERSION}" \
    "ts-json-schema-generator@${GENERATOR_VERSION}" typescript
npx ts-json-schema-generator \
    -p node_modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen.d.ts \
    -t Dashboard --no-type-check -o "$ROOT/ops/grafana/schema/dashboard.strict.schema.json"
echo "wrote ops/grafana/schema/dashboard.strict.schema.json"
