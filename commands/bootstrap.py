"""`connector temporal-bootstrap`: the namespace, its retention and search attributes, then the
backup Schedule (a workflow start, hence here and not in `connector`: decision 0029)."""

from __future__ import annotations

from collections.abc import Callable

from commands.backup import ensure_backup_schedule
from connector.settings import Settings
from connector.temporal.client import bootstrap, connect, is_temporal_cloud


async def temporal_bootstrap(settings: Settings, out: Callable[[str], None] = print) -> int:
    """Register what the workers need on the Temporal server; says each change on `out`."""
    # Self-hosted: through `default`, as our namespace may not exist yet. Temporal Cloud routes
    # every call by the client's namespace and has no `default`.
    cloud = is_temporal_cloud(settings.temporal)
    client = await connect(settings) if cloud else await connect(settings, namespace="default")
    for change in await bootstrap(client, settings.temporal) or ["nothing to change"]:
        out(change)
    out(await ensure_backup_schedule(await connect(settings), settings))
    return 0
