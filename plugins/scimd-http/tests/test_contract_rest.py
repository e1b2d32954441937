"""The backend contract suite (``scimd.testing``) through the ``rest`` backend, with the
shipped mapping (conf/rest/members-api.toml), against the fake members API served on
loopback (``scimd_http.testing.MembersAPI``). Capability-aware: the API has no sort,
cursor, conditional writes or native PATCH, and one account is one tenant."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from scimd_http.plugin import RestFactory
from scimd_http.testing import MembersAPI

from scimd.backend import Backend, BackendEnv
from scimd.testing import BackendContract
from tests.conftest import MAPPING


class TestRestContract(BackendContract):
    @pytest.fixture
    def backend_factory(self) -> Callable[[BackendEnv], Backend]:
        return RestFactory()

    @pytest.fixture
    def backend_options(self, members_api: MembersAPI) -> Mapping[str, Any]:
        return {
            "url": members_api.base,
            "token": members_api.token,
            "mapping": str(MAPPING),
            "tenant": "t1",
            "timeout": 30.0,
        }
