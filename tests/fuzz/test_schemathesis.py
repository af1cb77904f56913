"""Property-based fuzzing of the control plane's HTTP API with schemathesis (ISSUE 6 acceptance).

Every operation of the app's own OpenAPI document (`/openapi.json` of `api.app.create_app`:
management API, DSP 2025-1 and 0.8 routes, health and well-known) gets `CASES_PER_MODE` positive
and `CASES_PER_MODE` negative (schema-violating) requests, sent in-process over ASGI to an app
with a real Postgres, Redis and Temporal. Requests carry a valid `X-Api-Key` and a `dev`-profile
bearer (`dev:<participant>`), so they get past authentication into the parsers and stores.
Checks: `not_a_server_error` (no 5xx) and `response_schema_conformance` (every documented
response matches its schema).

The DSP routes and the catalog management routes read their bodies with `api.body.read_json` (size
and depth guards) instead of declaring a model, so the document has no request body for them; the
test adds one (management: the pydantic model's JSON schema; DSP: a JSON object naming the message
fields, any values) so the fuzzer reaches the parsers and the stores.

Deterministic (`derandomize`): a failure reproduces; set FUZZ_SEED to explore other inputs.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from pydantic import BaseModel
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.app import create_app
from api.management.models import (
    AssetIn,
    CatalogRequestIn,
    EvaluateIn,
    ExplainIn,
    OfferIn,
    PolicyIn,
)
from connector.settings import Settings, load_settings
from connector.temporal.client import connect
from tests.http.catalog_fixtures import migrated

pytestmark = [pytest.mark.integration, pytest.mark.workflow]

KEY = "fuzz-management-key-0123456789abcdefghijklmnop"
CALLER = "urn:fuzz:caller"
HEADERS = {"X-Api-Key": KEY, "Authorization": f"Bearer dev:{CALLER}"}
CASES_PER_MODE = int(os.environ.get("FUZZ_CASES_PER_MODE", "25"))
FUZZ_SEED = os.environ.get("FUZZ_SEED")
CHECKS = [not_a_server_error, response_schema_conformance]

_STR = {"type": "string"}
DSP_TYPES = [
    "CatalogRequestMessage",
    "ContractRequestMessage",
    "ContractOfferMessage",
    "ContractAgreementMessage",
    "ContractAgreementVerificationMessage",
    "ContractNegotiationEventMessage",
    "ContractNegotiationTerminationMessage",
    "TransferRequestMessage",
    "TransferStartMessage",
    "TransferCompletionMessage",
    "TransferSuspensionMessage",
    "TransferTerminationMessage",
]
# Any JSON object, but with the DSP message fields named so generation reaches field validation.
DSP_BODY = {
    "type": "object",
    "properties": {
        "@context": {"anyOf": [_STR, {"type": "array", "items": _STR}]},
        "@type": {"enum": DSP_TYPES + [f"dspace:{t}" for t in DSP_TYPES]},
        "@id": _STR,
        "consumerPid": _STR,
        "providerPid": _STR,
        "callbackAddress": _STR,
        "offer": {"type": "object"},
        "agreement": {"type": "object"},
        "agreementId": _STR,
        "format": _STR,
        "eventType": {"enum": ["ACCEPTED", "FINALIZED", "accepted"]},
        "code": _STR,
        "reason": {"type": "array"},
        "dataAddress": {"type": "object"},
        "filter": {"type": "array"},
    },
}


MGMT = "/management/v1"
# Management routes that read their body with `read_json` + `parse_body(model, ...)`.
MANAGEMENT_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("post", f"{MGMT}/assets"): AssetIn,
    ("put", f"{MGMT}/assets/{{asset_id}}"): AssetIn,
    ("post", f"{MGMT}/policies"): PolicyIn,
    ("put", f"{MGMT}/policies/{{policy_id}}"): PolicyIn,
    ("post", f"{MGMT}/policies/{{policy_id}}/evaluate"): EvaluateIn,
    ("post", f"{MGMT}/offers"): OfferIn,
    ("put", f"{MGMT}/offers/{{offer_id}}"): OfferIn,
    ("post", f"{MGMT}/catalog/explain"): ExplainIn,
    ("post", f"{MGMT}/catalog/request"): CatalogRequestIn,
}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def with_request_bodies(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with the request bodies the routes read themselves (see the module docstring)."""
    spec = copy.deepcopy(spec)
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    for (method, path), model in MANAGEMENT_BODIES.items():
        operation = spec["paths"][path][method]
        assert "requestBody" not in operation, (method, path)  # documented now: drop the entry
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        operation["requestBody"] = _json_body(schema)
    for path, item in spec["paths"].items():
        post = item.get("post")
        if path.startswith("/dsp/") and post is not None and "requestBody" not in post:
            post["requestBody"] = _json_body(DSP_BODY)
    return spec


