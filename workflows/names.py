"""Durable Temporal names: workflow, update, query and activity types. Renaming Python symbols
never changes these strings; changing a string breaks running histories."""

from __future__ import annotations

from typing import Final

WF_BENCH_BARE: Final = "bench.bare"
ACT_BENCH_NOOP: Final = "bench.noop"
