"""The lightweight dataspace connector."""

__version__ = "0.1.0"
