"""``scimd_postgres.single.SingleValues`` builds ``sv``, ``sv_text`` and the unique value
rows of a resource in one pass. Its definition is the long way it replaced: every row of
``scimd.store.sqlcommon.extract_values`` (the value rows the SQL stores keep), placed in
``sv`` as the layout 10 module doc says. Both are compared here on generated resources of
a schema with every SCIM type (multi-valued sub-attributes, a complex-typed
sub-attribute, unique and caseExact strings, dateTimes inside elements) and on resources
that break it (wrong types, unknown names, ``id``, ``password``, relations, nulls), as
``create`` and ``scimd import`` may be handed them. No database is needed."""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scimd_postgres.backend import _all_defs
from scimd_postgres.single import ANY, SEP, SingleValues, searchable_by_substring

from scimd.schema.loader import load_registry
from scimd.schema.model import AttributeDef, SchemaRegistry
from scimd.store.sqlcommon import IndexRow, Relations, extract_values, path_key

EXT = "urn:example:params:scim:schemas:extension:sv:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _attr(name: str, type_: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "multiValued": False,
        "required": False,
        "caseExact": False,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
        **extra,
    }


def _registry(tmp: Path) -> SchemaRegistry:
    schema = {
        "id": EXT,
        "name": "SvUser",
        "attributes": [
            _attr("score", "integer"),
            _attr("ratio", "decimal", multiValued=True),
            _attr("since", "dateTime"),
            _attr("flag", "boolean"),
            _attr("code", "string", caseExact=True, uniqueness="server"),
            _attr("badge", "string", uniqueness="global"),
            _attr("tags", "string", multiValued=True),
            _attr("secret", "string", returned="never"),
            _attr(
                "spot",
                "complex",
                subAttributes=[
                    _attr("label", "string"),
                    _attr("when", "dateTime"),
                    _attr("levels", "integer", multiValued=True),
                    _attr("odd", "complex", subAttributes=[_attr("deep", "string")]),
                ],
            ),
            _attr(
                "things",
                "complex",
                multiValued=True,
                subAttributes=[
                    _attr("value", "string", uniqueness="server"),
                    _attr("kinds", "string", multiValued=True, caseExact=True),
                    _attr("at", "dateTime"),
                    _attr("on", "boolean"),
                    _attr("hidden", "string", returned="never"),
                ],
            ),
        ],
    }
    types = json.loads(
        (Path(__file__).parents[3] / "scimd/schema/data/resource_types.json").read_text()
    )
    for doc in types:
        if doc.get("id") == "User":
            doc["schemaExtensions"] = [*doc.get("schemaExtensions", []), {"schema": EXT}]
    (tmp / "schema.json").write_text(json.dumps(schema))
    (tmp / "types.json").write_text(json.dumps(types))
    return load_registry(
        schema_files=(tmp / "schema.json",), resource_type_files=(tmp / "types.json",)
    )


def reference(
    rows: list[IndexRow], pid_of: Mapping[str, int]
) -> tuple[dict[str, Any], str, list[tuple[int, IndexRow]]]:
    """``sv``, ``sv_text`` and the unique rows as layout 10 defines them, from the value
    rows (the code ``SingleValues`` replaced)."""
    sv: dict[str, Any] = {}
    texts: list[str] = []
    unique_rows: list[tuple[int, IndexRow]] = []
    for n, row in enumerate(rows):
        defn, _, v_text, v_num, _ = row
        parent: AttributeDef | None = defn.parent
        outer = parent if parent is not None and parent.multi_valued else None
        pid = str(pid_of[path_key(defn)])
        value: Any
        if defn.is_complex:
            value = 1 if v_num == 1 else 0
        elif v_num is not None:
            value = v_num
        else:
            value = v_text
            if v_text:
                if searchable_by_substring(defn):
                    texts.append(v_text)
                if defn.uniqueness != "none":
                    unique_rows.append((n, row))
        if outer is not None:
            element = sv[str(pid_of[path_key(outer)])][-1]
            if defn.multi_valued:
                element.setdefault(pid, []).append(value)
            else:
                element[pid] = value
        elif not defn.multi_valued:
            sv[pid] = value
        elif defn.is_complex:
            sv.setdefault(pid, []).append({ANY: value})
        else:
            sv.setdefault(pid, []).append(value)
    sv_text = SEP + SEP.join(texts) + SEP if texts else ""
    return sv, sv_text, unique_rows


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> SchemaRegistry:
    return _registry(tmp_path_factory.mktemp("sv"))


def _pids(registry: SchemaRegistry) -> dict[str, int]:
    return {k: i for i, k in enumerate(sorted({path_key(d) for d in _all_defs(registry)}), 1)}


def _both(
    registry: SchemaRegistry, rtype_name: str, resource: dict[str, Any], build: SingleValues
) -> None:
    rtype = registry.resource_type(rtype_name)
    assert rtype is not None
    rel = Relations.of(rtype)
    want = reference(extract_values(rtype, resource, rel), build.pid_of)
    got = build(rtype, resource, rel)
    assert got == want
    # the same objects, not merely equal ones (the 409 message names the attribute)
    assert [r[1][0] for r in got[2]] == [r[1][0] for r in want[2]]


