"""The DCP holder (decision 0023), for real: the connector on loopback with Postgres, Redis and a
Temporal dev server, and DCP peers (issuer, verifier, stranger) with their own did:web keys.

Covers the Credential Service (presentation query and every refusal; the Storage API), the
sealed store, the credential request workflow (ISSUED, REJECTED, EXPIRED), the renewal
workflow and its Schedule, and the management API.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from temporalio.client import ScheduleActionExecutionStartWorkflow, ScheduleActionStartWorkflow
from temporalio.worker import Replayer

from connector.core.identity.dcp import DCP_CONTEXT
from connector.core.identity.dcp_holder import unverified_claims
from connector.encryption.aead import SEALED_PREFIX
from connector.identity.keys import KeyRing
from connector.identity.runtime import load_keyring
from connector.runtime.embedded import free_port
from connector.temporal.client import connect
from connector.temporal.codec import data_converter
from tests.dcp_issuer_peer import DcpPeer, access_token, credentials_cli, dcp_peer, sign
from tests.twoconn import HEADERS, Connector, running_connector
from workers.main import workflow_runner
from workflows import names
from workflows.credential_contracts import (
    CredentialReceived,
    CredentialRequestStart,
    CredentialRequestView,
    RenewalInput,
    RenewalResult,
)
from workflows.credential_renewal import CredentialRenewalWorkflow
from workflows.credential_request import CredentialRequestWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.workflow]

JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.")

MEMBERSHIP = "MembershipCredential"


@dataclass
class World:
    cut: Connector
    issuer: DcpPeer  # trusted for MembershipCredential
    verifier: DcpPeer
    stranger: DcpPeer  # signs valid tokens and VCs, trusted for nothing
    keyring: KeyRing  # the connector's own keys (what its STS signs access tokens with)


@pytest.fixture(scope="module")
async def world(
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("dcp-holder")
    async with (
        dcp_peer(tmp / "issuer") as issuer,
        dcp_peer(tmp / "verifier") as verifier,
        dcp_peer(tmp / "stranger") as stranger,
        running_connector(
            "connector",
            free_port(),
            verifier.did,
            pg_server_url=pg_server_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            data_dir=tmp / "cut",
            identity={"trust": {"trusted_issuers": {issuer.did: [MEMBERSHIP]}}},
            credentials={"poll_interval_seconds": 1, "request_deadline_seconds": 60},
        ) as cut,
    ):
        yield World(cut, issuer, verifier, stranger, load_keyring(cut.settings))


def _query(scope: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"@context": [DCP_CONTEXT], "type": "PresentationQueryMessage"}
    if scope is not None:
        body["scope"] = scope
    body.update(extra)
    return body


def _scope(credential_type: str) -> str:
    return f"org.eclipse.dspace.dcp.vc.type:{credential_type}:read"


async def _ask(w: World, authorization: str | None, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization else {}
    return await w.cut.http.post("/dcp/presentations/query", json=body, headers=headers)


def _good_si(w: World, types: list[str] | None = None, **overrides: Any) -> str:
    token = access_token(w.keyring, w.cut.did, w.verifier.did, types or [MEMBERSHIP])
    return "Bearer " + w.verifier.si_token(w.cut.did, token=token, **overrides)


async def _store(w: World, *payloads: str, holder_pid: str | None = None) -> int:
    message = w.issuer.credential_message(holder_pid or f"urn:uuid:{uuid.uuid4()}", list(payloads))
    return await w.issuer.store_at(w.cut.base, w.cut.did, message)


async def test_did_document_publishes_the_credential_service(world: World) -> None:
    doc = (await world.cut.http.get("/.well-known/did.json")).json()
    assert {
        "id": f"{world.cut.did}#credential-service",
        "type": "CredentialService",
        "serviceEndpoint": f"{world.cut.base}/dcp",
    } in doc["service"]
    vm_ids = [vm["id"] for vm in doc["verificationMethod"]]
    assert set(vm_ids) <= set(doc["authentication"])


async def test_presentation_query_presents_granted_credentials_only(world: World) -> None:
    vc = world.issuer.vc(world.cut.did)
    assert await _store(world, vc) == 200
    # PcfCredential is asked for but not granted by the access token: dropped, no error.
    resp = await _ask(world, _good_si(world), _query([_scope(MEMBERSHIP), _scope("PcfCredential")]))
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["type"] == "PresentationResponseMessage"
    assert answer["@context"] == [DCP_CONTEXT]
    (vp,) = answer["presentation"]
    header = jwt.decode(vp, world.keyring.current.key, algorithms=["ES256"]).header
    assert header["kid"] == f"{world.cut.did}#{world.keyring.current.key_id}"
    claims = jwt.decode(vp, world.keyring.current.key, algorithms=["ES256"]).claims
    assert claims["iss"] == claims["sub"] == world.cut.did
    assert claims["aud"] == world.verifier.did
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert vc in claims["vp"]["verifiableCredential"]
    assert claims["vp"]["holder"] == world.cut.did


async def test_scopes_the_access_token_does_not_grant_are_dropped(world: World) -> None:
    await _store(world, world.issuer.vc(world.cut.did))
    # The token grants only PcfCredential: the Membership credentials we hold stay out.
    resp = await _ask(world, _good_si(world, ["PcfCredential"]), _query([_scope(MEMBERSHIP)]))
    assert resp.status_code == 200, resp.text
    (vp,) = resp.json()["presentation"]
    assert unverified_claims(vp)["vp"]["verifiableCredential"] == []  # type: ignore[index]


async def test_expired_credentials_are_not_presented(world: World) -> None:
    expired = world.issuer.vc(world.cut.did, validity=timedelta(seconds=2))
    assert await _store(world, expired) == 200
    await asyncio.sleep(2.5)
    resp = await _ask(world, _good_si(world), _query([_scope(MEMBERSHIP)]))
    (vp,) = resp.json()["presentation"]
    assert expired not in unverified_claims(vp)["vp"]["verifiableCredential"]  # type: ignore[index]


def _foreign_key_si(w: World) -> str:
    """Claims of the verifier, kid of the verifier, signed with the stranger's key."""
    token = access_token(w.keyring, w.cut.did, w.verifier.did, [MEMBERSHIP])
    now = int(time.time())
    claims = {
        "iss": w.verifier.did,
        "sub": w.verifier.did,
        "aud": w.cut.did,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 300,
        "token": token,
    }
    kid = f"{w.verifier.did}#{w.verifier.keyring.current.key_id}"
    return "Bearer " + sign(w.stranger.keyring, w.stranger.did, claims, kid=kid)


