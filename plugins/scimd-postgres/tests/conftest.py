"""Fixtures: one throwaway PostgreSQL cluster per session, one new database per test."""

from __future__ import annotations

import pytest
from scimd_postgres.testing import PostgresCluster, postgres_cluster

__all__ = ["fresh_dsn", "postgres_cluster"]


@pytest.fixture
def fresh_dsn(postgres_cluster: PostgresCluster) -> str:
    """The DSN of a new, empty database (no test sees another's data)."""
    return postgres_cluster.create_database()
