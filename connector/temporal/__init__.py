"""Temporal client construction and namespace bootstrap."""
