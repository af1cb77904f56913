"""Fixtures of the tests/http tier. The catalog harness lives in `catalog_fixtures`."""

from __future__ import annotations

from tests.http.catalog_fixtures import harness

__all__ = ["harness"]
