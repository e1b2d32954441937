"""Lists sorted and paged by the directory: RFC 2891 server-side sort + VLV by offset on a
slapd with the sssvlv overlay (``slapd_server``). ``max_scan`` is set below the corpus
size, so a list that fell back to reading the container would be answered 400 tooMany:
these pass only when the directory did the sorting and the cutting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scimd_ldap.backend import SORT_CONTROL, VLV_CONTROL, LdapBackend

from scimd.backend import BackendEnv
from tests._http_helpers import MakeScim, Scim
from tests._lists import NAMES, expected, seed, walk


@pytest.fixture
def ldap_options(ldap_options: dict[str, Any]) -> dict[str, Any]:
    return {**ldap_options, "max_scan": 4}


async def test_root_dse_advertises_sort_and_vlv(scim: Scim) -> None:
    backend = scim.runtime.backend
    assert isinstance(backend, LdapBackend)
    controls, _ = await backend._features()
    assert {SORT_CONTROL, VLV_CONTROL} <= controls


async def test_unsorted_pages_are_in_id_order_with_exact_total(scim: Scim) -> None:
    users = await seed(scim)
    assert await walk(scim, "", 4, len(NAMES)) == expected(users, None)


@pytest.mark.parametrize("attr", ["userName", "displayName", "id"])
@pytest.mark.parametrize("order", ["ascending", "descending"])
async def test_sorted_pages_follow_the_reference_order(scim: Scim, attr: str, order: str) -> None:
    users = await seed(scim)
    got = await walk(scim, f"sortBy={attr}&sortOrder={order}", 2, len(NAMES))
    assert got == expected(users, attr, order == "descending")


async def test_descending_page_across_the_valueless_boundary(scim: Scim) -> None:
    """Users without displayName come last in a descending sort too (RFC 2891 would put
    them first): one page holding the last valued users and the first valueless ones."""
    users = await seed(scim)
    order = expected(users, "displayName", descending=True)
    status, doc = await scim.call(
        "GET", "/Users?sortBy=displayName&sortOrder=descending&startIndex=5&count=3"
    )
    assert status == 200, doc
    assert [r["id"] for r in doc["Resources"]] == order[4:7]
    assert [bool(r.get("displayName")) for r in doc["Resources"]] == [True, True, False]


async def test_start_index_past_the_end_and_count_zero(scim: Scim) -> None:
    await seed(scim)
    status, doc = await scim.call("GET", "/Users?startIndex=50&count=3")
    assert status == 200, doc
    assert doc["totalResults"] == len(NAMES)
    assert doc.get("Resources", []) == []
    status, doc = await scim.call("GET", "/Users?count=0")
    assert status == 200, doc
    assert doc["totalResults"] == len(NAMES)
    assert doc.get("Resources", []) == []


async def test_groups_are_sorted_by_the_directory(scim: Scim) -> None:
    names = ["ops", "Admins", "dev", "Billing", "eng"]
    made = {(await scim.create_group(n))["id"]: n for n in names}
    status, doc = await scim.call("GET", "/Groups?sortBy=displayName&startIndex=2&count=3")
    assert status == 200, doc
    assert doc["totalResults"] == len(names)
    assert [made[r["id"]] for r in doc["Resources"]] == ["Billing", "dev", "eng"]


async def test_users_listed_by_vlv_carry_their_groups(scim: Scim) -> None:
    users = await seed(scim)
    group = await scim.create_group("team", [users[0]["id"]])
    # userName order: Alpha, bravo, charlie, delta (= users[0]), ...
    status, doc = await scim.call("GET", "/Users?sortBy=userName&startIndex=4&count=1")
    assert status == 200, doc
    (got,) = doc["Resources"]
    assert got["id"] == users[0]["id"]
    assert [(g["value"], g["type"]) for g in got["groups"]] == [(group["id"], "direct")]


async def test_filtered_list_is_bounded_by_max_scan_with_a_clear_error(scim: Scim) -> None:
    """Filters are re-checked by the bridge, so a filter matching more than max_scan
    entries is refused, saying why."""
    await seed(scim)
    status, doc = await scim.call("GET", '/Users?filter=userName co "o"')
    assert status == 400, doc
    assert doc["scimType"] == "tooMany"
    assert "max_scan" in doc["detail"]


async def test_server_side_sort_off_lists_in_memory_within_max_scan(
    make_scim: MakeScim, ldap_options: dict[str, Any]
) -> None:
    scim = await make_scim()
    await seed(scim)
    backend = scim.runtime.backend
    assert isinstance(backend, LdapBackend)
    off = LdapBackend(
        BackendEnv(
            options={**ldap_options, "server_side_sort": "off"},
            registry=scim.runtime.registry,
            base_dir=Path("."),
        )
    )
    assert off.server_sort == "off"
    backend.server_sort = off.server_sort  # the same app, now configured "off"
    status, doc = await scim.call("GET", "/Users?count=2")
    assert status == 400, doc
    assert doc["scimType"] == "tooMany"
    assert "sssvlv" in doc["detail"] and "max_scan" in doc["detail"]


def test_server_side_sort_option_is_checked(ldap_options: dict[str, Any]) -> None:
    from scimd import errors
    from scimd.schema.model import SchemaRegistry

    env = BackendEnv(
        options={**ldap_options, "server_side_sort": "always"},
        registry=SchemaRegistry.__new__(SchemaRegistry),
        base_dir=Path("."),
    )
    with pytest.raises(errors.ServiceUnavailable, match="server_side_sort"):
        LdapBackend(env)
