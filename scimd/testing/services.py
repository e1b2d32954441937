"""The project's rule for tests that need an external service (PostgreSQL, slapd, Samba,
SimpleSAMLphp, an optional plugin): when it is missing, the test FAILS under ``CI=true``
(CI installs every service, so a missing one is a broken build, never a silent skip) and is
skipped with a reason naming what to install elsewhere (so ``make test`` still passes on a
machine with only Python; ``pytest -ra`` lists the reasons)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["in_ci", "service_missing"]


def in_ci() -> bool:
    """Whether the tests run in CI (``CI`` set to 1/true/yes, as CI systems do)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def service_missing(message: str) -> NoReturn:
    """Stop the current test (or fixture) because a service it needs is missing: a failure
    in CI, a skip with ``message`` elsewhere."""
    if in_ci():
        pytest.fail(f"required in CI: {message}", pytrace=False)
    pytest.skip(message)
