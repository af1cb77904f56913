"""Postgres stores (asyncpg, plain SQL): projections and the operator's write model."""
