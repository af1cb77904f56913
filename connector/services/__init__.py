"""Services above the stores that more than one process uses: the catalog and its cache,
the maintenance flag and reconciliation."""
