"""Layout 10 (migration 0010, ``scimd_postgres.single``): the filterable values of a
resource are one jsonb object on its row (``sv``, keyed by path id, shaped like the
resource) with their substring-searchable strings in ``sv_text``; value rows remain only
for the unique index. What RFC 7644 section 3.4.2.2 asks of a filter holds (every answer
is checked against ``scimd.query.evaluate``), and a write replaces the values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson

from scimd.backend import OpContext, Query, SortSpec
from scimd.query.ast import Present
from scimd.query.evaluate import canonical_datetime
from scimd.query.parse import parse_attr_path, parse_filter
from scimd.schema.model import ResourceType, SchemaRegistry
from scimd.schema.validate import normalize_resource
from scimd.store.sql import path_key

from ._backend import answers, open_backend

T = OpContext("default", "test", "r1")
URN = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _bodies() -> list[dict[str, Any]]:
    return [
        {
            "schemas": [URN, ENTERPRISE],
            "userName": "Alice@Example.com",
            "name": {"givenName": "Alice", "familyName": "Smith"},
            "displayName": "Alice Smith",
            "active": True,
            "emails": [{"value": "alice@example.com", "type": "work", "primary": True}],
            ENTERPRISE: {"employeeNumber": "E-1", "manager": {"value": "m-1"}},
        },
        {
            "schemas": [URN],
            "userName": "bob",
            "name": {},
            "displayName": "Bob\tTab",
            "active": False,
            "title": "",
        },
        {
            "schemas": [URN],
            "userName": "carol",
            "nickName": "Caz",
            "externalId": "X-9",
            "emails": [
                {"value": "c@x.org", "type": "home"},
                {"value": "Carol@Example.org", "primary": True},
            ],
        },
    ]


FILTERS = [
    'userName eq "ALICE@example.COM"',
    'userName sw "al"',
    'userName ew "OB"',
    'userName co "lic"',
    'userName gt "bob"',
    'displayName co "b\tt"',
    'displayName sw "Alice S"',
    'displayName ew "smith"',
    "active eq true",
    "active eq false",
    "not (active eq true)",
    "active pr",
    "name pr",
    "not (name pr)",
    'name[givenName eq "alice" and familyName sw "sm"]',
    'name[not (givenName eq "x")]',
    "name.familyName pr",
    "title pr",
    'title eq ""',
    'externalId eq "X-9"',
    'externalId eq "x-9"',
    'nickName ne "caz"',
    f'{ENTERPRISE}:employeeNumber eq "E-1"',
    f'{ENTERPRISE}:manager.value eq "m-1"',
    f"{ENTERPRISE}:manager pr",
    'meta.lastModified gt "2000-01-01T00:00:00Z"',
    'meta.created lt "2000-01-01T00:00:00Z"',
    'meta.resourceType eq "User"',
    'emails[type eq "work"].value eq "alice@example.com"',
    "emails pr",
    "not (emails pr)",
    'emails.value sw "CAROL"',
    'emails.value ew ".org"',
    'emails.value gt "b"',
    'emails[primary eq true and value co "ro"]',
    'emails[not (type eq "home")]',
    'emails[type eq "home" and value eq "C@X.org"]',
    'emails[type eq "home" and value eq "carol@example.org"]',
    'emails[value eq "carol@example.org" and primary eq true]',
    'emails.type eq "home"',
    f'schemas eq "{ENTERPRISE}"',
    'userName eq "bob" or emails.value co "alice"',
]


async def test_single_values_are_stored_on_the_resource_and_filter_as_the_rfc_says(
    pg_dsn: str, registry: SchemaRegistry, users: ResourceType, tmp_path: Path
) -> None:
    backend = await open_backend(pg_dsn, registry, tmp_path)
    conn = await asyncpg.connect(pg_dsn)
    try:
        made = [await backend.create(T, users, normalize_resource(users, b)) for b in _bodies()]
        paths = {
            key: str(pid) for pid, key in await conn.fetch("SELECT id, key FROM scimd_attr_paths")
        }
        sv_raw, sv_text = await conn.fetchrow(
            "SELECT sv::text, sv_text FROM scimd_resources WHERE id = $1", made[0]["id"]
        )
        sv = orjson.loads(sv_raw)

        def key_of(path: str) -> str:
            node = parse_filter(f"{path} pr", users)
            assert isinstance(node, Present) and node.path.defn is not None
            return paths[path_key(node.path.defn)]

        def at(path: str) -> Any:
            return sv.get(key_of(path))

        assert at("userName") == "alice@example.com"  # casefolded (caseExact false)
        assert at("name") == 1 and at("name.givenName") == "alice"
        assert at("active") == 1
        assert at("meta.created") == canonical_datetime(made[0]["meta"]["created"])
        assert at(f"{ENTERPRISE}:manager.value") == "m-1"  # caseExact
        # a multi-valued complex attribute: its elements, each with its marker (ANY)
        assert at("emails") == [
            {
                "_": 1,
                key_of("emails.value"): "alice@example.com",
                key_of("emails.type"): "work",
                key_of("emails.primary"): 1,
            }
        ]
        assert at("schemas") == [URN.lower(), ENTERPRISE.lower()]  # multi-valued simple
        assert at("emails.value") is None  # no key of its own: inside the elements
        assert "\x1falice smith\x1f" in sv_text and "\x1falice@example.com\x1f" in sv_text
        assert made[0]["meta"]["created"][:4] not in sv_text  # no dateTimes
        bob = orjson.loads(
            await conn.fetchval("SELECT sv::text FROM scimd_resources WHERE id = $1", made[1]["id"])
        )
        assert bob[key_of("active")] == 0
        # value rows: userName, for the unique index only
        rows = {
            key
            for (key,) in await conn.fetch(
                "SELECT p.key FROM scimd_attr_values a JOIN scimd_attr_paths p ON p.id = a.path"
                " WHERE a.pk = (SELECT pk FROM scimd_resources WHERE id = $1)",
                made[0]["id"],
            )
        }
        assert rows == {f"{URN.lower()}:username"}
        got = await answers(backend, T, users, FILTERS)
        assert got['userName sw "al"'] == {"Alice@Example.com"}
        assert got['displayName co "b\tt"'] == {"bob"}
        assert got["not (name pr)"] == {"bob", "carol"}
        assert got['name[not (givenName eq "x")]'] == {"Alice@Example.com"}  # {} is dropped
        assert got['title eq ""'] == {"bob"} and got["title pr"] == set()
        assert got['externalId eq "x-9"'] == set()  # externalId is caseExact
        assert got['nickName ne "caz"'] == {"Alice@Example.com", "bob"}

        assert got['emails[primary eq true and value co "ro"]'] == {"carol"}
        assert got['emails.value gt "b"'] == {"carol"}  # "c@x.org", not the primary
        assert got['emails[type eq "home" and value eq "C@X.org"]'] == {"carol"}
        # one element must hold both: carol's home email is another one
        assert got['emails[type eq "home" and value eq "carol@example.org"]'] == set()
        assert got['emails[value eq "carol@example.org" and primary eq true]'] == {"carol"}

        async def order(attr: str) -> list[str]:
            spec = SortSpec(parse_attr_path(attr, users))
            page = await backend.query(T, users, Query(sort=spec, count=100))
            return [r["userName"] for r in page.resources]

        # sorted by a single value, and by a multi-valued one (its primary element's
        # value): nulls last, ties by id
        assert await order("displayName") == ["Alice@Example.com", "bob", "carol"]
        assert await order("emails.value") == ["Alice@Example.com", "carol", "bob"]
        # carol's primary element has no type: a null key, after "work", as bob's
        by_type = await order("emails.type")
        assert by_type[0] == "Alice@Example.com" and set(by_type[1:]) == {"bob", "carol"}

        # a write replaces the single values: the old ones are not found any more
        changed = dict(_bodies()[0], displayName="Zed", active=False, name={"givenName": "Z"})
        await backend.replace(
            T, users, made[0]["id"], normalize_resource(users, changed), if_match=None
        )
        got = await answers(backend, T, users, FILTERS)
        assert got['displayName sw "Alice S"'] == set()
        assert got["active eq true"] == set()
        assert got['name[givenName eq "alice" and familyName sw "sm"]'] == set()
    finally:
        await conn.close()
        await backend.aclose()
