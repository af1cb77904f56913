"""`management.port`: the control plane on two real loopback listeners (real uvicorn, real
Postgres, Redis and Temporal from the session fixtures). The management port serves only
/management, /health and /ready; the main port answers /management with 404 problem+json and
serves DSP as before. The app's lifespan runs once for both listeners; shutdown is bounded."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.listeners import Listener, ListenerPair
from connector.runtime.embedded import free_port
from connector.settings import Settings, load_settings
from tests.http.catalog_fixtures import migrated

pytestmark = pytest.mark.e2e

KEY = "listener-test-management-key-0123456789abcdef"
MGMT = "/management/v1"
PROBLEM = "application/problem+json"


def _settings(pg_url: str, redis_url: str, temporal_address: str, data_dir: Path) -> Settings:
    main_port, management_port = free_port(), free_port()
    return load_settings(
        env={},
        data_dir=data_dir,
        server={"host": "127.0.0.1", "port": main_port},
        management={"api_keys": [KEY], "port": management_port, "host": "127.0.0.1"},
        database={"url": pg_url},
        redis={"url": redis_url},
        temporal={"address": temporal_address, "namespace": "connector"},
        identity={"participant_id": f"urn:t:{uuid.uuid4()}"},
    )


async def _assert_split(settings: Settings) -> None:
    assert settings.management.port is not None
    main = f"http://127.0.0.1:{settings.server.port}"
    management = f"http://127.0.0.1:{settings.management.port}"
    headers = {"X-Api-Key": KEY}
    async with httpx.AsyncClient(timeout=10) as http:
        # The management API: on its own port with the key; 401 without; 404 on the main port.
        resp = await http.get(f"{management}{MGMT}/assets", headers=headers)
        assert resp.status_code == 200, resp.text
        resp = await http.get(f"{management}{MGMT}/assets")
        assert resp.status_code == 401
        assert resp.headers["content-type"].startswith(PROBLEM)
        for method in ("GET", "POST", "DELETE"):
            resp = await http.request(method, f"{main}{MGMT}/assets", headers=headers, json={})
            assert resp.status_code == 404, (method, resp.text)
            assert resp.headers["content-type"].startswith(PROBLEM)
            body = resp.json()
            assert (body["status"], body["type"]) == (404, "urn:connector:error:not_found")
        assert (await http.get(f"{main}/management", headers=headers)).status_code == 404

        # DSP: on the main port only.
        resp = await http.get(f"{main}/.well-known/dspace-version")
        assert resp.status_code == 200, resp.text
        assert resp.json()
        assert (await http.get(f"{management}/.well-known/dspace-version")).status_code == 404
        resp = await http.post(f"{management}/dsp/2025-1/catalog/request", json={})
        assert resp.status_code == 404
        # Each port documents what it serves, and only that.
        assert (await http.get(f"{management}/docs")).status_code == 200
        management_doc = (await http.get(f"{management}/openapi.json")).json()
        main_doc = (await http.get(f"{main}/openapi.json")).json()
        assert any(p.startswith(MGMT) for p in management_doc["paths"])
        assert not any(p.startswith("/dsp/") for p in management_doc["paths"])
        assert any(p.startswith("/dsp/") for p in main_doc["paths"])
        assert not any(p.startswith("/management") for p in main_doc["paths"])

        # Probes answer on both.
        for base in (main, management):
            for probe in ("/health", "/ready"):
                resp = await http.get(base + probe)
                assert resp.status_code == 200, (base, probe, resp.text)


@pytest.fixture
async def split_settings(
    pg_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> Settings:
    await migrated(pg_url)
    return _settings(pg_url, redis_url, temporal_address, tmp_path / "data")


async def test_two_listeners_in_process_route_by_port_and_share_one_lifespan(
    split_settings: Settings,
) -> None:
    settings = split_settings
    assert settings.management.port is not None
    app = create_app(settings)
    lifespan_events: list[str] = []
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def counted(application: Any) -> AsyncIterator[Any]:
        lifespan_events.append("startup")
        async with inner(application) as state:
            yield state
        lifespan_events.append("shutdown")

    app.router.lifespan_context = counted
    pair = ListenerPair(
        app,
        Listener("main", "127.0.0.1", settings.server.port),
        Listener("management", "127.0.0.1", settings.management.port),
        handle_signals=False,
    )
    task = asyncio.create_task(pair.serve())
    try:
        started = asyncio.create_task(pair.started.wait())
        await asyncio.wait({task, started}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        assert pair.started.is_set(), task.result() if task.done() else "not started in 60 s"
        await _assert_split(settings)
        assert lifespan_events == ["startup"]
    finally:
        pair.request_exit()
        began = time.monotonic()
        assert await asyncio.wait_for(task, 20) == 0
    assert time.monotonic() - began < 10  # both drained in parallel, within the grace time
    assert lifespan_events == ["startup", "shutdown"]


async def test_busy_management_port_fails_before_start_up(split_settings: Settings) -> None:
    settings = split_settings
    app = create_app(settings)
    with socket.create_server(("127.0.0.1", 0)) as busy:
        pair = ListenerPair(
            app,
            Listener("main", "127.0.0.1", settings.server.port),
            Listener("management", "127.0.0.1", busy.getsockname()[1]),
            handle_signals=False,
        )
        with pytest.raises(OSError, match=r"\(management\)"):
            await pair.serve()
    assert not hasattr(app.state, "resources")  # the lifespan never ran


async def test_control_plane_cli_serves_two_listeners_and_stops_on_sigterm(
    split_settings: Settings, tmp_path: Path
) -> None:
    settings = split_settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env.update(
        CONNECTOR_DATA_DIR=str(settings.data_dir),
        CONNECTOR_SERVER__HOST="127.0.0.1",
        CONNECTOR_SERVER__PORT=str(settings.server.port),
        CONNECTOR_MANAGEMENT__PORT=str(settings.management.port),
        CONNECTOR_MANAGEMENT__HOST="127.0.0.1",
        CONNECTOR_MANAGEMENT__API_KEYS=f'["{KEY}"]',
        CONNECTOR_DATABASE__URL=settings.database.url.get_secret_value(),  # type: ignore[union-attr]
        CONNECTOR_REDIS__URL=settings.redis.url.get_secret_value(),  # type: ignore[union-attr]
        CONNECTOR_TEMPORAL__ADDRESS=str(settings.temporal.address),
        CONNECTOR_TEMPORAL__NAMESPACE="connector",
        CONNECTOR_IDENTITY__PARTICIPANT_ID=str(settings.identity.participant_id),
        CONNECTOR_METRICS__PORT="0",
    )
    log = tmp_path / "control-plane.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "connector", "control-plane"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            deadline = time.monotonic() + 60
            up: set[str] = set()
            while up != {"main", "management"}:
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                for name, port in (
                    ("main", settings.server.port),
                    ("management", settings.management.port),
                ):
                    try:
                        if (await http.get(f"http://127.0.0.1:{port}/ready")).status_code == 200:
                            up.add(name)
                    except httpx.HTTPError:
                        pass
                await asyncio.sleep(0.1)
        await _assert_split(settings)
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        code = await asyncio.to_thread(proc.wait, 20)
        assert code == 0, log.read_text()[-3000:]
        assert time.monotonic() - began < 15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # One lifespan for both listeners: started once, shut down once after both servers ended.
    output = log.read_text()
    assert output.count("Application startup complete") == 1, output[-3000:]
    assert output.count("Application shutdown complete") == 1, output[-3000:]
    assert output.rindex("Finished server process") < output.index(
        "Waiting for application shutdown"
    )
