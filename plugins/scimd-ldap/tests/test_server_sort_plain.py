"""The same lists on a slapd *without* the sssvlv overlay (``plain_slapd_server``): the
root DSE offers no sort/VLV control, so the bridge sorts and pages in memory over at most
``max_scan`` entries - the same answers within the limit, 400 tooMany naming the limit
and the missing overlay beyond it."""

from __future__ import annotations

from typing import Any

import pytest
from scimd_ldap.backend import SORT_CONTROL, VLV_CONTROL, LdapBackend
from scimd_ldap.testing import SlapdServer

from tests._http_helpers import Scim
from tests._lists import NAMES, expected, seed, walk


@pytest.fixture
def slapd_server(plain_slapd_server: SlapdServer) -> SlapdServer:
    """This module's tests (and ``fresh_base``, ``ldap_options``) use the plain slapd."""
    return plain_slapd_server


@pytest.fixture
def ldap_options(ldap_options: dict[str, Any]) -> dict[str, Any]:
    return {**ldap_options, "max_scan": len(NAMES)}


async def test_root_dse_offers_no_sort_nor_vlv(scim: Scim) -> None:
    backend = scim.runtime.backend
    assert isinstance(backend, LdapBackend)
    controls, _ = await backend._features()
    assert not {SORT_CONTROL, VLV_CONTROL} & controls


@pytest.mark.parametrize("attr", [None, "userName", "displayName"])
@pytest.mark.parametrize("order", ["ascending", "descending"])
async def test_in_memory_pages_follow_the_reference_order(
    scim: Scim, attr: str | None, order: str
) -> None:
    users = await seed(scim)
    query = f"sortBy={attr}&sortOrder={order}" if attr else f"sortOrder={order}"
    got = await walk(scim, query, 4, len(NAMES))
    assert got == expected(users, attr, attr is not None and order == "descending")


async def test_beyond_max_scan_is_too_many_with_the_reason(scim: Scim) -> None:
    await seed(scim)
    await scim.create_user("juliett")  # one more than max_scan
    status, doc = await scim.call("GET", "/Users?sortBy=userName&count=2")
    assert status == 400, doc
    assert doc["scimType"] == "tooMany"
    assert "storage.ldap.max_scan" in doc["detail"]
    assert "sssvlv" in doc["detail"]
