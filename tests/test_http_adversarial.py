"""Adversarial input over real HTTP never yields a 500 (issue 2 item 5, STYLE "never a 500").

Hypothesis throws random requests at a running app on the real embedded store: random JSON
values as POST/PUT/PATCH bodies (wrong types everywhere, deeply nested, huge numbers, NaN,
unicode, NUL, very long strings), random filters, attribute lists, paths and query
parameters, malformed JSON, wrong content types and oversized bodies. Every answer must be
below 500, and every error an RFC 7644 3.12 body whose ``status`` is the status as a string.
After each run, a known user and group still read back byte-for-byte identical: a failed
request changed nothing.

Each test runs its own event loop (like ``test_store_property``) so that Hypothesis drives
many requests against one app; examples are bounded (``max_examples``), no deadline.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scimd.app import create_app
from scimd.plugins import PluginManager
from scimd.settings import ServerSettings
from tests._http_helpers import BASE, make_settings

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
MAX_PAYLOAD = 64 * 1024
# A marker the client expands to a 20,000-character string just before sending (Hypothesis
# would otherwise print huge reprs of its examples).
LONG = "<<LONG>>"

RUNS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
)

# ---------------------------------------------------------------- strategies

NAMES = [
    "schemas", "id", "externalId", "meta", "userName", "name", "givenName", "familyName",
    "formatted", "displayName", "nickName", "profileUrl", "title", "userType", "locale",
    "timezone", "active", "password", "emails", "phoneNumbers", "ims", "photos", "addresses",
    "groups", "entitlements", "roles", "x509Certificates", "members", "value", "display",
    "type", "primary", "$ref", "Operations", "op", "path", "manager", "employeeNumber",
    "department", "name.givenName", "emails[type eq \"work\"].value", ENTERPRISE,
    f"{ENTERPRISE}:manager", USER, GROUP, "created", "lastModified", "version",
]  # fmt: skip
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
keys = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(NAMES).map(str.upper),
    st.sampled_from(NAMES).map(str.lower),
    text,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
    st.sampled_from(["", "\x00", "true", "False", "null", "{", '{"value":"x"}', "[1]", "\u202e"]),
    st.sampled_from(["2024-13-45T99:99:99Z", "NaN", "1e999", "9" * 400, LONG]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=24,
)
user_bodies = st.fixed_dictionaries(
    {"schemas": st.one_of(st.just([USER]), json_values), "userName": json_values},
    optional={k: json_values for k in NAMES[2:30] if k != "userName"} | {ENTERPRISE: json_values},
)
group_bodies = st.fixed_dictionaries(
    {"schemas": st.one_of(st.just([GROUP]), json_values), "displayName": json_values},
    optional={"members": json_values, "externalId": json_values, "id": json_values},
)
path_tokens = st.sampled_from(
    [*NAMES, "[", "]", ".", ":", " eq ", " co ", " pr", '"', "'", "(", ")", " and ", " or ",
             "not", "\\", "\x00", "urn:", "sub.sub.sub", "]]", "[[", '"x"', "true", "1.5"]
)  # fmt: skip
paths_text = st.one_of(text, st.lists(path_tokens, max_size=8).map("".join))
operations = st.fixed_dictionaries(
    {},
    optional={
        "op": st.one_of(st.sampled_from(["add", "Replace", "REMOVE", "move", ""]), json_values),
        "path": st.one_of(paths_text, json_values),
        "value": json_values,
        "name": json_values,
    },
)
patch_bodies = st.one_of(
    st.fixed_dictionaries(
        {
            "schemas": st.one_of(st.just([PATCH_OP]), json_values),
            "Operations": st.one_of(st.lists(operations, max_size=4), json_values),
        }
    ),
    json_values,
)
filter_tokens = st.sampled_from(
    ["userName", "emails", "emails.value", "meta.lastModified", "members", "manager", "id",
     f"{ENTERPRISE}:manager", "name.givenName", "active", " eq ", " ne ", " co ", " sw ", " gt ",
     " le ", " pr", " and ", " or ", "not ", "(", ")", "[", "]", '"a"', '"', "true", "null",
     "1", "-1.5e308", "1e999", '"2024-01-01T00:00:00Z"', ".", "\x00", "é", "  "]
)  # fmt: skip
filters = st.one_of(text, st.lists(filter_tokens, max_size=10).map("".join))
attr_lists = st.one_of(text, st.lists(paths_text, max_size=5).map(",".join))
numbers_text = st.one_of(
    st.sampled_from(["", "0", "-1", "1", "2", "1.5", "1e3", "NaN", "99999999999999999999999"]),
    text,
)
query_params = st.dictionaries(
    st.sampled_from(
        ["filter", "attributes", "excludedAttributes", "sortBy", "sortOrder", "startIndex",
         "count", "cursor", "x"]
    ),
    st.one_of(filters, attr_lists, numbers_text),
    max_size=5,
)  # fmt: skip
methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
segments = st.one_of(
    st.sampled_from(
        ["Users", "users", "Groups", "Me", "Bulk", ".search", "Schemas", "ResourceTypes",
         "ServiceProviderConfig", "..", ".", "", "%00", "Users%2FGroups", ENTERPRISE]
    ),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="/?#"), max_size=20),
)  # fmt: skip


def nan_json(value: Any) -> bytes:
    """JSON text with NaN / Infinity literals and huge numbers, which JSON forbids."""
    return json.dumps(value, allow_nan=True).encode()


raw_bodies = st.one_of(
    st.binary(max_size=200),
    text.map(str.encode),
    json_values.map(lambda v: orjson.dumps(v)[:-1] if orjson.dumps(v)[:-1] else b"{"),
    st.sampled_from(
        [
            b"",
            b"   ",
            b"null",
            b"[]",
            b"{}",
            b'{"userName": NaN}',
            b'{"userName": "x", "active": Infinity}',
            b'{"userName": "x", "title": 1e99999}',
            b'{"userName": "x", "title": 123456789012345678901234567890}',
            b'\xef\xbb\xbf{"userName": "bom"}',
            b'{"userName": "\\ud800"}',
            b'{"a":' * 5000 + b"1" + b"}" * 5000,
            b"[" * 100_000,
            b'{"userName": "dup", "userName": "dup2"}',
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: nan_json({"userName": f})),
)


def deep(depth: int, leaf: Any) -> bytes:
    """JSON text ``{"value": [{"value": [... leaf ...]}]}`` nested ``depth`` times (built as
    text: deeper than the JSON encoders recurse)."""
    opening = "".join("[" if i % 2 else '{"value":' for i in range(depth))
    closing = "".join("]" if i % 2 else "}" for i in reversed(range(depth)))
    return f"{opening}{json.dumps(leaf)}{closing}".encode()


# ---------------------------------------------------------------- a running app


class App:
    """A running app on the embedded store, driven from a private event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: TestClient[Any, Any]) -> None:
        self.loop = loop
        self.client = client
        self.token = ""
        self.user: dict[str, Any] = {}
        self.group: dict[str, Any] = {}

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str | None = "application/scim+json",
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        hdrs = self.auth()
        if body is not None:
            body = body.replace(LONG.encode(), b"\xc3\xa9" * 10_000)
        skip: set[str] = set()
        if body is not None:
            if content_type is None:
                skip.add("Content-Type")
            else:
                hdrs["Content-Type"] = content_type
        hdrs.update(headers or {})
        async with self.client.request(
            method, BASE + path, data=body, params=params, headers=hdrs, skip_auto_headers=skip
        ) as resp:
            raw = await resp.read()
            status = resp.status
        check_answer(method, status, raw)
        return status, (orjson.loads(raw) if raw else None)

    async def snapshot(self) -> tuple[Any, Any]:
        _, user = await self.send("GET", f"/Users/{self.user['id']}")
        _, group = await self.send("GET", f"/Groups/{self.group['id']}")
        return user, group

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def assert_intact(self) -> None:
        assert self.run(self.snapshot()) == (self.user, self.group)


