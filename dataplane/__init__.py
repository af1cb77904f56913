"""The data plane: a separate process that moves bytes, near the data."""
