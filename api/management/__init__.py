"""The operator-facing management API `/management/v1` (JSON, problem+json errors, X-Api-Key).

Catalog write model: assets, policies, offers (+ dry-run evaluation and catalog tools)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.catalog import management_routes as catalog
from api.management import assets, offers, policies
from api.security import require_api_key

PREFIX = "/management/v1"

router = APIRouter(prefix=PREFIX, dependencies=[Depends(require_api_key)])
router.include_router(assets.router)
router.include_router(policies.router)
router.include_router(offers.router)
router.include_router(catalog.router)

__all__ = ["PREFIX", "router"]
