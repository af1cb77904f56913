"""JSON-LD handling for DSP bodies: vendored contexts, the 2025-1/0.8 codec (STYLE.md §11).

Only vendored contexts are ever used; nothing is fetched."""

from __future__ import annotations

from connector.core.dsp.version import DspVersion
from connector.core.jsonld.codec import ALLOWED_CONTEXTS, check_context, decode, encode
from connector.core.jsonld.loader import VENDORED_CONTEXTS, document_loader, load_context

__all__ = [
    "ALLOWED_CONTEXTS",
    "VENDORED_CONTEXTS",
    "DspVersion",
    "check_context",
    "decode",
    "document_loader",
    "encode",
    "load_context",
]
