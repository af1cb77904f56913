"""DSP 2025-1 contract negotiation as pure data and functions (dsp.md §8).

Kept empty on purpose: submodules are imported explicitly, so `connector.core.ids` can import
`states` without pulling in the aggregate (and the aggregate can import `ids`).
"""
