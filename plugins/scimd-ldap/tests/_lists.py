"""Helpers for the list tests: a corpus of users, the expected order (RFC 7644 3.4.2.3 as
``scimd.query.sort`` defines it: values casefolded, valueless resources last in both
directions, ties by id, descending = reverse except the valueless group) and a page walk."""

from __future__ import annotations

from typing import Any

from tests._http_helpers import Scim

NAMES = ["delta", "Alpha", "charlie", "bravo", "Echo", "foxtrot", "golf", "Hotel", "india"]
"""userName of the corpus; every third user has no displayName."""


async def seed(scim: Scim) -> list[dict[str, Any]]:
    users = []
    for i, name in enumerate(NAMES):
        extra = {} if i % 3 == 2 else {"displayName": f"{name[::-1]} {i}"}
        users.append(await scim.create_user(name, **extra))
    return users


def expected(users: list[dict[str, Any]], attr: str | None, descending: bool = False) -> list[str]:
    """Ids in the reference order for ``sortBy=attr`` (None: by id)."""
    if attr is None:
        return sorted(u["id"] for u in users)
    valued = sorted(
        ((str(u[attr]).casefold(), u["id"]) for u in users if u.get(attr)),
        reverse=descending,
    )
    valueless = sorted((u["id"] for u in users if not u.get(attr)), reverse=descending)
    return [i for _, i in valued] + valueless


async def walk(scim: Scim, query: str, count: int, total: int) -> list[str]:
    """Every page of ``query`` with ``count`` per page; each must report ``total``."""
    ids: list[str] = []
    for start in range(1, total + 1, count):
        status, doc = await scim.call("GET", f"/Users?{query}&startIndex={start}&count={count}")
        assert status == 200, doc
        assert doc["totalResults"] == total
        assert doc["startIndex"] == start
        ids += [r["id"] for r in doc.get("Resources", [])]
    return ids
