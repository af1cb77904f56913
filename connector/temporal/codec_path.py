"""Where the control plane serves the codec endpoint for the Temporal UI (api/codec.py).

A module of its own: `connector up` passes the URL to the embedded Temporal server before it
loads the Temporal SDK, which `connector.temporal.codec` imports (decision 0026).
"""

from __future__ import annotations

from typing import Final

__all__ = ["ENDPOINT_PATH"]

ENDPOINT_PATH: Final = "/management/codec"