def _si_with_access(w: World, access: str, **overrides: Any) -> str:
    return "Bearer " + w.verifier.si_token(w.cut.did, token=access, **overrides)


REFUSALS: dict[str, Callable[[World], str | None]] = {
    "no authorization": lambda w: None,
    "not a bearer token": lambda w: "Basic abc",
    "bad SI token signature": _foreign_key_si,
    "wrong audience": lambda w: _good_si(w, aud=w.stranger.did),
    "SI token expired": lambda w: _good_si(
        w, iat=int(time.time()) - 900, exp=int(time.time()) - 600
    ),
    "no access token": lambda w: "Bearer " + w.verifier.si_token(w.cut.did),
    "access token not ours": lambda w: _si_with_access(
        w,
        sign(
            w.verifier.keyring,
            w.cut.did,
            {
                "iss": w.cut.did,
                "aud": w.cut.did,
                "sub": w.verifier.did,
                "scope": _scope(MEMBERSHIP),
                "jti": "x",
                "iat": int(time.time()),
                "exp": int(time.time()) + 300,
            },
        ),
    ),
    "access token for another verifier": lambda w: _si_with_access(
        w, access_token(w.keyring, w.cut.did, w.stranger.did, [MEMBERSHIP])
    ),
    "access token issued by someone else": lambda w: _si_with_access(
        w, access_token(w.keyring, w.cut.did, w.verifier.did, [MEMBERSHIP], iss=w.issuer.did)
    ),
    "access token expired": lambda w: _si_with_access(
        w, access_token(w.keyring, w.cut.did, w.verifier.did, [MEMBERSHIP], lifetime=-120)
    ),
    "access token signed by an unknown key": lambda w: _si_with_access(
        w,
        jwt.encode(
            {"alg": "ES256", "kid": f"{w.cut.did}#{w.keyring.current.key_id}"},
            unverified_claims(access_token(w.keyring, w.cut.did, w.verifier.did, [MEMBERSHIP])),
            ECKey.generate_key("P-256"),
            algorithms=["ES256"],
        ),
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_presentation_query_refusals_are_a_generic_401(world: World, case: str) -> None:
    resp = await _ask(world, REFUSALS[case](world), _query([_scope(MEMBERSHIP)]))
    assert resp.status_code == 401, (case, resp.text)
    assert "presentation" not in resp.json()
    assert resp.json()["reasons"][0].startswith("not authenticated (correlation id ")


async def test_a_replayed_query_token_is_refused(world: World) -> None:
    authorization = _good_si(world)
    first = await _ask(world, authorization, _query([_scope(MEMBERSHIP)]))
    assert first.status_code == 200
    again = await _ask(world, authorization, _query([_scope(MEMBERSHIP)]))
    assert again.status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (_query([_scope(MEMBERSHIP)], presentationDefinition={"id": "x"}), 400),
        (_query(), 400),
        (_query([]), 400),
        (_query(presentationDefinition={"id": "pd", "input_descriptors": []}), 501),
        ({"@context": [DCP_CONTEXT], "type": "Other", "scope": ["x"]}, 400),
    ],
    ids=["scope and definition", "neither", "empty scope", "definition alone", "wrong type"],
)
async def test_malformed_queries_get_a_clear_answer(
    world: World, body: dict[str, Any], status: int
) -> None:
    resp = await _ask(world, _good_si(world), body)
    assert resp.status_code == status, resp.text
    assert resp.json()["reasons"]


