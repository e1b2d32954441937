"""Run scimd's query property suite against the example backend: random Users and random
filters, results compared with the reference evaluator (see docs/plugins.md)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from scimd_example_backend.plugin import MemoryFactory

from scimd.backend import Backend, BackendEnv
from scimd.testing.properties import QueryPropertyContract


class TestMemoryBackendQueryProperties(QueryPropertyContract):
    property_max_examples = 100  # each example: up to 8 Users, 4 filters, a sort, a walk

    @pytest.fixture
    def backend_factory(self) -> Callable[[BackendEnv], Backend]:
        return MemoryFactory()
