"""Negative protocol paths (dsp.md §9): each illegal message gets 400 + TransferError and leaves
the state unchanged; requests the edge must refuse never start a flow."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from connector.core.dsp import DspVersion, validate_against_schema
from connector.core.ids import transfer_workflow_id
from connector.core.transfer.states import Role
from connector.identity.runtime import Identity, build_identity
from connector.temporal.client import connect
from tests.e2e.transfer_helpers import (
    MIB,
    agreement_for,
    edr,
    pull,
    random_file,
    start_transfer,
)
from tests.twoconn import Connector, connector_pair

pytestmark = pytest.mark.e2e

CTX = ["https://w3id.org/dspace/2025/1/context.jsonld"]
UNREACHABLE = "http://127.0.0.1:9/dsp/2025-1"


class World:
    def __init__(self, provider: Connector, consumer: Connector, identity: Identity) -> None:
        self.provider = provider
        self.consumer = consumer
        self.identity = identity
        self.agreement_id = ""

    async def dsp(self, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": self.identity.authorization(self.provider.did)}
        if body is None:
            return await self.provider.http.get(f"/dsp/2025-1{path}", headers=headers)
        return await self.provider.http.post(f"/dsp/2025-1{path}", json=body, headers=headers)

    async def requested(self, **overrides: Any) -> tuple[str, str]:
        """A provider transfer stuck in REQUESTED (its start cannot reach the consumer)."""
        consumer_pid = f"urn:uuid:{uuid.uuid4()}"
        body = {
            "@context": CTX,
            "@type": "TransferRequestMessage",
            "consumerPid": consumer_pid,
            "agreementId": self.agreement_id,
            "format": "HttpData-PULL",
            "callbackAddress": UNREACHABLE,
            **overrides,
        }
        resp = await self.dsp("/transfers/request", body)
        assert resp.status_code == 201, resp.text
        provider_pid = resp.json()["providerPid"]
        await self._first_start_failed(provider_pid)
        return consumer_pid, provider_pid

    async def _first_start_failed(self, provider_pid: str) -> None:
        """Wait until the provider's quick first try of its start has failed (a retry is
        scheduled): until then a consumer message legal only after STARTED counts as that
        start's acknowledgement (decision 0010), and the refusal under test would not happen."""
        client = await connect(self.provider.settings)
        handle = client.get_workflow_handle(transfer_workflow_id(Role.PROVIDER, provider_pid))
        deadline = time.monotonic() + 30
        while not (await handle.describe()).raw_description.pending_activities:
            assert time.monotonic() < deadline, "the provider's start never failed its first try"
            await asyncio.sleep(0.1)

    async def view(self, provider_pid: str) -> dict[str, Any]:
        resp = await self.provider.get(f"/transfers/{provider_pid}")
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()
        return data


@pytest.fixture(scope="module")
async def world(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path_factory: Any
) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("protocol")
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp, provider_dataplane="inproc"
    ) as (provider, consumer):
        redis = aioredis.Redis.from_url(redis_url)
        identity = build_identity(consumer.settings, redis)
        w = World(provider, consumer, identity)
        base = provider.settings.dataplane.file_base_path
        assert base is not None
        random_file(base / "n.bin", MIB)
        w.agreement_id = await agreement_for(
            provider, consumer, "neg", data_address={"type": "file", "path": "n.bin"}
        )
        try:
            yield w
        finally:
            await identity.http.aclose()
            await redis.aclose()


def message(kind: str, consumer_pid: str, provider_pid: str) -> dict[str, Any]:
    body = {
        "@context": CTX,
        "@type": kind,
        "consumerPid": consumer_pid,
        "providerPid": provider_pid,
    }
    if kind in ("TransferSuspensionMessage", "TransferTerminationMessage"):
        body["code"] = "test"
    return body


SUFFIX = {
    "TransferStartMessage": "start",
    "TransferCompletionMessage": "completion",
    "TransferSuspensionMessage": "suspension",
    "TransferTerminationMessage": "termination",
}


async def assert_refused(w: World, kind: str, consumer_pid: str, provider_pid: str) -> None:
    before = await w.view(provider_pid)
    resp = await w.dsp(
        f"/transfers/{provider_pid}/{SUFFIX[kind]}", message(kind, consumer_pid, provider_pid)
    )
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["@type"] == "TransferError"
    assert body["providerPid"] == provider_pid
    assert body["consumerPid"] == consumer_pid
    assert validate_against_schema(body, "TransferError", DspVersion.V2025_1) == []
    after = await w.view(provider_pid)
    assert (after["state"], after["version"]) == (before["state"], before["version"])


@pytest.mark.parametrize(
    "kind",
    ["TransferCompletionMessage", "TransferSuspensionMessage", "TransferStartMessage"],
    ids=["completion", "suspension", "consumer-start"],
)
async def test_refused_while_requested(world: World, kind: str) -> None:
    consumer_pid, provider_pid = await world.requested()
    assert (await world.view(provider_pid))["state"] == "REQUESTED"
    await assert_refused(world, kind, consumer_pid, provider_pid)