@dataclass
class Tally:
    cases: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@pytest.fixture
def fuzz_app(
    pg_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> Iterator[FastAPI]:
    asyncio.run(migrated(pg_url))  # its own loop: the app runs in schemathesis' portal thread
    settings = load_settings(
        env={},
        data_dir=tmp_path,
        database={"url": pg_url},
        redis={"url": redis_url},
        # A task queue nobody polls: started workflows wait harmlessly, no worker acts on them.
        temporal={
            "address": temporal_address,
            "namespace": "connector",
            "task_queues": {"control": f"fuzz.control.{uuid.uuid4().hex[:8]}"},
        },
        management={"api_keys": [KEY]},
        identity={
            "profile": "dev",
            "allow_insecure": True,
            "participant_id": f"urn:fuzz:{uuid.uuid4().hex[:8]}",
        },
        rate_limit={"requests_per_minute": 0},
    )
    app = create_app(settings)
    try:
        yield app
    finally:
        schemathesis_asgi.shutdown_lifespans()
        asyncio.run(_terminate_started_workflows(settings))


async def _terminate_started_workflows(settings: Settings) -> None:
    """Workflows the fuzzer started (201s) would wait on their queue until the deadline."""
    client = await connect(settings)
    queue = settings.temporal.task_queues.control
    query = f'TaskQueue="{queue}" AND ExecutionStatus="Running"'
    async for execution in client.list_workflows(query):
        with contextlib.suppress(Exception):
            await client.get_workflow_handle(execution.id).terminate("fuzz test cleanup")


def run_operation(operation: Any, mode: GenerationMode, tally: Tally) -> None:
    @settings(
        max_examples=CASES_PER_MODE,
        deadline=None,
        database=None,
        derandomize=FUZZ_SEED is None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        tally.cases += 1
        try:
            response = case.call(headers=HEADERS)
        except Exception as exc:  # an exception out of the app: its 500, re-raised to the client
            tally.failures.append(
                f"{operation.label} [{mode.value}] raised {type(exc).__name__}: {exc}\n"
                f"    request: {case.method} {case.formatted_path} query={case.query} "
                f"path={case.path_parameters} body={str(case.body)[:300]}"
            )
            return
        tally.by_status[response.status_code] = tally.by_status.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS, headers=HEADERS)
        except Exception as exc:
            body = response.text[:300]
            tally.failures.append(
                f"{operation.label} [{mode.value}] -> {response.status_code}: "
                f"{type(exc).__name__}: {str(exc)[:600]}\n    request: {case.method} "
                f"{case.formatted_path} body={str(case.body)[:200]}\n    response: {body}"
            )

    if FUZZ_SEED is not None:
        check = seed(int(FUZZ_SEED))(check)
    try:
        check()
    except Unsatisfiable:
        # Nothing to violate (no parameters, no body): there are no negative cases to send.
        assert mode is GenerationMode.NEGATIVE, operation.label


def test_fuzz_whole_api(fuzz_app: FastAPI) -> None:
    spec = with_request_bodies(fuzz_app.openapi())
    schema = schemathesis.openapi.from_dict(spec)
    schema.app = fuzz_app
    schema.location = "/openapi.json"
    tally = Tally()
    started = time.monotonic()
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operations.append(result.ok())
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            t0 = time.monotonic()
            run_operation(operation, mode, tally)
            tally.seconds[f"{operation.label} {mode.value}"] = time.monotonic() - t0
    elapsed = time.monotonic() - started
    print(
        f"\nschemathesis: {len(operations)} operations, {tally.cases} cases in {elapsed:.1f}s; "
        f"statuses {dict(sorted(tally.by_status.items()))}"
    )
    slowest = sorted(tally.seconds.items(), key=lambda kv: -kv[1])[:8]
    print("slowest:", ", ".join(f"{k} {v:.1f}s" for k, v in slowest))
    assert len(operations) >= 60
    assert tally.cases >= len(operations) * 20
    assert not tally.failures, "\n".join(tally.failures[:40]) + f"\n({len(tally.failures)} total)"
