"""The query property suite (``scimd.testing.properties``) on a real PostgreSQL: the
``postgres`` backend's filter, sort and keyset pushdown (``scimd_postgres.compiler``) agrees
with the reference evaluator (``scimd.query.evaluate.matches``) and order
(``scimd.query.sort.sort_key``) on random Users and random filters (and/or/not, value
paths, pr, null, every operator on every attribute type). Each example runs in a new
tenant of one migrated database."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from scimd_postgres.plugin import PostgresFactory

from scimd.backend import Backend, BackendEnv
from scimd.testing.properties import QueryPropertyContract


class TestPostgresQueryProperties(QueryPropertyContract):
    property_max_examples = 300

    @pytest.fixture
    def backend_factory(self) -> Callable[[BackendEnv], Backend]:
        return PostgresFactory()

    @pytest.fixture
    def backend_options(self, pg_dsn: str) -> Mapping[str, Any]:
        return {"dsn": pg_dsn, "max_pool": 2}
