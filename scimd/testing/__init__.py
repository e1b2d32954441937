"""The backend contract test suite, shipped for backend plugin authors.

Subclass ``BackendContract`` in a test module and override its ``backend_factory`` fixture
(see ``docs/testing-backends.md``)::

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
pytest.register_assert_rewrite("scimd.testing.contract", "scimd.testing.capabilities")

from scimd.testing.capabilities import needs, unsupported_filter_reason  # noqa: E402
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

__all__ = [
    "CONTRACT_EXTENSION_URN",
    "T1",
    "T2",
    "BackendContract",
    "ContractBase",
    "CreateGetContract",
    "CursorPagingContract",
    "DeleteContract",
    "ErrorContract",
    "FilterContract",
    "IndexPagingContract",
    "MembershipContract",
    "PatchContract",
    "ReplaceContract",
    "SortContract",
    "TenantIsolationContract",
    "UniquenessContract",
    "build_contract_registry",
    "needs",
    "unsupported_filter_reason",
]
