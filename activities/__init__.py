"""Activities: thin, idempotent I/O adapters called by workflows by name."""
