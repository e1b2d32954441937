"""The AD scenarios live against a throwaway Samba AD DC (``samba_server``), recorded now and
checked by the same tests as the committed recordings (``test_ad.py``). The ``ranges``
recording is not redone here (it only records Samba's answers to explicit range requests,
which the bridge's code does not change; 1,600 entries take Samba about half a minute)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from scimd_ldap.adtesting import SambaServer, samba_server

from tests import _ad_scenarios
from tests.test_ad import (
    registry,
    test_active_is_user_account_control_accountdisable,
    test_group_members_are_value_level_modifies,
    test_password_is_unicode_pwd_over_ldaps,
    test_recorded_ad_errors_map_to_scim_errors,
    test_user_lifecycle_on_recorded_ad,
)

__all__ = [
    "registry",
    "samba_server",
    "test_active_is_user_account_control_accountdisable",
    "test_group_members_are_value_level_modifies",
    "test_password_is_unicode_pwd_over_ldaps",
    "test_recorded_ad_errors_map_to_scim_errors",
    "test_user_lifecycle_on_recorded_ad",
]


@pytest.fixture(scope="module")
def fixtures_dir(samba_server: SambaServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Recordings of the bridge's scenarios made against ``samba_server`` now."""
    directory = tmp_path_factory.mktemp("ad-live")
    for name in _ad_scenarios.SCENARIOS:
        asyncio.run(_ad_scenarios.record(samba_server, name, directory))
    return directory
