"""Tokens follow the transfer: suspend revokes at once (also mid-pull), resume issues a new
token, terminate revokes it; a pull honours one byte range (of several, the first satisfiable
one), answers 416 to an unsatisfiable one and ignores a malformed one; push delivers a file to an
HTTP sink; file addresses stay confined (refused when the asset is created, or when the pull
starts for a symlink planted later)."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from connector.settings import load_settings
from connector.stores.migrate import migrate
from dataplane.app import create_app as create_dataplane
from dataplane.signaling import PREFIX, DataFlowStartMessage
from tests.e2e.transfer_helpers import (
    MIB,
    Sink,
    agreement_for,
    edr,
    pull,
    random_file,
    schema_problems,
    start_transfer,
    write_file,
)
from tests.twoconn import connector_pair

pytestmark = pytest.mark.e2e


async def test_suspend_mid_pull_resume_terminate(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
    ) as (provider, consumer):
        base = provider.settings.dataplane.file_base_path
        assert base is not None
        sha = write_file(base / "big.bin", 64 * MIB)
        agreement_id = await agreement_for(
            provider, consumer, "big", data_address={"type": "file", "path": "big.bin"}
        )
        transfer_id = await start_transfer(consumer, provider, agreement_id)
        assert (await consumer.wait_transfer(transfer_id, {"STARTED"}))["state"] == "STARTED"
        old = await edr(consumer, transfer_id)
        headers = {"Authorization": f"Bearer {old['authorization']}"}

        async with httpx.AsyncClient(timeout=30) as client:
            async with client.stream("GET", old["endpoint"], headers=headers) as resp:
                assert resp.status_code == 200
                stream = resp.aiter_raw(MIB)
                await anext(stream)  # the pull is under way
                suspended = await consumer.post(f"/transfers/{transfer_id}/suspend", {})
                assert suspended.status_code == 200, suspended.text
                assert suspended.json()["state"] == "SUSPENDED"
                # The old token is refused at once...
                again = await client.get(old["endpoint"], headers=headers)
                assert again.status_code == 403, again.text
                # ...and the running pull is cut short.
                with pytest.raises(httpx.HTTPError):
                    async for _ in stream:
                        pass
            provider_side = await provider.wait_transfer(
                suspended.json()["providerPid"], {"SUSPENDED"}
            )
            assert provider_side["state"] == "SUSPENDED"
            assert (await consumer.get(f"/transfers/{transfer_id}/edr")).status_code == 409

            resumed = await consumer.post(f"/transfers/{transfer_id}/resume", {})
            assert resumed.status_code == 200, resumed.text
            for _ in range(100):  # the provider's start with the new address follows the ack
                new = await edr(consumer, transfer_id)
                if new["authorization"] != old["authorization"]:
                    break
                await asyncio.sleep(0.05)
            assert new["authorization"] != old["authorization"]
            assert (await client.get(old["endpoint"], headers=headers)).status_code == 403
            ranged = await client.get(
                new["endpoint"],
                headers={"Authorization": f"Bearer {new['authorization']}", "Range": "bytes=10-19"},
            )
            assert ranged.status_code == 206
            assert ranged.headers["content-range"] == f"bytes 10-19/{64 * MIB}"
            assert len(ranged.content) == 10

            terminated = await consumer.post(
                f"/transfers/{transfer_id}/terminate", {"reason": "done"}
            )
            assert terminated.status_code == 200, terminated.text
            assert terminated.json()["state"] == "TERMINATED"
            revoked = await client.get(
                new["endpoint"], headers={"Authorization": f"Bearer {new['authorization']}"}
            )
            assert revoked.status_code == 403
        assert sha
        await provider.recorder.quiet()
        await consumer.recorder.quiet()
        exchanged = provider.recorder.exchanges + consumer.recorder.exchanges
        assert schema_problems(exchanged) == []


async def test_pull_answers_416_or_ignores_a_bad_range(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """RFC 9110 ranges on the real data plane app (alone: no control plane, no Temporal)."""
    conn = await asyncpg.connect(pg_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    secret = "range-test-signaling-secret-0123456789abcdef"
    files = tmp_path / "files"
    files.mkdir()
    data = os.urandom(100)
    (files / "r.bin").write_bytes(data)
    settings = load_settings(
        env={},
        data_dir=tmp_path,
        database={"url": pg_url},
        redis={"url": redis_url},
        temporal={"address": "127.0.0.1:1"},
        dataplane={"signaling_secret": secret, "file_base_path": str(files)},
    )
    app = create_dataplane(settings)
    start = DataFlowStartMessage(
        process_id=f"urn:uuid:{uuid.uuid4()}",
        agreement_id="agreement-1",
        participant_id="did:web:consumer.example",
        transfer_type="HttpData-PULL",
        flow_type="PULL",
        finite=False,  # a whole-body pull of a finite flow completes it; we pull several times
        source_data_address={"type": "file", "path": "r.bin"},
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://dataplane.test"
        ) as client,
    ):
        started = await client.post(
            PREFIX,
            json=start.model_dump(mode="json"),
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert started.status_code == 200, started.text
        address = started.json()["dataAddress"]
        token = next(
            p["value"] for p in address["endpointProperties"] if p["name"] == "authorization"
        )
        endpoint = f"/public/{start.process_id}"

        async def get(range_header: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}", "Range": range_header}
            return await client.get(endpoint, headers=headers)

        ranged = await get("bytes=10-19")
        assert ranged.status_code == 206, ranged.text
        assert ranged.headers["content-range"] == "bytes 10-19/100"
        assert ranged.content == data[10:20]
        for unsatisfiable in ("bytes=100-", "bytes=-0", "bytes=20-10"):
            refused = await get(unsatisfiable)
            assert refused.status_code == 416, (unsatisfiable, refused.text)
            assert refused.headers["content-range"] == "bytes */100"
            assert refused.json()["error"] == "range_not_satisfiable"
        several = await get("bytes=0-1,5-6")  # the first range alone, never the whole file
        assert several.status_code == 206, several.text
        assert several.headers["content-range"] == "bytes 0-1/100"
        assert several.content == data[:2]
        for ignored in ("bytes=abc-def", "bytes=0-1,x", "items=0-1"):
            whole = await get(ignored)
            assert whole.status_code == 200, (ignored, whole.text)
            assert "content-range" not in whole.headers
            assert whole.content == data


async def test_provider_suspends_and_resumes_a_pull(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
    ) as (provider, consumer):
        base = provider.settings.dataplane.file_base_path
        assert base is not None
        sha = random_file(base / "f.bin", MIB)
        agreement_id = await agreement_for(
            provider, consumer, "f", data_address={"type": "file", "path": "f.bin"}
        )
        transfer_id = await start_transfer(consumer, provider, agreement_id)
        started = await consumer.wait_transfer(transfer_id, {"STARTED"})
        old = await edr(consumer, transfer_id)
        provider_pid = started["providerPid"]
        resp = await provider.post(f"/transfers/{provider_pid}/suspend", {"reason": "maintenance"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["state"] == "SUSPENDED"
        assert (await pull(old["endpoint"], old["authorization"]))[0] == 403
        await consumer.wait_transfer(transfer_id, {"SUSPENDED"})
        resp = await provider.post(f"/transfers/{provider_pid}/resume", {})
        assert resp.status_code == 200, resp.text
        assert resp.json()["state"] == "STARTED"
        await consumer.wait_transfer(transfer_id, {"STARTED"})
        new = await edr(consumer, transfer_id)
        assert new["authorization"] != old["authorization"]
        assert (await pull(old["endpoint"], old["authorization"]))[0] == 403
        status, digest, _ = await pull(new["endpoint"], new["authorization"])
        assert (status, digest) == (200, sha)
        done = await consumer.wait_transfer(transfer_id, {"COMPLETED"})
        assert done["state"] == "COMPLETED"


async def test_push_to_an_http_sink(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with (
        Sink() as sink,
        connector_pair(
            pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
        ) as (provider, consumer),
    ):
        base = provider.settings.dataplane.file_base_path
        assert base is not None
        sha = random_file(base / "push.bin", 5 * MIB + 7)
        agreement_id = await agreement_for(
            provider, consumer, "p", data_address={"type": "file", "path": "push.bin"}
        )
        transfer_id = await start_transfer(
            consumer,
            provider,
            agreement_id,
            "HttpData-PUSH",
            dataDestination=sink.address("out.bin"),
        )
        done = await consumer.wait_transfer(transfer_id, {"COMPLETED", "TERMINATED"})
        assert done["state"] == "COMPLETED", done
        assert sink.received["out.bin"] == (sha, 5 * MIB + 7)
        await provider.recorder.quiet()
        await consumer.recorder.quiet()
        exchanged = provider.recorder.exchanges + consumer.recorder.exchanges
        assert schema_problems(exchanged) == []


async def test_file_outside_the_base_path_is_refused(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
    ) as (provider, consumer):
        base = provider.settings.dataplane.file_base_path
        assert base is not None
        secret = tmp_path / "secret.txt"
        secret.write_text("not for you")
        # Refused when the asset is stored: the data plane's rules, 422 with the pointer.
        for path in ("../secret.txt", "/etc/passwd", "file:///etc/passwd"):
            resp = await provider.post(
                "/assets",
                {"id": "dots", "dataAddress": {"type": "file", "path": path}, "distributions": []},
            )
            assert resp.status_code == 422, resp.text
            assert resp.json()["pointer"] == "/dataAddress/path"
        # A symlink planted after the asset was stored: refused when the transfer runs.
        agreement_id = await agreement_for(
            provider, consumer, "link", data_address={"type": "file", "path": "link.txt"}
        )
        os.symlink(secret, base / "link.txt")
        transfer_id = await start_transfer(consumer, provider, agreement_id)
        done = await consumer.wait_transfer(transfer_id, {"STARTED", "TERMINATED"})
        assert done["state"] == "TERMINATED", done
        assert done["stateReason"]["code"] == "flow_failed"
