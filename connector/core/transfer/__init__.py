"""DSP 2025-1 transfer process as pure data and functions (dsp.md §9).

Kept empty on purpose: submodules are imported explicitly (see `negotiation/__init__.py`).
"""