def check_answer(method: str, status: int, raw: bytes) -> None:
    """Never a 500; every error an RFC 7644 3.12 body with the status as a string.

    501 is /Me for a token bound to no user (RFC 7644 3.11), the only 5xx scimd means."""
    assert status < 500 or status == 501, raw[:500]
    if status < 400:
        return
    assert raw, f"{method} answered {status} without a body"
    doc = orjson.loads(raw)
    assert isinstance(doc, dict), doc
    assert doc.get("schemas") == [ERROR], doc
    assert doc.get("status") == str(status), doc
    assert isinstance(doc.get("detail"), str) and doc["detail"], doc
    if "scimType" in doc:
        assert isinstance(doc["scimType"], str)


@contextmanager
def running_app(tmp_path: Path) -> Iterator[App]:
    loop = asyncio.new_event_loop()
    settings_ = make_settings(tmp_path, server=ServerSettings(max_payload_size=MAX_PAYLOAD))
    app = create_app(settings_, PluginManager.create(entry_points=False))

    async def start() -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        return client

    client = loop.run_until_complete(start())
    scim = App(loop, client)
    try:

        async def setup() -> None:
            from scimd.http.context import RUNTIME

            _record, scim.token = await app[RUNTIME].state.create_token(
                tenant="default", scopes=("read", "write")
            )
            body = {
                "schemas": [USER, ENTERPRISE],
                "userName": "known@example.com",
                "name": {"givenName": "Known", "familyName": "User"},
                "emails": [{"value": "known@example.com", "type": "work", "primary": True}],
                "active": True,
                ENTERPRISE: {"employeeNumber": "42"},
            }
            status, user = await scim.send("POST", "/Users", body=orjson.dumps(body))
            assert status == 201, user
            status, group = await scim.send(
                "POST",
                "/Groups",
                body=orjson.dumps(
                    {"schemas": [GROUP], "displayName": "known", "members": [{"value": user["id"]}]}
                ),
            )
            assert status == 201, group
            scim.user, scim.group = user, group
            scim.user, scim.group = await scim.snapshot()

        loop.run_until_complete(setup())
        yield scim
    finally:
        loop.run_until_complete(client.close())
        loop.close()


