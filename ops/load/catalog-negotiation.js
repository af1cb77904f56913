// k6 load test: the seed's DSP profile. Each virtual user: a catalog request, a negotiation request
// with the full offer from that catalog, one second of sleep.
//
//   make load                    # 16 min against `connector up` (secure profile), report at the end
//   make load QUICK=1            # the same shape in 3 minutes
//   PROFILE=smoke BASE_URL=https://connector.example IDENTITY_FILE=id.json ops/load/run.sh
//
// Env:
//   BASE_URL       the provider (default http://127.0.0.1:3000)
//   PROFILE        smoke | quick | load (the seed's 100 -> 200 VU ramp, 16 min)
//   IDENTITY_FILE  JSON {jwk, dids, audience, callbackBase}: every request carries a fresh ES256
//                  token signed with `jwk` (private P-256 JWK) for `audience` (the provider's DID)
//                  by one of `dids` (VU n uses dids[n % len], kid `<did>#key-1`); VU n's
//                  callbackAddress is `<callbackBase>/<index>`. tests/load/edge_load.py writes it.
//   DSP_TOKEN      without IDENTITY_FILE: a fixed token (only a dev-profile connector takes one)
//   CALLBACK_URL   without IDENTITY_FILE: the callbackAddress of every negotiation
//   API_KEY, MANAGEMENT_RATE  management reads per second beside the DSP load (default 0: none)
import http from 'k6/http';
import encoding from 'k6/encoding';
import { check, fail, sleep } from 'k6';
import { Counter, Rate } from 'k6/metrics';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:3000').replace(/\/$/, '');
const DSP = `${BASE_URL}/dsp/2025-1`;
const CONTEXT = ['https://w3id.org/dspace/2025/1/context.jsonld'];
const PROFILE = __ENV.PROFILE || 'smoke';
const IDENTITY = __ENV.IDENTITY_FILE ? JSON.parse(open(__ENV.IDENTITY_FILE)) : null;
const MANAGEMENT_RATE = parseInt(__ENV.MANAGEMENT_RATE || '0', 10);
const TOKEN_SECONDS = 60;

export const errorRate = new Rate('errors');
export const negotiationsStarted = new Counter('negotiations_started');
// Refused negotiation requests by status (0: no answer in time), each counted in the summary.
export const negotiationsRefused = new Counter('negotiations_refused');
const REFUSALS = ['0', '400', '401', '404', '409', '429', '500', '502', '503', '504', 'other'];

// The seed's stages; `quick` keeps their shape in 3 minutes.
const STAGES = {
  load: [
    { duration: '2m', target: 100 }, // ramp up
    { duration: '5m', target: 100 }, // stay at 100 users
    { duration: '2m', target: 200 }, // ramp up to 200 users
    { duration: '5m', target: 200 }, // stay at 200 users
    { duration: '2m', target: 0 }, // ramp down
  ],
  quick: [
    { duration: '23s', target: 100 },
    { duration: '56s', target: 100 },
    { duration: '23s', target: 200 },
    { duration: '56s', target: 200 },
    { duration: '22s', target: 0 },
  ],
  smoke: [{ duration: '30s', target: 2 }],
};
if (!STAGES[PROFILE]) {
  throw new Error(`unknown PROFILE ${PROFILE} (smoke | quick | load)`);
}
const DURATION = { load: '16m', quick: '3m', smoke: '30s' }[PROFILE];

const scenarios = {
  dsp: {
    executor: 'ramping-vus',
    startVUs: 0,
    stages: STAGES[PROFILE],
    gracefulRampDown: '30s',
    exec: 'dspFlow',
  },
};
if (MANAGEMENT_RATE > 0) {
  scenarios.management = {
    executor: 'constant-arrival-rate',
    rate: MANAGEMENT_RATE,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: 5,
    exec: 'managementReads',
  };
}

export const options = {
  scenarios,
  thresholds: {
    // Each threshold on the requests it is about (tagged by name), not on the scenario as a whole.
    'http_req_duration{name:catalog}': ['p(95)<500'],
    'http_req_duration{name:negotiation_request}': ['p(95)<1000'],
    'http_req_failed{scenario:dsp}': ['rate<0.01'],
    errors: ['rate<0.01'],
    // Not limits: they make k6 count each kind of request in its summary.
    'http_reqs{name:catalog}': ['count>=0'],
    'http_reqs{name:negotiation_request}': ['count>=0'],
    ...Object.fromEntries(REFUSALS.map((s) => [`negotiations_refused{status:${s}}`, ['count>=0']])),
  },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
  noConnectionReuse: false,
  userAgent: 'connector-k6/1.0',
};

// --------------------------------------------------------------------------- signed tokens

function ascii(text) {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    bytes[i] = text.charCodeAt(i);
  }
  return bytes;
}

function b64json(value) {
  return encoding.b64encode(JSON.stringify(value), 'rawurl');
}

let signingKey = null; // per VU: imported once

async function key() {
  if (signingKey === null) {
    signingKey = await crypto.subtle.importKey(
      'jwk',
      IDENTITY.jwk,
      { name: 'ECDSA', namedCurve: 'P-256' },
      false,
      ['sign'],
    );
  }
  return signingKey;
}

