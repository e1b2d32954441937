"""In-memory sort order (RFC 7644 3.4.2.3): sort values, nulls last, ties by id."""

from __future__ import annotations

from typing import Any

from scimd.backend import Keyset, SortSpec
from scimd.query.parse import parse_attr_path
from scimd.query.sort import SortKey, keyset_key, sort_key, sort_value
from tests._query_helpers import ENTERPRISE, enterprise_user, full_user, user_type


def path(text: str) -> Any:
    return parse_attr_path(text, user_type())


def test_singular_and_sub_attributes() -> None:
    user = full_user()
    assert sort_value(user, path("userName")) == "bjensen@example.com"
    assert sort_value(user, path("name.familyName")) == "jensen"  # casefolded
    assert sort_value(user, path("externalId")) == "701984"
    assert sort_value(user, path("id")) == "2819c223-7f76-453a-919d-413861904646"
    assert sort_value(user, path("active")) is True
    assert sort_value(enterprise_user(), path(f"{ENTERPRISE}:employeeNumber")) == "701984"
    assert sort_value(user, path(f"{ENTERPRISE}:employeeNumber")) is None


def test_case_exact_strings_keep_case() -> None:
    user = {**full_user(), "externalId": "ABC"}
    assert sort_value(user, path("externalId")) == "ABC"
    assert sort_value({**full_user(), "userName": "BJensen"}, path("userName")) == "bjensen"


def test_multi_valued_uses_primary_then_first() -> None:
    user = full_user()
    assert sort_value(user, path("emails")) == "bjensen@example.com"  # primary
    user["emails"] = [{"value": "Z@x"}, {"value": "a@x", "primary": True}]
    assert sort_value(user, path("emails.value")) == "a@x"
    user["emails"] = [{"value": "Z@x"}, {"value": "a@x"}]
    assert sort_value(user, path("emails")) == "z@x"  # first
    assert sort_value(user, path("phoneNumbers.type")) == "work"


def test_datetimes_sort_as_instants() -> None:
    a = {**full_user(), "meta": {"lastModified": "2011-05-13T06:42:34+02:00"}}
    b = {**full_user(), "meta": {"lastModified": "2011-05-13T04:42:35Z"}}
    va, vb = sort_value(a, path("meta.lastModified")), sort_value(b, path("meta.lastModified"))
    assert va == "2011-05-13T04:42:34.000000Z"
    assert isinstance(va, str) and isinstance(vb, str) and va < vb


def test_absent_and_empty_are_null() -> None:
    assert sort_value({"id": "1"}, path("title")) is None
    assert sort_value({"id": "1", "title": ""}, path("title")) is None
    assert sort_value({"id": "1", "emails": []}, path("emails")) is None
    assert sort_value({"id": "1", "name": "oops"}, path("name.givenName")) is None


def _ids(resources: list[dict[str, Any]], spec: SortSpec | None) -> list[str]:
    return [r["id"] for r in sorted(resources, key=lambda r: sort_key(r, spec))]


RESOURCES = [
    {"id": "5", "title": "b"},
    {"id": "1"},
    {"id": "3", "title": "A"},
    {"id": "4", "title": "b"},
    {"id": "2", "title": ""},
    {"id": "6", "title": "c"},
]


def test_ascending_nulls_last_ties_by_id() -> None:
    spec = SortSpec(path("title"))
    assert _ids(RESOURCES, spec) == ["3", "4", "5", "6", "1", "2"]


def test_descending_is_reverse_with_nulls_still_last() -> None:
    spec = SortSpec(path("title"), descending=True)
    assert _ids(RESOURCES, spec) == ["6", "5", "4", "3", "2", "1"]


def test_no_spec_orders_by_id() -> None:
    assert _ids(RESOURCES, None) == ["1", "2", "3", "4", "5", "6"]


def test_keyset_positions() -> None:
    spec = SortSpec(path("title"))
    ordered = sorted(RESOURCES, key=lambda r: sort_key(r, spec))
    # Every resource after the 3rd, by keyset, is exactly the rest of the order.
    third = ordered[2]
    ks = Keyset(sort_value(third, spec.path), third["id"])
    after = [r["id"] for r in ordered if sort_key(r, spec) > keyset_key(ks, spec)]
    assert after == [r["id"] for r in ordered[3:]]
    # a keyset in the null group
    ks_null = Keyset(None, "1")
    assert [r["id"] for r in ordered if sort_key(r, spec) > keyset_key(ks_null, spec)] == ["2"]


def test_sort_key_is_a_total_order() -> None:
    keys = [SortKey(v, i) for v in (None, "a", "b", 1, 2.5, True) for i in ("x", "y")]
    for a in keys:
        assert not a < a
        for b in keys:
            assert (a < b) + (b < a) + (a == b) == 1
            assert (a <= b) == (not b < a)
