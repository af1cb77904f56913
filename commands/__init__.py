"""Operator commands that start or schedule workflows (`connector backup|restore`,
`connector temporal-bootstrap`): above the workflow contracts, below the worker composition
root (decision 0029)."""
