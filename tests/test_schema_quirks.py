"""The quirk registry: every tolerated deviation is named, described and counted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scimd import quirks

#: Names other modules (PATCH engine, HTTP layer) rely on being registered.
EXPECTED = {
    "boolean_as_string",
    "null_value",
    "single_value_for_multi_valued",
    "unknown_schema_urn",
    "attribute_name_case",
    "readonly_attribute_ignored",
    "patch_op_case",
    "patch_no_path_dotted_keys",
    "patch_readonly_id_equal",
    "patch_filtered_add_creates",
    "patch_members_remove_by_value",
    "patch_value_json_text",
    "patch_manager_string",
    "patch_extra_keys",
    "no_content_type",
    "lowercase_path",
    "member_ref_null",
}


@pytest.fixture(autouse=True)
def _fresh_quirks() -> Iterator[None]:
    quirks.reset()
    yield
    quirks.reset()


def test_registry_names_and_descriptions() -> None:
    assert set(quirks.QUIRKS) >= EXPECTED
    for name, description in quirks.QUIRKS.items():
        assert name == name.lower() and " " not in name
        assert description.strip() and "\n" not in description


def test_record_snapshot_reset() -> None:
    assert quirks.snapshot() == {}
    quirks.record("null_value")
    quirks.record("null_value")
    quirks.record("patch_op_case")
    snap = quirks.snapshot()
    assert snap == {"null_value": 2, "patch_op_case": 1}
    snap["null_value"] = 99  # a copy
    assert quirks.snapshot()["null_value"] == 2
    quirks.reset()
    assert quirks.snapshot() == {}


def test_unregistered_name_is_refused() -> None:
    with pytest.raises(KeyError, match="unregistered quirk"):
        quirks.record("made_up_quirk")
    assert quirks.snapshot() == {}
