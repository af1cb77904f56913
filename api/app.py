"""The control plane: `create_app(settings)` builds the FastAPI app; resources open in lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import discovery, wellknown
from api import health as health_routes
from connector import __version__
from connector.http_errors import install_error_handlers
from connector.identity.apikeys import ApiKeyVerifier, ensure_edge_api_key, load_api_keys
from connector.identity.runtime import build_identity
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
            app.state.identity = build_identity(settings, resources.redis)
            try:
                yield
            finally:
                await app.state.identity.http.aclose()

    app = FastAPI(
        title="Lightweight dataspace connector — control plane",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.api_keys = management_keys(settings)
    install_error_handlers(app)
    app.include_router(health_routes.router)
    app.include_router(discovery.router)
    app.include_router(wellknown.router)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    return app


def management_keys(settings: Settings) -> ApiKeyVerifier:
    """Configured keys, or (edge mode, none configured) the one in <data dir>/management-api-key."""
    values = [k.get_secret_value() for k in settings.management.api_keys]
    if not values:
        key, _ = ensure_edge_api_key(settings.data_dir)
        values = [key]
    return load_api_keys(values)
