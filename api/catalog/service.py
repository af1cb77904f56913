"""The per-app `CatalogService` (connector.services.catalog) as a FastAPI dependency.

The lifespan builds it with `open_catalog_service` (which also starts the generation watch,
`connector.services.catalog_cache`); an app whose state lacks one, or holds one from an earlier
lifespan (tests run one app through several), gets one built on first use, without the watch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request

from connector.services.catalog import CatalogService


def _build(state: Any) -> CatalogService:
    resources = state.resources
    return CatalogService(
        resources.pool,
        resources.redis,
        participant_id=state.identity.participant_id,
        base_url=state.settings.server.base_url(),
    )


@asynccontextmanager
async def open_catalog_service(state: Any) -> AsyncIterator[CatalogService]:
    """The lifespan's service on `state` (resources and identity already set), watching."""
    service = _build(state)
    service.start_watch()
    state.catalog_service = service
    try:
        yield service
    finally:
        await service.aclose()


def catalog_service(request: Request) -> CatalogService:
    state = request.app.state
    service: CatalogService | None = getattr(state, "catalog_service", None)
    if service is None or service.pool is not state.resources.pool:
        service = _build(state)
        state.catalog_service = service
    return service


async def _catalog_service_dep(request: Request) -> CatalogService:
    # async: a plain `def` dependency would run in FastAPI's thread pool (a thread hop).
    return catalog_service(request)


CatalogServiceDep = Annotated[CatalogService, Depends(_catalog_service_dep)]
