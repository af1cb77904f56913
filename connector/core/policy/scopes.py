"""Policy scopes: where a policy is evaluated (EDC's policy scopes; dsp.md §7-§9).

Catalog = may the caller see the dataset; negotiation = may we agree; transfer = may data flow."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Scope"]


class Scope(StrEnum):
    CATALOG = "catalog"
    NEGOTIATION = "negotiation"
    TRANSFER = "transfer"