async def test_completion_while_suspended_is_refused(world: World) -> None:
    transfer_id = await start_transfer(world.consumer, world.provider, world.agreement_id)
    started = await world.consumer.wait_transfer(transfer_id, {"STARTED"})
    resp = await world.consumer.post(f"/transfers/{transfer_id}/suspend", {})
    assert resp.json()["state"] == "SUSPENDED", resp.text
    await world.provider.wait_transfer(started["providerPid"], {"SUSPENDED"})
    await assert_refused(world, "TransferCompletionMessage", transfer_id, started["providerPid"])


@pytest.mark.parametrize(
    "kind",
    ["TransferStartMessage", "TransferSuspensionMessage", "TransferCompletionMessage"],
    ids=["start", "suspension", "completion"],
)
async def test_refused_after_terminated(world: World, kind: str) -> None:
    consumer_pid, provider_pid = await world.requested()
    resp = await world.dsp(
        f"/transfers/{provider_pid}/termination",
        message("TransferTerminationMessage", consumer_pid, provider_pid),
    )
    assert resp.status_code == 200, resp.text
    await world.provider.wait_transfer(provider_pid, {"TERMINATED"})
    await assert_refused(world, kind, consumer_pid, provider_pid)


async def test_suspension_after_completed_is_refused(world: World) -> None:
    transfer_id = await start_transfer(world.consumer, world.provider, world.agreement_id)
    started = await world.consumer.wait_transfer(transfer_id, {"STARTED"})
    token = await edr(world.consumer, transfer_id)
    assert (await pull(token["endpoint"], token["authorization"]))[0] == 200
    await world.provider.wait_transfer(started["providerPid"], {"COMPLETED"})
    await assert_refused(world, "TransferSuspensionMessage", transfer_id, started["providerPid"])


