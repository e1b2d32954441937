"""The backend contract suite (``scimd.testing``) against a real slapd."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from scimd_ldap.plugin import LdapFactory
from scimd_ldap.testing import ROOT_DN, ROOT_PASSWORD, SlapdServer

from scimd.backend import Backend, BackendEnv
from scimd.testing import BackendContract


class TestLdapContract(BackendContract):
    @pytest.fixture
    def backend_factory(self) -> Callable[[BackendEnv], Backend]:
        return LdapFactory()

    @pytest.fixture
    def backend_options(self, slapd_server: SlapdServer, fresh_base: str) -> Mapping[str, Any]:
        return {
            "url": slapd_server.url,
            "bind_dn": ROOT_DN,
            "bind_password": ROOT_PASSWORD,
            "base_dn": fresh_base,
            "multi_tenant": True,
            "pool_size": 8,
        }
