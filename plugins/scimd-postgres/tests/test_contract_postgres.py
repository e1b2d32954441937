"""The backend contract suites (``scimd.testing``) against a real PostgreSQL: the whole
``BackendContract`` and the derived unique keys of ``scimd.testing.unique`` (the normalised
primary email, enforced by PostgreSQL; two instances there are two backends with their own
pools on one database)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from scimd_postgres.plugin import PostgresFactory

from scimd.backend import Backend, BackendEnv
from scimd.testing import BackendContract
from scimd.testing.unique import UniqueKeysContract


class _OnPostgres:
    @pytest.fixture
    def backend_factory(self) -> Callable[[BackendEnv], Backend]:
        return PostgresFactory()

    @pytest.fixture
    def backend_options(self, fresh_dsn: str) -> Mapping[str, Any]:
        return {"dsn": fresh_dsn, "migrate_on_start": True, "max_pool": 8}


class TestPostgresContract(_OnPostgres, BackendContract):
    pass


class TestPostgresUniqueKeys(_OnPostgres, UniqueKeysContract):
    pass
