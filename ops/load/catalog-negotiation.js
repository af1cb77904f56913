// k6 load test: DSP 2025-1 catalog request + contract negotiation start, plus management reads.
//
//   ops/load/run.sh                                   # smoke profile against http://127.0.0.1:3000
//   PROFILE=load BASE_URL=https://connector.staging.example.com DSP_TOKEN=... API_KEY=... ops/load/run.sh
//
// Env: BASE_URL, DSP_TOKEN (Bearer token presented to the provider's DSP endpoints), API_KEY
// (X-Api-Key for /management/v1), CALLBACK_URL (consumer callback for the negotiation),
// PROFILE = smoke | load (the seed's 100 -> 200 VU ramp), OFFER_ID / DATASET_ID (fallback when the
// catalog is empty).
import http from 'k6/http';
import { check, fail, group, sleep } from 'k6';
import { Rate, Trend } from 'k6/metrics';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:3000').replace(/\/$/, '');
const DSP = `${BASE_URL}/dsp/2025-1`;
const CONTEXT = ['https://w3id.org/dspace/2025/1/context.jsonld'];
const CALLBACK_URL = __ENV.CALLBACK_URL || 'http://127.0.0.1:3100/dsp/2025-1';
const PROFILE = __ENV.PROFILE || 'smoke';

export const errorRate = new Rate('errors');
export const negotiationStart = new Trend('negotiation_start_duration', true);

const PROFILES = {
  smoke: {
    dsp: { executor: 'constant-vus', vus: 2, duration: '30s' },
    management: { executor: 'constant-vus', vus: 1, duration: '30s' },
  },
  load: {
    dsp: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: '2m', target: 100 }, // ramp up
        { duration: '5m', target: 100 }, // stay at 100 users
        { duration: '2m', target: 200 }, // ramp up to 200 users
        { duration: '5m', target: 200 }, // stay at 200 users
        { duration: '2m', target: 0 }, // ramp down
      ],
      gracefulRampDown: '30s',
    },
    management: { executor: 'constant-arrival-rate', rate: 5, timeUnit: '1s', duration: '16m', preAllocatedVUs: 5 },
  },
};

if (!PROFILES[PROFILE]) {
  throw new Error(`unknown PROFILE ${PROFILE} (smoke | load)`);
}

export const options = {
  scenarios: {
    dsp: { ...PROFILES[PROFILE].dsp, exec: 'dspFlow' },
    management: { ...PROFILES[PROFILE].management, exec: 'managementReads' },
  },
  thresholds: {
    'http_req_duration{scenario:dsp}': ['p(95)<1000'], // 95 % of DSP requests under 1 s
    'http_req_duration{name:catalog}': ['p(95)<500'],
    'http_req_duration{scenario:management}': ['p(95)<500'],
    http_req_failed: ['rate<0.1'], // error rate under 10 %
    errors: ['rate<0.1'],
    checks: ['rate>0.9'],
  },
  noConnectionReuse: false,
  userAgent: 'connector-k6/1.0',
};

function uuid() {
  // RFC 4122 v4 from Math.random (good enough for load-test ids; no remote jslib needed offline).
  return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) => {
    const r = (Math.random() * 16) | 0;
    return (c === 'x' ? r : (r & 0x3) | 0x8).toString(16);
  });
}

function dspHeaders() {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  if (__ENV.DSP_TOKEN) {
    headers.Authorization = `Bearer ${__ENV.DSP_TOKEN}`;
  }
  return headers;
}

function managementHeaders() {
  return { Accept: 'application/json', 'X-Api-Key': __ENV.API_KEY || '' };
}

function firstOffer(catalog) {
  const datasets = (catalog && catalog.dataset) || [];
  for (const dataset of Array.isArray(datasets) ? datasets : [datasets]) {
    const policies = dataset.hasPolicy || [];
    const offer = Array.isArray(policies) ? policies[0] : policies;
    if (offer && offer['@id']) {
      return { offerId: offer['@id'], datasetId: dataset['@id'] };
    }
  }
  if (__ENV.OFFER_ID && __ENV.DATASET_ID) {
    return { offerId: __ENV.OFFER_ID, datasetId: __ENV.DATASET_ID };
  }
  return null;
}

export function setup() {
  const res = http.get(`${BASE_URL}/health`, { tags: { name: 'health' } });
  if (res.status !== 200) {
    fail(`${BASE_URL}/health answered ${res.status}: is the connector up?`);
  }
  return { startedAt: Date.now() };
}

export function dspFlow() {
  let offer = null;

  group('catalog', () => {
    const body = { '@context': CONTEXT, '@type': 'CatalogRequestMessage', filter: [] };
    const res = http.post(`${DSP}/catalog/request`, JSON.stringify(body), {
      headers: dspHeaders(),
      tags: { name: 'catalog' },
    });
    const ok = check(res, {
      'catalog status is 200': (r) => r.status === 200,
      'catalog is a Catalog': (r) => r.status === 200 && r.json('@type') === 'Catalog',
      'catalog response time < 500ms': (r) => r.timings.duration < 500,
    });
    errorRate.add(!ok);
    if (res.status === 200) {
      offer = firstOffer(res.json());
    }
  });

  if (offer) {
    group('negotiation', () => {
      const body = {
        '@context': CONTEXT,
        '@type': 'ContractRequestMessage',
        consumerPid: `urn:uuid:${uuid()}`,
        callbackAddress: CALLBACK_URL,
        offer: { '@type': 'Offer', '@id': offer.offerId, target: offer.datasetId },
      };
      const res = http.post(`${DSP}/negotiations/request`, JSON.stringify(body), {
        headers: dspHeaders(),
        tags: { name: 'negotiation_request' },
      });
      negotiationStart.add(res.timings.duration);
      const ok = check(res, {
        'negotiation status is 201': (r) => r.status === 201,
        'negotiation is REQUESTED': (r) => r.status === 201 && r.json('state') === 'REQUESTED',
        'negotiation has a providerPid': (r) => r.status === 201 && !!r.json('providerPid'),
        'negotiation response time < 1000ms': (r) => r.timings.duration < 1000,
      });
      errorRate.add(!ok);
    });
  }

  sleep(1);
}

export function managementReads() {
  const res = http.get(`${BASE_URL}/management/v1/negotiations`, {
    headers: managementHeaders(),
    tags: { name: 'management_negotiations' },
  });
  const ok = check(res, {
    'management status is 200': (r) => r.status === 200,
    'management response time < 500ms': (r) => r.timings.duration < 500,
  });
  errorRate.add(!ok);
}

export function teardown(data) {
  console.log(`load test ran for ${((Date.now() - data.startedAt) / 1000).toFixed(0)} s against ${BASE_URL}`);
}
