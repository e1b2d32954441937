"""The backend contract suite (``scimd.testing``) against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from scimd_postgres.plugin import PostgresFactory

from scimd.backend import Backend, BackendEnv
from scimd.testing import BackendContract


class TestPostgresContract(BackendContract):
    @pytest.fixture
    def backend_factory(self) -> Callable[[BackendEnv], Backend]:
        return PostgresFactory()

    @pytest.fixture
    def backend_options(self, fresh_dsn: str) -> Mapping[str, Any]:
        return {"dsn": fresh_dsn, "migrate_on_start": True, "max_pool": 8}
