"""The backend contract suite (``scimd.testing``) through the ``scim-upstream`` backend
against a real upstream scimd process."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from scimd_http.plugin import ScimUpstreamFactory

from scimd.backend import Backend, BackendEnv
from scimd.testing import BackendContract
from tests.conftest import Upstream, UpstreamTenant


class TestScimUpstreamContract(BackendContract):
    @pytest.fixture
    def backend_factory(self) -> Callable[[BackendEnv], Backend]:
        return ScimUpstreamFactory()

    @pytest.fixture
    def backend_options(
        self, upstream: Upstream, upstream_tenant: UpstreamTenant
    ) -> Mapping[str, Any]:
        return {
            "url": upstream.base_url,
            "token": upstream_tenant.token,
            "tenant": "t1",
            "timeout": 30.0,
        }
