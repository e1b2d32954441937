"""Fixtures: one throwaway slapd per session, one new base DN per test."""

from __future__ import annotations

import pytest
from scimd_ldap.testing import SlapdServer, slapd_server

__all__ = ["fresh_base", "slapd_server"]


@pytest.fixture
def fresh_base(slapd_server: SlapdServer) -> str:
    """The DN of a new, empty organizational unit (no test sees another's data)."""
    return slapd_server.fresh_base()
