"""kill -9 the data plane during a push: the transfer completes with a correct checksum or ends
TERMINATED with the reason — never a partial file reported as COMPLETED (issue 5)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.transfer_helpers import MIB, Sink, agreement_for, start_transfer, write_file
from tests.twoconn import connector_pair

pytestmark = pytest.mark.e2e


class SlowSink(Sink):
    """A sink that reads slowly, so a push is still running when the data plane dies."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.bytes_seen = 0

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        async def slow_receive() -> Any:
            message = await receive()
            if message.get("type") == "http.request":
                self.bytes_seen += len(message.get("body", b""))
                await asyncio.sleep(self.delay)
            return message

        await super().app(scope, slow_receive, send)


async def test_kill_9_the_data_plane_during_a_push(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    size = 48 * MIB
    async with (
        SlowSink(delay=0.002) as sink,
        connector_pair(
            pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="process"
        ) as (provider, consumer),
    ):
        dataplane = provider.dataplane
        assert dataplane is not None
        base = provider.settings.dataplane.file_base_path
        assert base is not None
        sha = write_file(base / "push.bin", size)
        agreement_id = await agreement_for(
            provider, consumer, "push-asset", data_address={"type": "file", "path": "push.bin"}
        )
        transfer_id = await start_transfer(
            consumer, provider, agreement_id, "HttpData-PUSH", dataDestination=sink.address("p")
        )
        deadline = time.monotonic() + 30
        while sink.bytes_seen < 4 * MIB and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert 0 < sink.bytes_seen < size, "the push was not under way when the data plane died"

        dataplane.kill()
        await asyncio.sleep(1.0)
        await dataplane.start()

        done = await consumer.wait_transfer(transfer_id, {"COMPLETED", "TERMINATED"}, timeout=180)
        if done["state"] == "COMPLETED":
            assert sink.received.get("p") == (sha, size), (sink.received, sink.incomplete)
        else:
            reason = " ".join(done.get("termination", {}).get("reason", []))
            assert reason, done
        # Whatever happened, the sink never holds a short body that was taken for complete.
        assert all(received == (sha, size) for received in sink.received.values())
        assert sink.incomplete, "the killed push should have left an incomplete body at the sink"
