"""`/live`, `/health` and `/ready` of the control plane (the same shape on every process role)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from connector.runtime import health
from connector.runtime.resources import Resources

router = APIRouter(tags=["health"])


def dependency_checks(resources: Resources) -> dict[str, health.Check]:
    checks = {
        "database": health.database_check(resources.pool),
        "redis": health.redis_check(resources.redis),
    }
    if resources.temporal is not None:
        checks["temporal"] = health.temporal_check(resources.temporal)
    return checks


@router.get("/live", summary="Liveness: the process answers (no dependency checked)")
async def get_live() -> JSONResponse:
    status, body = health.live()
    return JSONResponse(body, status_code=status)


@router.get("/health", summary="Dependency health")
async def get_health(request: Request) -> JSONResponse:
    resources: Resources = request.app.state.resources
    status, body = await health.health(dependency_checks(resources))
    return JSONResponse(body, status_code=status)


@router.get("/ready", summary="Readiness: dependencies answer and migrations are applied")
async def get_ready(request: Request) -> JSONResponse:
    resources: Resources = request.app.state.resources
    status, body = await health.ready(
        dependency_checks(resources), health.migrations_check(resources.pool)
    )
    return JSONResponse(body, status_code=status)
