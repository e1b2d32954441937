"""Indexed values of any length: the GIN index on ``sv`` (layout 10) keys hashes of the
values, the trigram index on ``sv_text`` trigrams, and the unique index an MD5 of the
value, so a 10 kB userName, displayName or email is stored, found by
``eq``/``sw``/``co``/``ew`` exactly (values sharing their first 5,300 characters are
told apart) and still unique. (Up to layout 9 the value index keyed a 200-character
prefix.)"""

from __future__ import annotations

import orjson

from tests._http_helpers import Scim

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
HEAD = "x" * 300  # longer than layout 9's indexed prefix (200)
# Over 10 kB in UTF-8 (a btree entry holds about 2.7 kB) yet within the 10,000 characters
# a filter may have, so eq can name the whole value.
LONG_A = HEAD + "\u00fc" * 5_000 + "tail-A"
LONG_B = HEAD + "\u00fc" * 5_000 + "tail-B"  # same first 5,300 characters as LONG_A


async def ids(scim: Scim, flt: str) -> set[str]:
    # POST .search (RFC 7644 3.4.3): a 10 kB filter does not fit in a request line.
    body = {"schemas": [SEARCH], "filter": flt, "count": 50}
    status, doc = await scim.call("POST", "/Users/.search", json=body)
    assert status == 200, doc
    return {r["id"] for r in doc.get("Resources", [])}


def q(text: str) -> str:
    return orjson.dumps(text).decode()


async def test_ten_kilobyte_values_are_stored_found_and_unique(scim: Scim) -> None:
    assert len(LONG_A.encode()) > 10_000
    a = await scim.create_user(
        LONG_A, displayName="D" + LONG_A, emails=[{"value": LONG_A + "@example.com"}]
    )
    b = await scim.create_user(LONG_B, displayName="D" + LONG_B)
    short = await scim.create_user("short")
    status, got = await scim.call("GET", f"/Users/{a['id']}")
    assert status == 200 and got["userName"] == LONG_A

    # eq: exact, though A and B share far more than the indexed prefix; case-insensitive.
    assert await ids(scim, f"userName eq {q(LONG_A)}") == {a["id"]}
    assert await ids(scim, f"userName eq {q(LONG_B.upper())}") == {b["id"]}
    assert await ids(scim, f"userName eq {q(LONG_A[:-1])}") == set()
    assert await ids(scim, f"emails.value eq {q(LONG_A + '@EXAMPLE.com')}") == {a["id"]}
    # co / ew / sw, with operands shorter and longer than the prefix.
    assert await ids(scim, f"displayName co {q(LONG_A[-8:].upper())}") == {a["id"]}
    assert await ids(scim, f"userName ew {q('tail-B')}") == {b["id"]}
    assert await ids(scim, f"userName sw {q('xxx')}") == {a["id"], b["id"]}
    assert await ids(scim, f"userName sw {q(LONG_A[:-1])}") == {a["id"], b["id"]}
    assert await ids(scim, f"userName sw {q(LONG_A)}") == {a["id"]}
    assert await ids(scim, f"userName sw {q(HEAD + 'b')}") == set()
    # ordering comparisons stay exact beyond the prefix
    # ("short" < "xxx...": code point order)
    assert await ids(scim, f"userName gt {q(LONG_A)}") == {b["id"]}
    assert await ids(scim, f"userName lt {q(LONG_B)}") == {a["id"], short["id"]}
    assert await ids(scim, f"userName le {q(LONG_B)}") == {a["id"], b["id"], short["id"]}
    assert await ids(scim, f"userName ge {q(LONG_B[:-1])}") == {a["id"], b["id"]}
    assert await ids(scim, f"userName ge {q(LONG_B)}") == {b["id"]}

    # uniqueness on the full (casefolded) value: 409 naming userName
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": LONG_A.upper()}
    status, doc = await scim.call("POST", "/Users", json=body)
    assert status == 409 and doc["scimType"] == "uniqueness", doc
    assert "userName" in doc["detail"]

    # a PATCH to another long value, then delete: the values go with the resource
    status, doc = await scim.call(
        "PATCH",
        f"/Users/{b['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "userName", "value": LONG_B + "2"}],
        },
    )
    assert status == 200, doc
    assert await ids(scim, f"userName eq {q(LONG_B)}") == set()
    assert await ids(scim, f"userName eq {q(LONG_B + '2')}") == {b["id"]}
    status, _ = await scim.call("DELETE", f"/Users/{b['id']}")
    assert status == 204
    assert await ids(scim, f"userName sw {q(HEAD)}") == {a["id"]}
    # the deleted user's userName is free again
    await scim.create_user(LONG_B + "2")
