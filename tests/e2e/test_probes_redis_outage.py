"""A 30 s Redis outage restarts nothing (issue 17): the liveness endpoint `/live` of every process
role (control plane, data plane, worker health port) keeps answering 200 while Redis is stopped,
so the kubelet's liveness probe (the chart's: /live, period 10 s, 3 failures) never fires, while
`/ready` answers 503 naming Redis -- the pods leave their Services -- and 200 again once Redis is
back, without a restart.

One connector on its OWN Postgres, Redis and Temporal dev server (started here, so stopping Redis
disturbs no other test); the data plane runs in-process on its own port; the worker's health app
(`workers.main.health_app`) is served the control plane's resources, as a worker process holds its
own of the same kind. Redis is really stopped (SIGTERM) and started again on the same port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from connector.runtime import embedded
from connector.runtime.runner import Child
from tests import services
from tests.twoconn import Connector, running_connector
from workers.main import health_app

pytestmark = pytest.mark.e2e

OUTAGE = 30.0
POLL = 1.0
# The chart's liveness probe restarts a container after 3 consecutive failures.
LIVENESS_FAILURE_THRESHOLD = 3
RECOVERY = 15.0


@dataclass
class Roles:
    cut: Connector
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    async def get(self, path: str) -> dict[str, httpx.Response]:
        names = list(self.clients)
        answers = await asyncio.gather(*(self.clients[n].get(path) for n in names))
        return dict(zip(names, answers, strict=True))


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Roles, Child]]:
    tmp: Path = tmp_path_factory.mktemp("probes")
    pg_port, redis_port, temporal_port = (embedded.free_port() for _ in range(3))
    async with (
        services.running(embedded.postgres_spec(tmp / "pg", pg_port)) as postgres,
        services.running(embedded.redis_spec(tmp / "redis", redis_port)) as redis,
        services.running(
            embedded.temporal_spec(tmp / "temporal", temporal_port, 0, "connector")
        ) as temporal,
        running_connector(
            "connector",
            embedded.free_port(),
            "did:web:peer.invalid",
            pg_server_url=embedded.postgres_url(pg_port),
            redis_url=f"redis://127.0.0.1:{redis_port}/0",
            temporal_address=f"127.0.0.1:{temporal_port}",
            data_dir=tmp / "cut",
            dataplane="inproc",
            inproc_workers=False,
        ) as cut,
    ):
        del postgres, temporal
        assert cut.dataplane is not None
        resources = cut.recorder.app.state.resources
        async with (
            httpx.AsyncClient(base_url=cut.dataplane.base, timeout=10) as dataplane,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=health_app(resources, None)),
                base_url="http://worker",
                timeout=10,
            ) as worker,
        ):
            roles = Roles(
                cut, {"control-plane": cut.http, "data-plane": dataplane, "worker": worker}
            )
            yield roles, redis


async def _until_ready(roles: Roles, timeout: float) -> float:
    started = time.monotonic()
    last: dict[str, httpx.Response] = {}
    while time.monotonic() - started < timeout:
        last = await roles.get("/ready")
        if all(r.status_code == 200 for r in last.values()):
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError({n: (r.status_code, r.text) for n, r in last.items()})


async def test_a_30s_redis_outage_restarts_nothing(world: tuple[Roles, Child]) -> None:
    roles, redis = world
    await _until_ready(roles, RECOVERY)
    assert all(r.status_code == 200 for r in (await roles.get("/live")).values())

    await redis.stop(time.monotonic() + 10)
    stopped = time.monotonic()
    live_failures = dict.fromkeys(roles.clients, 0)
    worst_streak = dict.fromkeys(roles.clients, 0)
    ready_codes: dict[str, set[int]] = {n: set() for n in roles.clients}
    # the control: /health (the chart's former liveness) fails for the whole outage
    health_streak = dict.fromkeys(roles.clients, 0)
    polls = 0
    try:
        while time.monotonic() - stopped < OUTAGE:
            live = await roles.get("/live")
            ready = await roles.get("/ready")
            health = await roles.get("/health")
            polls += 1
            for name in roles.clients:
                if live[name].status_code == 200:
                    live_failures[name] = 0
                else:
                    live_failures[name] += 1
                    worst_streak[name] = max(worst_streak[name], live_failures[name])
                ready_codes[name].add(ready[name].status_code)
                ok = health[name].status_code == 200
                health_streak[name] = 0 if ok else health_streak[name] + 1
                if ready[name].status_code == 503:
                    checks = ready[name].json()["checks"]
                    assert not checks["redis"]["healthy"], (name, checks)
            await asyncio.sleep(POLL)
    finally:
        await redis.spawn()
        deadline = time.monotonic() + services.START_TIMEOUT
        while not await redis.ready():
            assert time.monotonic() < deadline, redis.log_tail()
            await asyncio.sleep(0.05)
    print(f"{polls} polls in {OUTAGE:.0f} s; /ready {ready_codes}; /live streaks {worst_streak}")

    # liveness never failed even once: no kubelet restart, whatever the probe period
    assert all(streak == 0 for streak in worst_streak.values()), worst_streak
    assert all(streak < LIVENESS_FAILURE_THRESHOLD for streak in worst_streak.values())
    assert all(s >= LIVENESS_FAILURE_THRESHOLD for s in health_streak.values()), health_streak
    # readiness took every role out of its Service during the outage ...
    assert all(503 in codes for codes in ready_codes.values()), ready_codes
    # ... and brings it back without a restart
    back = await _until_ready(roles, RECOVERY)
    print(f"/ready 200 on every role {back:.2f} s after Redis was started again")
    assert all(r.status_code == 200 for r in (await roles.get("/live")).values())
