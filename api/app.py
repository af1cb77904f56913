"""The control plane: `create_app(settings)` builds the FastAPI app; resources open in lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import discovery
from api import health as health_routes
from connector.http_errors import install_error_handlers
from connector import __version__
from connector.metrics import HttpMetricsMiddleware, Metrics, child_registry
from connector.resources import open_resources
from connector.settings import Settings

ROLE = "control-plane"


def create_app(settings: Settings, *, metrics: Metrics | None = None) -> FastAPI:
    metrics = metrics or Metrics(child_registry(), ROLE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            app.state.resources = resources
            yield

    app = FastAPI(
        title="Lightweight dataspace connector — control plane",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    app.include_router(health_routes.router)
    app.include_router(discovery.router)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    return app
