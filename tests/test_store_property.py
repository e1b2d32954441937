"""The query property suite (``scimd.testing.properties``) on the embedded store: its SQL
filter, sort and keyset compiler agrees with the reference evaluator
(``scimd.query.evaluate.matches``) and order (``scimd.query.sort.sort_key``) on random Users
and random filters. Run twice: declaring every capability (everything pushed down), and
declaring fewer than it has (residual planning, cursor-only collection, no sort)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from scimd.backend import ALL_FILTER_OPS, Backend, BackendEnv
from scimd.store.plugin import EmbeddedFactory
from scimd.testing.capabilities import DeclaringBackend
from scimd.testing.extension import CONTRACT_EXTENSION_URN
from scimd.testing.properties import QueryPropertyContract


class TestEmbeddedQueryProperties(QueryPropertyContract):
    property_max_examples = 300

    @pytest.fixture
    def backend_factory(self) -> Callable[[BackendEnv], Backend]:
        return EmbeddedFactory()

    @pytest.fixture
    def backend_options(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"path": str(tmp_path / "s.db")}


def _reduced(env: BackendEnv) -> Backend:
    return DeclaringBackend(
        EmbeddedFactory()(env),
        filter_ops=ALL_FILTER_OPS - {"co", "gt", "pr"},
        logic=frozenset({"and", "or"}),
        value_path=False,
        filterable=frozenset(
            {"username", "title", "active", "emails.value", f"{CONTRACT_EXTENSION_URN}:score"}
        ),
        sort=False,
        index_paging=False,
        multi_tenant=False,
    )


class TestReducedCapabilitiesQueryProperties(QueryPropertyContract):
    """The embedded store declaring fewer capabilities than it has: the generated filters
    mix claimed and unclaimed parts, the pushed part must still be exact."""

    property_max_examples = 100

    @pytest.fixture
    def backend_factory(self) -> Callable[[BackendEnv], Backend]:
        return _reduced

    @pytest.fixture
    def backend_options(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"path": str(tmp_path / "s.db")}