CASES: list[tuple[str, dict[str, Any]]] = [
    (
        "User",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE, EXT],
            "id": "never in sv",
            "userName": "Alice@Example.COM",
            "password": "never in sv",
            "name": {"givenName": "Alice", "familyName": "", "nope": "x", "formatted": None},
            "emails": [
                {"value": "A@x.org", "type": "work", "primary": True},
                {"value": "", "type": "home"},
                "not an element",
                {},
                {"primary": "not a boolean"},
            ],
            "groups": [{"value": "g1"}],
            "active": "yes",
            "meta": {"created": "2026-01-02T03:04:05+01:00", "lastModified": "not a date"},
            ENTERPRISE: {"employeeNumber": "E1", "manager": {"value": "m1"}, "x": 1},
            EXT: {
                "score": 3,
                "ratio": [1.5, True, "2", None, 0],
                "since": "2026-05-06T07:08:09.1Z",
                "flag": False,
                "code": "CaSe",
                "badge": "Gold",
                "tags": "not a list",
                "secret": "s",
                "spot": {"label": "L", "when": "bad", "levels": [1, "2", 3], "odd": "o"},
                "things": [
                    {"value": "T1", "kinds": ["A", "a", 5], "at": "2026-01-01T00:00:00Z"},
                    {"value": "", "on": True, "hidden": "h"},
                    {"kinds": "one", "value": "T1"},
                    {"odd": "not a sub"},
                ],
            },
            "unknown": "x",
            "urn:unknown:schema": {"a": 1},
        },
    ),
    ("User", {"name": "not a dict", "emails": {"value": "one@x.org"}, EXT: "not a dict"}),
    ("User", {EXT: {"spot": {}, "things": []}}),
    ("Group", {"displayName": "G", "members": [{"value": "u1"}], "externalId": "E"}),
]


@pytest.mark.parametrize(("rtype", "resource"), CASES)
def test_the_builder_gives_the_rows_of_extract_values_in_place(
    registry: SchemaRegistry, rtype: str, resource: dict[str, Any]
) -> None:
    _both(registry, rtype, resource, SingleValues(_pids(registry)))


def test_the_first_case_reaches_every_shape(registry: SchemaRegistry) -> None:
    """The hand-made case above holds what the comparison must cover (so a builder that
    drops a shape cannot agree by both sides being empty)."""
    users = registry.resource_type("User")
    assert users is not None
    pids = _pids(registry)
    sv, sv_text, unique = SingleValues(pids)(users, CASES[0][1], Relations.of(users))

    def key(path: str) -> str:
        return str(pids[path.lower()])

    ext = EXT + ":"
    assert sv[key(ext + "spot")] == 1 and sv[key(ext + "spot.levels")] == [1, 3]
    assert sv[key(ext + "spot.odd")] == 0
    things = sv[key(ext + "things")]
    assert [t[ANY] for t in things] == [1, 1, 1, 0]
    assert things[0][key(ext + "things.kinds")] == ["A", "a"]
    assert things[0][key(ext + "things.at")] == "2026-01-01T00:00:00.000000Z"
    assert sv[key(ext + "ratio")] == [1.5, 0]
    assert sv[key(ext + "code")] == "CaSe" and sv[key(ext + "badge")] == "gold"
    assert key(ext + "secret") not in sv and key(ext + "tags") in sv
    assert unique[0][0] == 3  # after the three schemas values: extract_values' numbering
    assert {row[2] for _, row in unique} == {"alice@example.com", "CaSe", "gold", "t1"}
    assert f"{SEP}alice{SEP}" in sv_text and "2026" not in sv_text


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from([0.5, -1.25, 1e20]),
    st.sampled_from(["", "a", "A", "Ab", "é", "ß", "x\ty", "2026-01-02T03:04:05Z", "bad"]),
)
_names = st.sampled_from(
    [
        "value", "type", "primary", "display", "givenName", "familyName", "label", "when",
        "levels", "odd", "kinds", "at", "on", "hidden", "nope", "$ref", "Value",
    ]
)  # fmt: skip
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_names, inner, max_size=4),
    max_leaves=8,
)
_ext_body = st.dictionaries(
    st.sampled_from(
        [
            "score",
            "ratio",
            "since",
            "flag",
            "code",
            "badge",
            "tags",
            "secret",
            "spot",
            "things",
            "Things",
            "nope",
        ]
    ),
    _values,
    max_size=6,
)
_top = st.sampled_from(
    [
        "userName", "name", "displayName", "emails", "phoneNumbers", "active", "groups",
        "id", "password", "meta", "externalId", "x509Certificates", "roles", "UserName",
        "unknown", "members", "title",
    ]
)  # fmt: skip
_resources = st.tuples(
    st.dictionaries(_top, _values, max_size=7),
    st.one_of(st.none(), _ext_body, _values),
    st.sampled_from(["User", "Group"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_resources)
def test_the_builder_agrees_on_generated_resources(
    registry: SchemaRegistry, case: tuple[dict[str, Any], Any, str]
) -> None:
    body, ext, rtype = case
    resource = dict(body)
    if ext is not None:
        resource[EXT] = ext
    _both(registry, rtype, resource, SingleValues(_pids(registry)))


def test_a_builder_survives_a_pickle_and_a_full_cache(
    registry: SchemaRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Import workers receive the builder pickled; its caches are bounded (cleared when
    full) without changing an answer."""
    from scimd_postgres import single

    build = pickle.loads(pickle.dumps(SingleValues(_pids(registry))))  # noqa: S301
    monkeypatch.setattr(single, "_CACHE_LIMIT", 2)
    for rtype, resource in CASES * 2:
        _both(registry, rtype, resource, build)