# ---------------------------------------------------------------- the tests


def test_random_json_bodies_on_every_write(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:

        @RUNS
        @given(body=json_values, target=st.sampled_from(["users", "groups"]))
        def run(body: Any, target: str) -> None:
            async def go() -> None:
                raw = orjson.dumps(body)
                uid, gid = app.user["id"], app.group["id"]
                if target == "users":
                    await app.send("POST", "/Users", body=raw)
                    await app.send("PUT", f"/Users/{uid}", body=raw)
                    await app.send("PATCH", f"/Users/{uid}", body=raw)
                else:
                    await app.send("POST", "/Groups", body=raw)
                    await app.send("PUT", f"/Groups/{gid}", body=raw)
                    await app.send("PATCH", f"/Groups/{gid}", body=raw)
                await app.send("POST", "/Bulk", body=raw)
                await app.send("POST", "/.search", body=raw)

            app.run(go())

        run()
        app.assert_intact()


def test_user_and_group_shaped_bodies_with_wrong_types(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:

        @RUNS
        @given(user=user_bodies, group=group_bodies)
        def run(user: dict[str, Any], group: dict[str, Any]) -> None:
            async def go() -> None:
                uid, gid = app.user["id"], app.group["id"]
                status, doc = await app.send("POST", "/Users", body=orjson.dumps(user))
                if status == 201:  # valid after all: clean up, it must not collide
                    await app.send("DELETE", f"/Users/{doc['id']}")
                status, doc = await app.send("POST", "/Groups", body=orjson.dumps(group))
                if status == 201:
                    await app.send("DELETE", f"/Groups/{doc['id']}")
                # a PUT that keeps the known user's userName could succeed: only bodies that
                # fail are sent to the known resources
                bad_user = {**user, "userName": {"not": "a string"}}
                status, _ = await app.send("PUT", f"/Users/{uid}", body=orjson.dumps(bad_user))
                assert status in (400, 413)
                bad_group = {**group, "displayName": ["not", "a", "string"]}
                status, _ = await app.send("PUT", f"/Groups/{gid}", body=orjson.dumps(bad_group))
                assert status in (400, 413)

            app.run(go())

        run()
        app.assert_intact()


def test_random_patch_operations_are_atomic(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:

        @RUNS
        @given(body=patch_bodies, target=st.sampled_from(["Users", "Groups"]))
        def run(body: Any, target: str) -> None:
            async def go() -> None:
                rid = (app.user if target == "Users" else app.group)["id"]
                before = await app.snapshot()
                status, _ = await app.send("PATCH", f"/{target}/{rid}", body=orjson.dumps(body))
                after = await app.snapshot()
                if status >= 400:
                    assert after == before, "a failed PATCH changed the resource"
                else:
                    # a random PATCH that is valid: take it as the new baseline
                    app.user, app.group = after

            app.run(go())

        run()
        # the last baseline still reads back identical
        app.assert_intact()


def test_deeply_nested_and_huge_values(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:

        @RUNS
        @given(
            depth=st.integers(1, 3000),
            leaf=scalars,
            attr=st.sampled_from(["name", "emails", "title", "members", ENTERPRISE, "active"]),
        )
        def run(depth: int, leaf: Any, attr: str) -> None:
            async def go() -> None:
                nested = deep(depth, leaf)
                uid = app.user["id"]
                key = json.dumps(attr).encode()
                raw = b'{"schemas":["%s"],"userName":"deep@example.com",%s:%s}' % (
                    USER.encode(),
                    key,
                    nested,
                )
                status, doc = await app.send("POST", "/Users", body=raw)
                if status == 201:
                    await app.send("DELETE", f"/Users/{doc['id']}")
                raw = b'{"schemas":["%s"],"Operations":[{"op":"replace","path":%s,"value":%s}]}' % (
                    PATCH_OP.encode(),
                    key,
                    nested,
                )
                status, _ = await app.send("PATCH", f"/Users/{uid}", body=raw)
                if status < 400:
                    app.user, app.group = await app.snapshot()

            app.run(go())

        run()
        app.assert_intact()


def test_malformed_json_and_raw_bodies(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:

        @RUNS
        @given(
            body=raw_bodies,
            method_path=st.sampled_from(
                [
                    ("POST", "/Users"),
                    ("PUT", "user"),
                    ("PATCH", "user"),
                    ("POST", "/Groups"),
                    ("PATCH", "group"),
                    ("POST", "/Bulk"),
                    ("POST", "/.search"),
                    ("POST", "/Users/.search"),
                ]
            ),
        )
        def run(body: bytes, method_path: tuple[str, str]) -> None:
            method, path = method_path
            path = {"user": f"/Users/{app.user['id']}", "group": f"/Groups/{app.group['id']}"}.get(
                path, path
            )

            async def go() -> None:
                status, doc = await app.send(method, path, body=body)
                if status == 201 and method == "POST":
                    await app.send("DELETE", doc["meta"]["location"].split(BASE, 1)[1])
                elif status == 200 and method in ("PUT", "PATCH"):
                    # valid after all (b'{"userName": "dup", "userName": "dup2"}'): new baseline
                    app.user, app.group = await app.snapshot()

            app.run(go())

        run()
        app.assert_intact()


def test_wrong_content_types(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:
        valid = orjson.dumps({"schemas": [USER], "userName": "ctype@example.com"})

        @RUNS
        @given(
            content_type=header_text, extra=st.dictionaries(header_text, header_text, max_size=3)
        )
        def run(content_type: str, extra: dict[str, str]) -> None:
            headers = {
                k: v
                for k, v in extra.items()
                if k.strip() and all(c not in k for c in ' :()<>@,;\\"/[]?={}')
                and k.lower() not in {"authorization", "content-length", "transfer-encoding",
                                      "content-encoding", "host", "connection", "expect"}
            }  # fmt: skip

            async def go() -> None:
                status, doc = await app.send(
                    "POST", "/Users", body=valid, content_type=content_type, headers=headers
                )
                if status == 201:
                    mime = content_type.partition(";")[0].strip().lower()
                    assert mime in ("application/scim+json", "application/json", "")
                    await app.send("DELETE", f"/Users/{doc['id']}")
                status, _ = await app.send(
                    "PATCH", f"/Users/{app.user['id']}", body=b"{", content_type=content_type
                )
                assert status in (400, 415)

            app.run(go())

        run()
        app.assert_intact()


def test_oversized_bodies_are_413(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:

        @settings(max_examples=20, deadline=None)
        @given(
            extra=st.integers(1, 4 * MAX_PAYLOAD),
            method_path=st.sampled_from(
                [("POST", "/Users"), ("PUT", "user"), ("PATCH", "user"), ("POST", "/.search")]
            ),
        )
        def run(extra: int, method_path: tuple[str, str]) -> None:
            method, path = method_path
            if path == "user":
                path = f"/Users/{app.user['id']}"
            body = orjson.dumps(
                {
                    "schemas": [USER],
                    "userName": "big@example.com",
                    "title": "x" * (MAX_PAYLOAD + extra),
                }
            )

            async def go() -> None:
                status, doc = await app.send(method, path, body=body)
                assert status == 413, doc
                assert doc["scimType"] == "tooLarge" or "scimType" not in doc

            app.run(go())

        run()
        app.assert_intact()


def test_random_filters_attributes_and_query_parameters(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:

        @RUNS
        @given(params=query_params, target=st.sampled_from(["/Users", "/Groups", ""]))
        def run(params: dict[str, str], target: str) -> None:
            async def go() -> None:
                await app.send("GET", target or "/", params=params)
                await app.send("GET", f"/Users/{app.user['id']}", params=params)
                await app.send("GET", f"/Groups/{app.group['id']}", params=params)
                search: dict[str, Any] = {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]
                }
                for key, value in params.items():
                    search[key] = value
                    if key in ("attributes", "excludedAttributes"):
                        search[key] = value.split(",")
                await app.send("POST", f"{target}/.search", body=orjson.dumps(search))

            app.run(go())

        run()
        app.assert_intact()


def test_random_search_request_values(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:

        @RUNS
        @given(
            fields=st.dictionaries(
                st.sampled_from(
                    ["schemas", "filter", "attributes", "excludedAttributes", "sortBy",
                     "sortOrder", "startIndex", "count", "cursor"]
                ),
                json_values,
                max_size=6,
            )
        )  # fmt: skip
        def run(fields: dict[str, Any]) -> None:
            app.run(app.send("POST", "/Users/.search", body=orjson.dumps(fields)))

        run()
        app.assert_intact()


def test_random_paths_and_methods(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:

        @RUNS
        @given(
            method=methods,
            parts=st.lists(segments, min_size=0, max_size=4),
            body=st.one_of(st.none(), json_values.map(orjson.dumps)),
        )
        def run(method: str, parts: list[str], body: bytes | None) -> None:
            path = "/" + "/".join(parts)

            async def go() -> None:
                status, doc = await app.send(method, path, body=body)
                if status == 201 and isinstance(doc, dict) and "meta" in doc:
                    await app.send("DELETE", doc["meta"]["location"].split(BASE, 1)[1])

            if method == "DELETE" and any(p in (app.user["id"], app.group["id"]) for p in parts):
                return
            app.run(go())

        run()
        app.assert_intact()


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, 10**400, -(10**400), 2**64, 1e308 * 10]
)
def test_non_finite_and_huge_numbers_literal(tmp_path: Path, value: Any) -> None:
    """JSON has no NaN/Infinity and orjson rejects integers beyond 64 bits: 400, not 500."""
    with running_app(tmp_path) as app:
        text = json.dumps(
            {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "title", "value": value}],
            },
            allow_nan=True,
        ).encode()
        status, doc = app.run(app.send("PATCH", f"/Users/{app.user['id']}", body=text))
        assert status == 400
        # NaN/Infinity are not JSON (invalidSyntax); a number for the string title is not
        # a valid value (invalidValue)
        assert doc["scimType"] in ("invalidSyntax", "invalidValue")
        app.assert_intact()


@pytest.mark.parametrize("value", ["9223372036854775809", str(10**30), str(-(10**30)), 2**64 - 1])
def test_huge_start_index_and_count(tmp_path: Path, value: Any) -> None:
    """Found by the filter/parameter test: startIndex beyond SQLite's 64-bit INTEGER was a
    500. Huge values are clamped: past the end is an empty page, a huge count is max."""
    with running_app(tmp_path) as app:
        for key in ("startIndex", "count"):
            status, doc = app.run(app.send("GET", "/Users", params={key: str(value)}))
            assert status == 200, doc
            body = f'{{"{key}": {value}}}'.encode()  # orjson writes no ints beyond 64 bits
            status, doc = app.run(app.send("POST", "/Users/.search", body=body))
            if abs(int(value)) >= 2**64:  # not representable by orjson: invalidSyntax
                assert status == 400, doc
                continue
            assert status == 200, doc
            if key == "startIndex" and int(value) > 0:
                assert doc["totalResults"] == 1
                assert doc.get("Resources", []) == []
            else:
                assert [r["id"] for r in doc.get("Resources", [])] in ([app.user["id"]], [])
