"""The per-app `CatalogService` (connector.catalog) as a FastAPI dependency.

Built on first use from the lifespan's resources and cached on `app.state`; rebuilt when the
lifespan reopened its pool (tests run one app through several lifespans)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from connector.catalog import CatalogService


def catalog_service(request: Request) -> CatalogService:
    state = request.app.state
    resources = state.resources
    service: CatalogService | None = getattr(state, "catalog_service", None)
    if service is None or service.pool is not resources.pool:
        service = CatalogService(
            resources.pool,
            resources.redis,
            participant_id=state.identity.participant_id,
            base_url=state.settings.server.base_url(),
        )
        state.catalog_service = service
    return service


CatalogServiceDep = Annotated[CatalogService, Depends(catalog_service)]