async def _flows(w: World) -> int:
    conn = await asyncpg.connect(w.provider.db_url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM dataplane_flows")
        return count
    finally:
        await conn.close()


async def _agreement(w: World, consumer_id: str, constraint: list[Any] | None = None) -> str:
    agreement_id = f"urn:uuid:{uuid.uuid4()}"
    rule: dict[str, Any] = {"action": "use"}
    if constraint:
        rule["constraint"] = constraint
    policy = {
        "@id": agreement_id,
        "@type": "Agreement",
        "target": "neg",
        "assigner": w.provider.did,
        "assignee": consumer_id,
        "permission": [rule],
    }
    conn = await asyncpg.connect(w.provider.db_url)
    try:
        await conn.execute(
            """INSERT INTO agreements (agreement_id, own_pid, role, provider_id, consumer_id,
                   target, offer_id, asset_id, agreement, signed_at)
               VALUES ($1, $2, 'provider', $3, $4, 'neg', NULL, 'neg', $5::jsonb, now())""",
            agreement_id,
            f"urn:uuid:{uuid.uuid4()}",
            w.provider.did,
            consumer_id,
            json.dumps(policy),
        )
    finally:
        await conn.close()
    return agreement_id


@pytest.mark.parametrize(
    "case",
    [
        "someone-else",
        "unknown",
        "expired",
        "wrong-format",
        "s3-destination",
        "file-destination",
        # The data plane's own rules for a push destination (connector.data_address).
        "gopher-endpoint",
        "metadata-endpoint",
        "delete-method",
    ],
)
async def test_request_refused_without_a_flow(world: World, case: str) -> None:
    overrides: dict[str, Any] = {}
    if case == "someone-else":
        overrides["agreementId"] = await _agreement(world, "did:web:someone-else.example")
    elif case == "unknown":
        overrides["agreementId"] = f"urn:uuid:{uuid.uuid4()}"
    elif case == "expired":
        past = [
            {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2020-01-01T00:00:00Z"}
        ]
        overrides["agreementId"] = await _agreement(world, world.consumer.did, past)
    elif case == "wrong-format":
        overrides["format"] = "AmazonS3-PUSH"
    elif case in ("gopher-endpoint", "metadata-endpoint", "delete-method"):
        endpoint = {
            "gopher-endpoint": "gopher://sink.example:70/_x",
            "metadata-endpoint": "http://169.254.169.254/latest/meta-data",
        }.get(case, "https://sink.example/in")
        overrides["format"] = "HttpData-PUSH"
        overrides["dataAddress"] = {
            "@type": "DataAddress",
            "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
            "endpoint": endpoint,
            "endpointProperties": [
                {"@type": "EndpointProperty", "name": "method", "value": "DELETE"}
            ]
            if case == "delete-method"
            else [{"@type": "EndpointProperty", "name": "authorization", "value": "t"}],
        }
    else:
        # Our data plane would write these with our own credentials / into our own files.
        kind = "AmazonS3" if case == "s3-destination" else "file"
        overrides["format"] = "HttpData-PUSH"
        overrides["dataAddress"] = {
            "@type": "DataAddress",
            "endpointType": kind,
            "endpointProperties": [
                {"@type": "EndpointProperty", "name": "bucketName", "value": "provider-data"},
                {"@type": "EndpointProperty", "name": "objectName", "value": "n.bin"},
            ],
        }
    flows = await _flows(world)
    consumer_pid = f"urn:uuid:{uuid.uuid4()}"
    body = {
        "@context": CTX,
        "@type": "TransferRequestMessage",
        "consumerPid": consumer_pid,
        "agreementId": world.agreement_id,
        "format": "HttpData-PULL",
        "callbackAddress": world.consumer.dsp,
        **overrides,
    }
    resp = await world.dsp("/transfers/request", body)
    assert 400 <= resp.status_code < 500, resp.text
    error = resp.json()
    if case.endswith(("-endpoint", "-method")):
        assert resp.status_code == 400
        assert any(r.startswith("/dataAddress/") for r in error["reason"]), error
    assert error["@type"] == "TransferError"
    assert error["consumerPid"] == consumer_pid
    # No provider pid exists for a refused request: left out, never invented (decision 0002).
    assert "providerPid" not in error, error
    assert set(validate_against_schema(error, "TransferError", DspVersion.V2025_1)) == {
        "/: 'providerPid' is a required property"
    }
    assert await _flows(world) == flows
    listed = await world.provider.get("/transfers", role="provider")
    assert consumer_pid not in {t["consumerPid"] for t in listed.json()["items"]}


async def test_reading_a_transfer_without_a_valid_token_is_the_404_of_an_unknown_one(
    world: World,
) -> None:
    """DSP 2025-1: 404 "does not exist or the consumer is not authorized" (issue 16, finding 2):
    a stranger cannot tell an existing transfer from an unknown pid."""
    _, provider_pid = await world.requested()
    path = f"/dsp/2025-1/transfers/{provider_pid}"
    ok = await world.dsp(f"/transfers/{provider_pid}")
    assert ok.status_code == 200, ok.text
    answers = [await world.dsp(f"/transfers/urn:uuid:{uuid.uuid4()}")]
    for authorization in (None, "Bearer not.a.token", world.identity.authorization("did:web:x")):
        headers = {"Authorization": authorization} if authorization else {}
        answers.append(await world.provider.http.get(path, headers=headers))
    bodies = []
    for resp in answers:
        assert resp.status_code == 404, resp.text
        assert "www-authenticate" not in resp.headers
        body = resp.json()
        assert validate_against_schema(body, "TransferError", DspVersion.V2025_1) == [], body
        correlation = resp.headers["X-Correlation-Id"]
        assert body["reason"] == [f"not found (correlation id {correlation})"], body
        assert body["providerPid"] == body["consumerPid"]  # the path's pid, echoed
        bodies.append({**body, "reason": None, "providerPid": None, "consumerPid": None})
    assert all(b == bodies[0] for b in bodies), bodies


async def test_a_retried_termination_that_ended_it_is_answered(world: World) -> None:
    # The termination made the current state (its answer may have been lost): answered again.
    consumer_pid, provider_pid = await world.requested()
    termination = message("TransferTerminationMessage", consumer_pid, provider_pid)
    path = f"/transfers/{provider_pid}/termination"
    assert (await world.dsp(path, termination)).status_code == 200
    await world.provider.wait_transfer(provider_pid, {"TERMINATED"})
    before = await world.view(provider_pid)
    resp = await world.dsp(path, termination)
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "TERMINATED"
    after = await world.view(provider_pid)
    assert (after["state"], after["version"]) == ("TERMINATED", before["version"])


async def test_a_retried_suspension_is_answered_while_it_made_the_state(world: World) -> None:
    transfer_id = await start_transfer(world.consumer, world.provider, world.agreement_id)
    started = await world.consumer.wait_transfer(transfer_id, {"STARTED"})
    provider_pid = started["providerPid"]
    await world.provider.wait_transfer(provider_pid, {"STARTED"})
    suspension = message("TransferSuspensionMessage", transfer_id, provider_pid)
    path = f"/transfers/{provider_pid}/suspension"
    assert (await world.dsp(path, suspension)).status_code == 200, "first copy"
    await world.provider.wait_transfer(provider_pid, {"SUSPENDED"})
    before = await world.view(provider_pid)
    resp = await world.dsp(path, suspension)
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "SUSPENDED"
    after = await world.view(provider_pid)
    assert (after["state"], after["version"]) == ("SUSPENDED", before["version"])
    # Anything else is judged: a completion from the consumer is illegal while SUSPENDED.
    await assert_refused(world, "TransferCompletionMessage", transfer_id, provider_pid)
