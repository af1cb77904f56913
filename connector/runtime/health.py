"""Dependency health checks shared by every process role (the seed's HealthController).

`/live` is process-only: it answers 200 whenever the event loop serves a request, so a dependency
outage never makes the kubelet restart a pod (liveness). `/health` answers 200 when every check is
healthy, 503 otherwise, naming the failing check; `/ready` additionally requires the schema
migrations to be applied (readiness: the pod leaves the Service until its dependencies are back).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import redis.asyncio as aioredis

from connector import __version__
from connector.stores import migrate

if TYPE_CHECKING:
    from temporalio.client import Client

CHECK_TIMEOUT_SECONDS = 2.0

Check = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class CheckResult:
    healthy: bool
    latency_ms: float
    error: str | None = None


async def run_check(check: Check, limit: float = CHECK_TIMEOUT_SECONDS) -> CheckResult:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout=limit)
    except TimeoutError:
        return CheckResult(False, _ms(started), f"no answer within {limit:g}s")
    except Exception as exc:  # any failure of a dependency means "unhealthy"
        return CheckResult(False, _ms(started), _describe(exc))
    return CheckResult(True, _ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def database_check(pool: asyncpg.Pool) -> Check:
    async def check() -> None:
        async with pool.acquire(timeout=CHECK_TIMEOUT_SECONDS) as conn:
            await conn.fetchval("SELECT 1")

    return check


def redis_check(client: aioredis.Redis) -> Check:
    async def check() -> None:
        await client.ping()

    return check


def temporal_check(client: Client) -> Check:
    # Imported here: the data plane has no Temporal client and should not pay for the SDK.
    from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

    async def check() -> None:
        await client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=CHECK_TIMEOUT_SECONDS)
        )

    return check


def migrations_check(pool: asyncpg.Pool) -> Check:
    async def check() -> None:
        async with pool.acquire(timeout=CHECK_TIMEOUT_SECONDS) as conn:
            if not await migrate.is_current(conn):
                raise RuntimeError(
                    f"schema not at version {migrate.latest_version()}: run `connector migrate`"
                )

    return check


def live() -> tuple[int, dict[str, Any]]:
    """Liveness: the process answers. Deliberately checks no dependency."""
    return 200, {
        "status": "alive",
        "timestamp": datetime.now(UTC).isoformat(),
        "version": __version__,
    }


async def health(checks: Mapping[str, Check]) -> tuple[int, dict[str, Any]]:
    names = list(checks)
    results = await asyncio.gather(*(run_check(checks[n]) for n in names))
    by_name = dict(zip(names, results, strict=True))
    healthy = all(r.healthy for r in results)
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "timestamp": datetime.now(UTC).isoformat(),
        "version": __version__,
        "checks": {n: asdict(r) for n, r in by_name.items()},
    }
    return (200 if healthy else 503), body


async def ready(
    checks: Mapping[str, Check], migrations: Check | None
) -> tuple[int, dict[str, Any]]:
    all_checks = dict(checks)
    if migrations is not None:
        all_checks["migrations"] = migrations
    status, body = await health(all_checks)
    body["status"] = "ready" if status == 200 else "not ready"
    return status, body
