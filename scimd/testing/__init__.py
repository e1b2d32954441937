"""The test suites shipped for plugin authors (see ``docs/testing-backends.md``).

* ``BackendContract`` (``scimd.testing.contract``): the backend contract suite;
* ``QueryPropertyContract`` (``scimd.testing.properties``, needs ``hypothesis``): random
  filters and resources, the backend's query results against the reference evaluator;
  import it from its module;
* ``StateStoreContract`` (``scimd.testing.state``): the state store contract suite.

Subclass them in a test module and override the fixture that builds the object under test::

    from scimd.testing import BackendContract

    class TestMyBackendContract(BackendContract):
        @pytest.fixture
        def backend_factory(self):
            return MyBackendFactory()

Needs ``pytest`` and ``pytest-asyncio`` (``pip install "scimd[dev]"``).
"""

from __future__ import annotations

import pytest

# Plain asserts in the suite get pytest's detailed failure messages, as in test modules.
pytest.register_assert_rewrite(
    "scimd.testing.contract",
    "scimd.testing.capabilities",
    "scimd.testing.properties",
    "scimd.testing.state",
)

from scimd.testing.capabilities import (  # noqa: E402
    DeclaringBackend,
    needs,
    unsupported_filter_reason,
)
from scimd.testing.contract import (  # noqa: E402
    T1,
    T2,
    BackendContract,
    ContractBase,
    CreateGetContract,
    CursorPagingContract,
    DeleteContract,
    ErrorContract,
    FilterContract,
    IndexPagingContract,
    MembershipContract,
    PatchContract,
    ReplaceContract,
    SortContract,
    TenantIsolationContract,
    UniquenessContract,
)
from scimd.testing.extension import CONTRACT_EXTENSION_URN, build_contract_registry  # noqa: E402
from scimd.testing.state import StateStoreContract  # noqa: E402

__all__ = [
    "CONTRACT_EXTENSION_URN",
    "T1",
    "T2",
    "BackendContract",
    "ContractBase",
    "CreateGetContract",
    "CursorPagingContract",
    "DeclaringBackend",
    "DeleteContract",
    "ErrorContract",
    "FilterContract",
    "IndexPagingContract",
    "MembershipContract",
    "PatchContract",
    "ReplaceContract",
    "SortContract",
    "StateStoreContract",
    "TenantIsolationContract",
    "UniquenessContract",
    "build_contract_registry",
    "needs",
    "unsupported_filter_reason",
]