function myIndex() {
  return (__VU - 1) % IDENTITY.dids.length;
}

// A self-issued token as the connector's own issuer makes one (identity.md §1.3): ES256, kid under
// the DID, iss = sub = our DID, aud = the provider's DID, a fresh jti, short lifetime.
async function authorization() {
  if (IDENTITY === null) {
    return __ENV.DSP_TOKEN ? `Bearer ${__ENV.DSP_TOKEN}` : null;
  }
  const did = IDENTITY.dids[myIndex()];
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64json({ alg: 'ES256', typ: 'JWT', kid: `${did}#key-1` })}.${b64json({
    iss: did,
    sub: did,
    aud: IDENTITY.audience,
    jti: crypto.randomUUID(),
    iat: now,
    exp: now + TOKEN_SECONDS,
  })}`;
  // WebCrypto's ECDSA signature is r || s, the JWS form (RFC 7518 §3.4).
  const signature = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, await key(), ascii(input));
  return `Bearer ${input}.${encoding.b64encode(signature, 'rawurl')}`;
}

async function dspHeaders() {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  const value = await authorization();
  if (value !== null) {
    headers.Authorization = value;
  }
  return headers;
}

function callbackAddress() {
  if (IDENTITY !== null) {
    return `${IDENTITY.callbackBase}/${myIndex()}`;
  }
  return __ENV.CALLBACK_URL || 'http://127.0.0.1:3100/dsp/2025-1';
}

// --------------------------------------------------------------------------- the flow

// The offer to request, as DSP 2025-1 wants it in a ContractRequestMessage: the catalog's offer
// (its permissions, prohibitions, obligations, assigner) with the dataset as target.
function firstOffer(catalog) {
  const datasets = (catalog && catalog.dataset) || [];
  for (const dataset of Array.isArray(datasets) ? datasets : [datasets]) {
    const policies = dataset.hasPolicy || [];
    const offer = Array.isArray(policies) ? policies[0] : policies;
    if (offer && offer['@id']) {
      return { ...offer, '@type': 'Offer', target: dataset['@id'] };
    }
  }
  return null;
}

function uuid() {
  return crypto.randomUUID();
}

export function setup() {
  const res = http.get(`${BASE_URL}/health`, { tags: { name: 'health' } });
  if (res.status !== 200) {
    fail(`${BASE_URL}/health answered ${res.status}: is the connector up?`);
  }
  return { startedAt: Date.now() };
}

export async function dspFlow() {
  const catalogRequest = { '@context': CONTEXT, '@type': 'CatalogRequestMessage', filter: [] };
  const catalog = http.post(`${DSP}/catalog/request`, JSON.stringify(catalogRequest), {
    headers: await dspHeaders(),
    tags: { name: 'catalog' },
  });
  const catalogOk = check(catalog, {
    'catalog status is 200': (r) => r.status === 200,
    'catalog is a Catalog': (r) => r.status === 200 && r.json('@type') === 'Catalog',
  });
  errorRate.add(!catalogOk);
  const offer = catalogOk ? firstOffer(catalog.json()) : null;

  let pause = 1;
  if (offer !== null) {
    const body = {
      '@context': CONTEXT,
      '@type': 'ContractRequestMessage',
      consumerPid: `urn:uuid:${uuid()}`,
      callbackAddress: callbackAddress(),
      offer,
    };
    const res = http.post(`${DSP}/negotiations/request`, JSON.stringify(body), {
      headers: await dspHeaders(),
      tags: { name: 'negotiation_request' },
    });
    const ok = check(res, {
      'negotiation status is 201': (r) => r.status === 201,
      'negotiation is REQUESTED': (r) => r.status === 201 && r.json('state') === 'REQUESTED',
      'negotiation has a providerPid': (r) => r.status === 201 && !!r.json('providerPid'),
    });
    errorRate.add(!ok);
    if (res.status === 201) {
      negotiationsStarted.add(1);
    } else {
      const status = REFUSALS.includes(String(res.status)) ? String(res.status) : 'other';
      negotiationsRefused.add(1, { status });
      // As a polite consumer: a refusal's Retry-After is the pause before the next try.
      const retryAfter = parseInt(res.headers['Retry-After'] || '', 10);
      if (res.status === 503 && retryAfter > 0) {
        pause = Math.min(retryAfter, 60);
      }
    }
  } else if (catalogOk) {
    errorRate.add(true); // a catalog without an offer: nothing to negotiate is a failure here
  }

  sleep(pause);
}

export function managementReads() {
  const res = http.get(`${BASE_URL}/management/v1/negotiations?limit=20`, {
    headers: { Accept: 'application/json', 'X-Api-Key': __ENV.API_KEY || '' },
    tags: { name: 'management_negotiations' },
  });
  errorRate.add(!check(res, { 'management status is 200': (r) => r.status === 200 }));
}

export function teardown(data) {
  console.log(`load test ran for ${((Date.now() - data.startedAt) / 1000).toFixed(0)} s against ${BASE_URL}`);
}
