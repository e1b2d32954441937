"""The backend contract suite (``scimd.testing``) run against the embedded SQLite store."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from scimd.backend import Backend, BackendEnv
from scimd.store.plugin import EmbeddedFactory
from scimd.testing import BackendContract

pytest_plugins = ["pytester"]


class TestEmbeddedContract(BackendContract):
    """The embedded store declares every capability, so nothing here may skip."""

    @pytest.fixture
    def backend_factory(self) -> Callable[[BackendEnv], Backend]:
        return EmbeddedFactory()

    @pytest.fixture
    def backend_options(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"path": str(tmp_path / "s.db")}


# -- the capability gate itself ------------------------------------------------------------

_REDUCED_BACKEND_MODULE = '''
import dataclasses

import pytest

from scimd.backend import ALL_FILTER_OPS, Capabilities
from scimd.store.plugin import EmbeddedFactory
from scimd.testing import BackendContract


class Reduced:
    """The embedded store, declaring fewer capabilities than it has."""

    def __init__(self, inner):
        self._inner = inner
        self.capabilities = dataclasses.replace(
            inner.capabilities,
            etag=False,
            native_patch=False,
            cursor=False,
            multi_tenant=False,
            value_path=False,
            filter_ops=ALL_FILTER_OPS - {"co"},
            logic=frozenset({"and", "or"}),
        )
        for name in ("start", "aclose", "create", "get", "replace", "patch", "delete", "query"):
            setattr(self, name, getattr(inner, name))


class TestReducedContract(BackendContract):
    @pytest.fixture
    def backend_factory(self):
        return lambda env: Reduced(EmbeddedFactory()(env))

    @pytest.fixture
    def backend_options(self, tmp_path):
        return {"path": str(tmp_path / "s.db")}
'''


def test_declared_absent_capabilities_skip_with_named_reasons(pytester: pytest.Pytester) -> None:
    """A backend declaring capabilities absent gets those tests skipped, each skip naming
    the capability, and every other contract test still runs and passes."""
    pytester.makepyfile(test_reduced=_REDUCED_BACKEND_MODULE)
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    result = pytester.runpytest_inprocess("-ra", "-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes["passed"] > 100 and outcomes["skipped"] > 30
    skipped = [line for line in result.outlines if line.startswith("SKIPPED")]
    text = "\n".join(skipped)
    for capability in ("'etag'", "'native_patch'", "'cursor'", "'multi_tenant'", "'value_path'"):
        assert f"backend capability {capability} is declared absent" in text, capability
    assert "backend capability 'filter_ops' declares ['co'] absent" in text
    assert "backend capability 'logic' declares ['not'] absent" in text
    # Every skip is a capability skip.
    assert all("backend capabilit" in line for line in skipped), text