async def test_storage_api_accepts_a_trusted_issuers_credential_for_us(world: World) -> None:
    vc = world.issuer.vc(world.cut.did)
    assert await _store(world, vc) == 200
    assert await _store(world, vc) == 200  # the same credential again: idempotent
    listed = (await world.cut.get("/credentials")).json()["items"]
    (mine,) = [c for c in listed if c["id"] == unverified_claims(vc)["jti"]]
    assert mine["types"] == [MEMBERSHIP]
    assert mine["issuerDid"] == world.issuer.did
    assert all("payload" not in c for c in listed)
    assert vc not in (await world.cut.get("/credentials")).text


async def test_storage_api_refuses_others(world: World) -> None:
    before = len((await world.cut.get("/credentials")).json()["items"])
    # An issuer we do not trust: 401 before anything is resolved.
    untrusted = world.stranger.credential_message("urn:uuid:s", [world.stranger.vc(world.cut.did)])
    assert await world.stranger.store_at(world.cut.base, world.cut.did, untrusted) == 401
    # A trusted issuer writing a credential about someone else.
    assert await _store(world, world.issuer.vc(world.stranger.did)) == 400
    # A trusted issuer handing over a credential another issuer signed.
    assert await _store(world, world.stranger.vc(world.cut.did)) == 400
    # A tampered credential (payload changed, signature kept).
    head, _, sig = world.issuer.vc(world.cut.did).split(".")
    forged = world.issuer.vc(world.cut.did, "AdminCredential").split(".")[1]
    assert await _store(world, f"{head}.{forged}.{sig}") == 400
    # A token for another audience.
    message = world.issuer.credential_message("urn:uuid:a", [world.issuer.vc(world.cut.did)])
    resp = await world.cut.http.post(
        "/dcp/credentials",
        json=message,
        headers={"Authorization": "Bearer " + world.issuer.si_token(world.stranger.did)},
    )
    assert resp.status_code == 401
    assert len((await world.cut.get("/credentials")).json()["items"]) == before


async def test_the_store_never_holds_a_payload_in_clear(world: World) -> None:
    vc = world.issuer.vc(world.cut.did)
    assert await _store(world, vc) == 200
    conn = await asyncpg.connect(world.cut.db_url)
    try:
        rows = await conn.fetch("SELECT id, payload FROM held_credentials")
    finally:
        await conn.close()
    assert rows
    for row in rows:
        assert row["payload"].startswith(SEALED_PREFIX)
        for part in vc.split("."):
            assert part not in row["payload"]


async def _wait_request(w: World, holder_pid: str, states: set[str], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        resp = await w.cut.get(f"/credentials/requests/{holder_pid}")
        if resp.status_code == 200:
            last = resp.json()
            if last["status"] in states:
                return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"request {holder_pid} not in {states}: {last}")


