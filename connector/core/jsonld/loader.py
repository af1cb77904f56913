"""JSON-LD context loader serving only the vendored DSP contexts (STYLE.md §11, identity.md §6.4).

A remote or unknown `@context` is never fetched: it is a client error. No network, no SSRF, and
the meaning of a message cannot change with a third-party server."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import Any, Final

from connector.core.dsp.common import (
    DSP_CONTEXT_0_8,
    DSP_CONTEXT_2025_1,
    ODRL_PROFILE_CONTEXT_2025_1,
)
from connector.core.errors import BadRequestError

__all__ = ["VENDORED_CONTEXTS", "document_loader", "load_context"]

# Published URL -> file in `contexts/` (see contexts/NOTICE.md for provenance and license).
VENDORED_CONTEXTS: Final[Mapping[str, str]] = {
    DSP_CONTEXT_2025_1: "dspace-2025-1.json",
    ODRL_PROFILE_CONTEXT_2025_1: "odrl-profile-2025-1.json",
    DSP_CONTEXT_0_8: "dspace-v0.8.json",
}


@cache
def _read(filename: str) -> str:
    return (files("connector.core.jsonld") / "contexts" / filename).read_text(encoding="utf-8")


def load_context(url: str) -> dict[str, Any]:
    """The vendored context document published at `url` (a fresh copy).

    Raises:
        BadRequestError: `url` is not a vendored context ("unknown @context").
    """
    filename = VENDORED_CONTEXTS.get(url)
    if filename is None:
        raise BadRequestError(f"unknown @context {url!r}", pointer="/@context")
    document: dict[str, Any] = json.loads(_read(filename))
    return document


def document_loader(url: str, options: object = None) -> dict[str, Any]:
    """pyld-compatible document loader over the vendored contexts only.

    Raises:
        BadRequestError: `url` is not a vendored context.
    """
    return {"contextUrl": None, "documentUrl": url, "document": load_context(url)}
