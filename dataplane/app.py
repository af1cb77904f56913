"""The data plane process: moves bytes near the data. `create_app(settings)` builds it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from connector.http_errors import install_error_handlers
from connector import __version__, health
from connector.metrics import HttpMetricsMiddleware, Metrics, child_registry
from connector.resources import Resources, open_resources
from connector.settings import Settings

ROLE = "data-plane"


def _checks(resources: Resources) -> dict[str, health.Check]:
    return {
        "database": health.database_check(resources.pool),
        "redis": health.redis_check(resources.redis),
    }


def create_app(settings: Settings, *, metrics: Metrics | None = None) -> FastAPI:
    metrics = metrics or Metrics(child_registry(), ROLE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(settings, temporal=False) as resources:
            app.state.resources = resources
            yield

    app = FastAPI(
        title="Lightweight dataspace connector — data plane",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)

    @app.get("/health", summary="Liveness and dependency health")
    async def get_health(request: Request) -> JSONResponse:
        status, body = await health.health(_checks(request.app.state.resources))
        return JSONResponse(body, status_code=status)

    @app.get("/ready", summary="Readiness")
    async def get_ready(request: Request) -> JSONResponse:
        resources: Resources = request.app.state.resources
        status, body = await health.ready(
            _checks(resources), health.migrations_check(resources.pool)
        )
        return JSONResponse(body, status_code=status)

    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    return app