async def test_a_credential_request_ends_issued_when_the_issuer_writes_back(world: World) -> None:
    world.issuer.mode = "issue"
    resp = await world.cut.http.post(
        "/management/v1/credentials/requests",
        json={"issuerDid": world.issuer.did, "credentialType": MEMBERSHIP},
        headers={**HEADERS, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert resp.status_code == 201, resp.text
    holder_pid = resp.json()["holderPid"]
    done = await _wait_request(world, holder_pid, {"ISSUED", "REJECTED", "EXPIRED"})
    assert done["status"] == "ISSUED", done
    assert done["issuerPid"] == world.issuer.requests[holder_pid].issuer_pid
    (credential_id,) = done["credentialIds"]
    held = (await world.cut.get("/credentials")).json()["items"]
    assert any(c["id"] == credential_id and c["holderPid"] == holder_pid for c in held)
    # Our request carried our self-issued token for the issuer.
    token = world.issuer.requests[holder_pid].authorization
    assert token is not None
    claims = unverified_claims(token.removeprefix("Bearer "))
    assert claims["iss"] == world.cut.did
    assert claims["aud"] == world.issuer.did


async def test_the_creating_post_is_idempotent_and_validated(world: World) -> None:
    key = {**HEADERS, "Idempotency-Key": str(uuid.uuid4())}
    body = {"issuerDid": world.issuer.did, "credentialType": MEMBERSHIP}
    first = await world.cut.http.post("/management/v1/credentials/requests", json=body, headers=key)
    again = await world.cut.http.post("/management/v1/credentials/requests", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json()["holderPid"] == again.json()["holderPid"]
    await _wait_request(world, first.json()["holderPid"], {"ISSUED"})

    untrusted = await world.cut.http.post(
        "/management/v1/credentials/requests",
        json={"issuerDid": world.stranger.did, "credentialType": MEMBERSHIP},
        headers=HEADERS,
    )
    assert untrusted.status_code == 422
    assert untrusted.headers["content-type"] == "application/problem+json"
    assert untrusted.json()["pointer"] == "/issuerDid"
    bad = await world.cut.http.post(
        "/management/v1/credentials/requests", json={"issuerDid": 3}, headers=HEADERS
    )
    assert bad.status_code in (400, 422)
    assert bad.headers["content-type"] == "application/problem+json"
    anonymous = await world.cut.http.get("/management/v1/credentials")
    assert anonymous.status_code == 401


async def test_a_credential_request_ends_rejected(world: World) -> None:
    world.issuer.mode = "reject"
    try:
        resp = await world.cut.post(
            "/credentials/requests", {"issuerDid": world.issuer.did, "credentialType": MEMBERSHIP}
        )
        assert resp.status_code == 201, resp.text
        done = await _wait_request(world, resp.json()["holderPid"], {"ISSUED", "REJECTED"})
        assert done["status"] == "REJECTED"
        assert done["credentialIds"] == []
    finally:
        world.issuer.mode = "issue"


async def test_an_issuer_rejection_written_back_ends_the_request_rejected(world: World) -> None:
    world.issuer.mode = "reject-write"
    try:
        resp = await world.cut.post(
            "/credentials/requests", {"issuerDid": world.issuer.did, "credentialType": MEMBERSHIP}
        )
        assert resp.status_code == 201, resp.text
        holder_pid = resp.json()["holderPid"]
        done = await _wait_request(world, holder_pid, {"ISSUED", "REJECTED"})
        assert done["status"] == "REJECTED"
        # The issuer's status still says RECEIVED: the write-back (the signal) ended it.
        assert world.issuer.requests[holder_pid].status == "RECEIVED"
        assert world.issuer.write_answers[-1] == 200
    finally:
        world.issuer.mode = "issue"


async def test_a_credential_request_expires_at_its_deadline(world: World) -> None:
    world.issuer.mode = "silent"
    client = await connect(world.cut.settings)
    holder_pid = f"urn:uuid:{uuid.uuid4()}"
    try:
        handle = await client.start_workflow(
            names.WF_CREDENTIAL_REQUEST,
            CredentialRequestStart(
                holder_pid=holder_pid,
                issuer_did=world.issuer.did,
                credential_type=MEMBERSHIP,
                deadline_seconds=3,
                poll_interval_seconds=1,
            ),
            id=names.credential_request_workflow_id(holder_pid),
            task_queue=world.cut.settings.temporal.task_queues.control,
            result_type=CredentialRequestView,
        )
        # Another issuer's write under our holderPid does not answer the request.
        await handle.signal(
            names.SIG_CREDENTIAL_RECEIVED,
            CredentialReceived(
                status="ISSUED", credential_ids=["x"], issuer_did=world.stranger.did
            ),
        )
        result = await handle.result()
    finally:
        world.issuer.mode = "issue"
    assert result.status == "EXPIRED"
    assert holder_pid in world.issuer.requests  # it was asked, and polled, but never answered
    projected = (await world.cut.get(f"/credentials/requests/{holder_pid}")).json()
    assert projected["status"] == "EXPIRED"
    assert projected["version"] == result.version


async def test_renewal_requests_a_new_credential_for_each_expiring_one(world: World) -> None:
    world.issuer.mode = "issue"
    soon = world.issuer.vc(world.cut.did, validity=timedelta(days=2))
    later = world.issuer.vc(world.cut.did, validity=timedelta(days=300))
    assert await _store(world, soon, later) == 200
    soon_id = unverified_claims(soon)["jti"]
    client = await connect(world.cut.settings)
    result = await client.execute_workflow(
        names.WF_CREDENTIAL_RENEWAL,
        RenewalInput(window_seconds=7 * 24 * 3600, deadline_seconds=60, poll_interval_seconds=1),
        id=f"renewal-test-{uuid.uuid4()}",
        task_queue=world.cut.settings.temporal.task_queues.control,
        result_type=RenewalResult,
    )
    renewals = {}
    for holder_pid in result.requested:
        renewals[holder_pid] = await _wait_request(world, holder_pid, {"ISSUED"})
    assert soon_id in {r["renewalOf"] for r in renewals.values()}
    assert unverified_claims(later)["jti"] not in {r["renewalOf"] for r in renewals.values()}
    listed = (await world.cut.get("/credentials/requests", renewals="true")).json()["items"]
    assert {r["holderPid"] for r in listed} >= set(result.requested)
    # A credential whose renewal was issued is not renewed again.
    second = await client.execute_workflow(
        names.WF_CREDENTIAL_RENEWAL,
        RenewalInput(window_seconds=7 * 24 * 3600, deadline_seconds=60, poll_interval_seconds=1),
        id=f"renewal-test-{uuid.uuid4()}",
        task_queue=world.cut.settings.temporal.task_queues.control,
        result_type=RenewalResult,
    )
    assert second.requested == []


async def test_the_renewal_schedule_runs_the_renewal_workflow(world: World) -> None:
    from workers.credential_ops import ensure_renewal_schedule

    client = await connect(world.cut.settings)
    change = await ensure_renewal_schedule(client, world.cut.settings)
    assert change.endswith(("created", "updated"))
    handle = client.get_schedule_handle(names.SCHEDULE_CREDENTIAL_RENEWAL)
    described = await handle.describe()
    # The server stores the cron expression (credentials.renewal_schedule) as a calendar.
    (calendar,) = described.schedule.spec.calendars
    assert [r.start for r in calendar.hour] == [3]
    assert [r.start for r in calendar.minute] == [30]
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == names.WF_CREDENTIAL_RENEWAL
    assert action.task_queue == world.cut.settings.temporal.task_queues.control
    assert described.schedule.state.paused is False
    await handle.trigger()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        described = await handle.describe()
        if described.info.recent_actions:
            break
        await asyncio.sleep(0.2)
    (recent,) = described.info.recent_actions
    started = recent.action
    assert isinstance(started, ScheduleActionExecutionStartWorkflow)
    run = client.get_workflow_handle(started.workflow_id, result_type=RenewalResult)
    assert (await run.describe()).workflow_type == names.WF_CREDENTIAL_RENEWAL
    assert isinstance(await run.result(), RenewalResult)
    await handle.delete()


async def test_recorded_credential_histories_replay_in_the_sandbox(world: World) -> None:
    """Every closed DCP workflow of the connector (this test's own request and renewal run,
    and those of the tests before it) replays deterministically, and no history holds a
    credential or token in clear."""
    world.issuer.mode = "issue"
    client = await connect(world.cut.settings)
    holder_pid = f"urn:uuid:{uuid.uuid4()}"
    queue = world.cut.settings.temporal.task_queues.control
    issued = await client.execute_workflow(
        names.WF_CREDENTIAL_REQUEST,
        CredentialRequestStart(
            holder_pid=holder_pid,
            issuer_did=world.issuer.did,
            credential_type=MEMBERSHIP,
            deadline_seconds=60,
            poll_interval_seconds=1,
        ),
        id=names.credential_request_workflow_id(holder_pid),
        task_queue=queue,
        result_type=CredentialRequestView,
    )
    assert issued.status == "ISSUED"
    await client.execute_workflow(
        names.WF_CREDENTIAL_RENEWAL,
        RenewalInput(window_seconds=1, deadline_seconds=60, poll_interval_seconds=1),
        id=f"renewal-test-{uuid.uuid4()}",
        task_queue=queue,
        result_type=RenewalResult,
    )
    query = (
        f'TaskQueue="{world.cut.settings.temporal.task_queues.control}" '
        f'AND (WorkflowType="{names.WF_CREDENTIAL_REQUEST}" '
        f'OR WorkflowType="{names.WF_CREDENTIAL_RENEWAL}") AND ExecutionStatus="Completed"'
    )
    found: list[Any] = []
    for _ in range(100):  # visibility trails the close by a moment
        found = [wf async for wf in client.list_workflows(query)]
        if {wf.workflow_type for wf in found} >= {
            names.WF_CREDENTIAL_REQUEST,
            names.WF_CREDENTIAL_RENEWAL,
        }:
            break
        await asyncio.sleep(0.1)
    assert {wf.workflow_type for wf in found} >= {
        names.WF_CREDENTIAL_REQUEST,
        names.WF_CREDENTIAL_RENEWAL,
    }
    replayer = Replayer(
        workflows=[CredentialRequestWorkflow, CredentialRenewalWorkflow],
        workflow_runner=workflow_runner(sandbox=True),
        data_converter=data_converter(world.cut.settings),
    )
    for wf in found:
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, wf.id
        # No JWT (credential or token) in a history: a compact JWS is two base64url segments
        # starting `eyJ` ({"...) joined by a dot, which encrypted base64 data cannot contain.
        assert not JWT_SHAPE.search(history.to_json()), wf.id


async def _cli(w: World, *argv: str) -> tuple[int, str]:
    return await credentials_cli(w.cut.settings, *argv)


async def test_cli_imports_lists_and_requests_credentials(world: World, tmp_path: Path) -> None:
    vc = world.issuer.vc(world.cut.did, validity=timedelta(days=30))
    (tmp_path / "vc.jwt").write_text(vc + "\n")
    code, out = await _cli(world, "import", str(tmp_path / "vc.jwt"))
    assert code == 0, out
    assert json.loads(out)["id"] == unverified_claims(vc)["jti"]

    foreign = world.stranger.vc(world.cut.did)
    (tmp_path / "foreign.jwt").write_text(foreign)
    code, out = await _cli(world, "import", str(tmp_path / "foreign.jwt"))
    assert code == 1
    assert "not trusted" in out

    code, out = await _cli(world, "list")
    assert code == 0, out
    listed = json.loads(out)
    assert unverified_claims(vc)["jti"] in {c["id"] for c in listed}
    assert vc not in out
    assert unverified_claims(foreign)["jti"] not in {c["id"] for c in listed}

    code, out = await _cli(world, "request", world.issuer.did, MEMBERSHIP)
    assert code == 0, out
    holder_pid = json.loads(out)["holderPid"]
    assert (await _wait_request(world, holder_pid, {"ISSUED"}))["status"] == "ISSUED"
    code, out = await _cli(world, "requests")
    assert code == 0, out
    assert holder_pid in {r["holderPid"] for r in json.loads(out)}


async def test_the_dr_reconcile_rebuilds_credential_requests_from_their_workflows(
    world: World,
) -> None:
    """After a restore, `connector.services.reconcile` re-projects requests from the workflows."""
    from connector.encryption.runtime import data_keys
    from connector.services.reconcile import reconcile
    from workers.registry import projection_kinds

    resp = await world.cut.post(
        "/credentials/requests", {"issuerDid": world.issuer.did, "credentialType": MEMBERSHIP}
    )
    holder_pid = resp.json()["holderPid"]
    before = await _wait_request(world, holder_pid, {"ISSUED"})
    conn = await asyncpg.connect(world.cut.db_url)
    try:
        await conn.execute("DELETE FROM credential_requests")
        client = await connect(world.cut.settings)
        kinds = projection_kinds(
            data_keys(world.cut.settings), world.cut.settings.temporal.task_queues.control
        )
        pool = await asyncpg.create_pool(world.cut.db_url, min_size=1, max_size=2)
        try:
            counts = await reconcile(client, pool, kinds, only=["credential_requests"])
        finally:
            await pool.close()
    finally:
        await conn.close()
    assert counts["credential_requests"].failed == 0, counts["credential_requests"].errors
    assert counts["credential_requests"].reprojected >= 1
    after = (await world.cut.get(f"/credentials/requests/{holder_pid}")).json()
    assert after == before
