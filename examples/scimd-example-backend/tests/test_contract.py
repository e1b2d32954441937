"""Run scimd's backend contract suite against the example backend: the one test module
every backend plugin should have (see docs/testing-backends.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from scimd_example_backend.plugin import MemoryFactory

from scimd.backend import Backend, BackendEnv
from scimd.testing import BackendContract


class TestMemoryBackendContract(BackendContract):
    @pytest.fixture
    def backend_factory(self) -> Callable[[BackendEnv], Backend]:
        return MemoryFactory()

    @pytest.fixture
    def backend_options(self) -> Mapping[str, Any]:
        return {"max_results": 500}  # the [storage.example-memory] table; a new store each test
