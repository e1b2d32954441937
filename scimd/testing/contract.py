"""The backend contract suite: pytest test classes every ``scimd`` backend runs.

A backend plugin subclasses ``BackendContract`` (or some of the per-area classes) in one of
its test modules and overrides the ``backend_factory`` fixture (and usually
``backend_options``), or the ``backend`` fixture itself::

    class TestMyBackendContract(BackendContract):
        @pytest.fixture
        def backend_factory(self) -> Callable[[BackendEnv], Backend]:
            return MyBackendFactory()

        @pytest.fixture
        def backend_options(self, tmp_path: Path) -> Mapping[str, Any]:
            return {"dsn": fresh_database_dsn()}

Every test gets a started backend on a fresh, empty store. The suite supplies the schema
registry (builtin schemas plus the contract extension, ``scimd.testing.extension``), the
tenants (``t1``/``t2``) and the sample resources. Expectations come from the rules in
``scimd.backend`` and RFC 7644; query results are compared with the reference in-memory
evaluator ``scimd.query.evaluate.matches`` over the same resources. Tests that need a
capability the backend declares absent are skipped with a reason naming the capability;
nothing else skips.

The suite only uses the public ``Backend`` protocol: never a backend's private details.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from scimd import errors
from scimd.backend import (
    Backend,
    BackendEnv,
    Capabilities,
    Keyset,
    OpContext,
    Page,
    PatchOp,
    Query,
    SortSpec,
)
from scimd.schema.model import ResourceType, SchemaRegistry
from scimd.testing.capabilities import (
    capability_absent_reason,
    needed_capabilities,
    needs,
    unsupported_filter_reason,
)
from scimd.testing.extension import CONTRACT_EXTENSION_URN, build_contract_registry
from scimd.testing.samples import ENTERPRISE_URN, filter_corpus, full_user, group, user

__all__ = [
    "T1",
    "T2",
    "BackendContract",
    "ContractBase",
    "CreateGetContract",
    "CursorPagingContract",
    "DeleteContract",
    "ErrorContract",
    "FilterContract",
    "IndexPagingContract",
    "MembershipContract",
    "PatchContract",
    "ReplaceContract",
    "SortContract",
    "TenantIsolationContract",
    "UniquenessContract",
]

#: The two tenants every test uses; a resource of one must not exist for the other.
T1 = OpContext(tenant="t1", principal="system", request_id="contract-t1")
T2 = OpContext(tenant="t2", principal="system", request_id="contract-t2")

_VERSION = re.compile(r'^W/"(\d+)"$')
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

#: Ids that exist nowhere; a backend must answer NotFound for each, never a driver error.
ODD_IDS: tuple[str, ...] = (
    "00000000-0000-0000-0000-000000000000",
    "does-not-exist",
    "",
    "' OR 1=1 --",
    '"); DROP TABLE resources; --',
    "%",
    "_",
    "*",
    "(uid=*)",
    "\\",
    "x" * 2048,
    "ünïcødé-☃",
    "a\x00b",
)


def version_number(resource: Mapping[str, Any]) -> int:
    """The counter of ``meta.version`` (``W/"<n>"``); fails the test on any other form."""
    version = resource["meta"]["version"]
    found = _VERSION.match(version) if isinstance(version, str) else None
    assert found, f'meta.version {version!r} is not a weak ETag W/"<n>"'
    return int(found.group(1))


def instant(value: object) -> datetime:
    """An RFC 3339 dateTime string as an aware ``datetime``; fails the test otherwise."""
    assert isinstance(value, str) and _RFC3339.match(value), f"{value!r} is not RFC 3339"
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, f"{value!r} has no time zone"
    return parsed


def comparable(resource: Mapping[str, Any]) -> dict[str, Any]:
    """``resource`` without unassigned multi-valued attributes (``[]`` and absent are the
    same SCIM state) and with members in a stable order, for equality checks."""
    out = {k: copy.deepcopy(v) for k, v in resource.items() if v != []}
    for key in ("members", "groups"):
        if isinstance(out.get(key), list):
            out[key] = sorted(out[key], key=lambda m: str(m.get("value")))
    return out


def without_meta(resource: Mapping[str, Any]) -> dict[str, Any]:
    """``resource`` without ``id`` and ``meta``, for comparing with what was sent."""
    return {k: v for k, v in comparable(resource).items() if k not in ("id", "meta")}


def member_values(resource: Mapping[str, Any]) -> set[str]:
    return {str(m["value"]) for m in resource.get("members") or []}


def ids_of(page: Page) -> list[str]:
    return [str(r["id"]) for r in page.resources]


def group_values(resource: Mapping[str, Any]) -> set[str]:
    return {str(g["value"]) for g in resource.get("groups") or []}


async def outcome(awaitable: Any) -> Any:
    """Await ``awaitable`` and return its result or the exception it raised."""
    try:
        return await awaitable
    except Exception as exc:  # the caller asserts on the type
        return exc


class ContractBase:
    """Fixtures and helpers shared by every contract class. Override ``backend_factory``
    (and ``backend_options``), or ``backend``, in the subclass that runs the suite."""

    # Explicit, so the suite also runs under pytest-asyncio's strict mode.
    pytestmark = [pytest.mark.asyncio(loop_scope="function")]

    # -- fixtures a plugin overrides ------------------------------------------------------

    @pytest.fixture
    def backend_factory(self) -> Callable[[BackendEnv], Backend]:
        """The ``BackendFactory`` (or any callable ``BackendEnv -> Backend``) under test."""
        pytest.fail(
            "the contract suite needs a backend: override the `backend_factory` fixture "
            "(or `backend`) in your BackendContract subclass"
        )

    @pytest.fixture
    def backend_options(self, tmp_path: Path) -> Mapping[str, Any]:
        """The ``[storage.<name>]`` options for a fresh, empty store (default: none)."""
        return {}

    @pytest_asyncio.fixture(loop_scope="function")
    async def backend(
        self,
        backend_factory: Callable[[BackendEnv], Backend],
        backend_options: Mapping[str, Any],
        contract_registry: SchemaRegistry,
        tmp_path: Path,
    ) -> AsyncIterator[Backend]:
        """A started backend on a fresh, empty store; closed after the test."""
        env = BackendEnv(options=backend_options, registry=contract_registry, base_dir=tmp_path)
        instance = backend_factory(env)
        assert isinstance(instance, Backend), f"{instance!r} does not implement Backend"
        await instance.start()
        try:
            yield instance
        finally:
            await instance.aclose()

    # -- fixtures the suite provides ------------------------------------------------------

    @pytest.fixture
    def contract_registry(self, tmp_path_factory: pytest.TempPathFactory) -> SchemaRegistry:
        """Builtin schemas plus the contract extension on User."""
        return build_contract_registry(tmp_path_factory.mktemp("contract-schemas"))

    @pytest.fixture
    def users(self, contract_registry: SchemaRegistry) -> ResourceType:
        rtype = contract_registry.resource_type("User")
        assert rtype is not None
        return rtype

    @pytest.fixture
    def groups(self, contract_registry: SchemaRegistry) -> ResourceType:
        rtype = contract_registry.resource_type("Group")
        assert rtype is not None
        return rtype

    @pytest.fixture
    def caps(self, backend: Backend) -> Capabilities:
        return backend.capabilities

    @pytest.fixture(autouse=True)
    def _contract_capability_gate(self, request: pytest.FixtureRequest, backend: Backend) -> None:
        """Skip, naming the capability, a test marked with ``needs`` that the backend's
        declared capabilities exclude."""
        names = needed_capabilities(type(self), request.function)
        reason = capability_absent_reason(backend.capabilities, names)
        if reason:
            pytest.skip(reason)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def require(caps: Capabilities, *names: str) -> None:
        """Skip the running test, naming the capability, if one of ``names`` is absent."""
        reason = capability_absent_reason(caps, names)
        if reason:
            pytest.skip(reason)

    @staticmethod
    def path(rtype: ResourceType, text: str) -> Any:
        """A PATCH path parsed and resolved by ``scimd.query.parse.parse_path``."""
        from scimd.query.parse import parse_path

        return parse_path(text, rtype)

    @staticmethod
    def parse(rtype: ResourceType, text: str) -> Any:
        from scimd.query.parse import parse_filter

        return parse_filter(text, rtype)

    @staticmethod
    def attr_path(rtype: ResourceType, text: str) -> Any:
        from scimd.query.parse import parse_attr_path

        return parse_attr_path(text, rtype)

    @staticmethod
    async def all_of(
        backend: Backend,
        ctx: OpContext,
        rtype: ResourceType,
        filt: Any = None,
        sort: SortSpec | None = None,
    ) -> Page:
        """One index page holding every match (the suite stores far fewer than max_results)."""
        count = min(backend.capabilities.max_results, 1000)
        return await backend.query(ctx, rtype, Query(filter=filt, sort=sort, count=count))


# ==========================================================================================
# create / get
# ==========================================================================================


class CreateGetContract(ContractBase):
    """``create`` assigns id and meta and stores what it was given; ``get`` returns it."""

    async def test_create_assigns_id_and_meta(
        self, backend: Backend, users: ResourceType, caps: Capabilities
    ) -> None:
        created = await backend.create(T1, users, user("bjensen"))
        assert isinstance(created.get("id"), str) and created["id"], "create must assign an id"
        meta = created["meta"]
        assert meta["resourceType"] == "User"
        assert instant(meta["created"]) == instant(meta["lastModified"])
        if caps.etag:
            version_number(created)
        assert "location" not in meta, "meta.location is added at rendering, never stored"

    async def test_group_meta_resource_type(self, backend: Backend, groups: ResourceType) -> None:
        created = await backend.create(T1, groups, group("Admins"))
        assert created["meta"]["resourceType"] == "Group"
        assert created["displayName"] == "Admins"

    async def test_create_returns_what_was_given(
        self, backend: Backend, users: ResourceType
    ) -> None:
        body = full_user()
        created = await backend.create(T1, users, copy.deepcopy(body))
        assert without_meta(created) == comparable(body)

    async def test_get_returns_what_was_created(
        self, backend: Backend, users: ResourceType
    ) -> None:
        created = await backend.create(T1, users, full_user())
        fetched = await backend.get(T1, users, created["id"])
        assert comparable(fetched) == comparable(created)
        assert "location" not in fetched["meta"]

    async def test_every_corpus_user_round_trips(
        self, backend: Backend, users: ResourceType
    ) -> None:
        for body in filter_corpus():
            created = await backend.create(T1, users, copy.deepcopy(body))
            assert without_meta(created) == comparable(body)
            fetched = await backend.get(T1, users, created["id"])
            assert without_meta(fetched) == comparable(body), body["userName"]

    async def test_ids_are_unique(self, backend: Backend, users: ResourceType) -> None:
        ids = [(await backend.create(T1, users, user(f"user{i}")))["id"] for i in range(20)]
        assert len(set(ids)) == len(ids)

    async def test_concurrent_creates_get_distinct_ids(
        self, backend: Backend, users: ResourceType
    ) -> None:
        created = await asyncio.gather(
            *(backend.create(T1, users, user(f"parallel{i}")) for i in range(10))
        )
        assert len({c["id"] for c in created}) == 10

    @pytest.mark.parametrize("rid", ODD_IDS, ids=lambda r: repr(r)[:40])
    async def test_get_unknown_id_is_not_found(
        self, backend: Backend, users: ResourceType, groups: ResourceType, rid: str
    ) -> None:
        await backend.create(T1, users, user("someone"))
        with pytest.raises(errors.NotFound):
            await backend.get(T1, users, rid)
        with pytest.raises(errors.NotFound):
            await backend.get(T1, groups, rid)

    async def test_get_with_other_resource_type_is_not_found(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        """A User id is not a Group id."""
        created = await backend.create(T1, users, user("bjensen"))
        with pytest.raises(errors.NotFound):
            await backend.get(T1, groups, created["id"])

    async def test_returned_dicts_are_not_shared_with_the_store(
        self, backend: Backend, users: ResourceType
    ) -> None:
        body = user("bjensen", displayName="Babs", emails=[{"value": "b@example.com"}])
        created = await backend.create(T1, users, body)
        snapshot = comparable(created)
        body["displayName"] = "mutated input"
        body["emails"].append({"value": "mutated@example.com"})
        created["displayName"] = "mutated output"
        created["meta"]["version"] = 'W/"999"'
        fetched = await backend.get(T1, users, snapshot["id"])
        fetched["displayName"] = "mutated get"
        assert comparable(await backend.get(T1, users, snapshot["id"])) == snapshot

    async def test_unicode_and_special_characters_round_trip(
        self, backend: Backend, users: ResourceType
    ) -> None:
        body = user(
            "Zoë.Ørsted+test@example.com",
            displayName='Robert\'); DROP TABLE users;-- \u2603 \U0001f600 "quoted" \\ %_*',
            nickName="(cn=*)",
        )
        created = await backend.create(T1, users, copy.deepcopy(body))
        assert without_meta(await backend.get(T1, users, created["id"])) == comparable(body)


# ==========================================================================================
# replace and If-Match
# ==========================================================================================


class ReplaceContract(ContractBase):
    """``replace`` stores the new state whole, bumps version and lastModified, and honours
    If-Match atomically."""

    async def test_replace_stores_the_new_state(
        self, backend: Backend, users: ResourceType
    ) -> None:
        created = await backend.create(
            T1, users, user("bjensen", displayName="Babs", nickName="B", title="Guide")
        )
        new = user("bjensen", displayName="Barbara", emails=[{"value": "b@example.com"}])
        replaced = await backend.replace(
            T1, users, created["id"], copy.deepcopy(new), if_match=None
        )
        assert without_meta(replaced) == comparable(new), "attributes not in the new state go"
        assert replaced["id"] == created["id"]
        fetched = await backend.get(T1, users, created["id"])
        assert comparable(fetched) == comparable(replaced)

    async def test_replace_keeps_created_and_bumps_last_modified(
        self, backend: Backend, users: ResourceType, caps: Capabilities
    ) -> None:
        created = await backend.create(T1, users, user("bjensen"))
        replaced = await backend.replace(
            T1, users, created["id"], user("bjensen", title="x"), if_match=None
        )
        assert replaced["meta"]["created"] == created["meta"]["created"]
        assert replaced["meta"]["resourceType"] == "User"
        assert instant(replaced["meta"]["lastModified"]) >= instant(created["meta"]["lastModified"])
        assert "location" not in replaced["meta"]
        if caps.etag:
            assert version_number(replaced) > version_number(created)
            again = await backend.replace(
                T1, users, created["id"], user("bjensen", title="y"), if_match=None
            )
            assert version_number(again) > version_number(replaced)

    @pytest.mark.parametrize("rid", ODD_IDS[:6], ids=lambda r: repr(r)[:40])
    async def test_replace_unknown_is_not_found(
        self, backend: Backend, users: ResourceType, rid: str
    ) -> None:
        with pytest.raises(errors.NotFound):
            await backend.replace(T1, users, rid, user("ghost"), if_match=None)
        page = await self.all_of(backend, T1, users)
        assert page.resources == [], "replace of an unknown id must not create it"

    @needs("etag")
    async def test_if_match_exact_version(self, backend: Backend, users: ResourceType) -> None:
        created = await backend.create(T1, users, user("bjensen"))
        version = created["meta"]["version"]
        replaced = await backend.replace(
            T1, users, created["id"], user("bjensen", title="a"), if_match=version
        )
        assert replaced["title"] == "a"

    @needs("etag")
    async def test_if_match_star(self, backend: Backend, users: ResourceType) -> None:
        created = await backend.create(T1, users, user("bjensen"))
        replaced = await backend.replace(
            T1, users, created["id"], user("bjensen", title="a"), if_match="*"
        )
        assert replaced["title"] == "a"

    @needs("etag")
    async def test_if_match_list(self, backend: Backend, users: ResourceType) -> None:
        created = await backend.create(T1, users, user("bjensen"))
        n = version_number(created)
        if_match = f'W/"{n + 100}", {created["meta"]["version"]}, W/"{n + 200}"'
        replaced = await backend.replace(
            T1, users, created["id"], user("bjensen", title="a"), if_match=if_match
        )
        assert replaced["title"] == "a"

    @needs("etag")
    @pytest.mark.parametrize("stale", ["stale", "garbage", "list", "empty"])
    async def test_if_match_stale_is_precondition_failed(
        self, backend: Backend, users: ResourceType, stale: str
    ) -> None:
        created = await backend.create(T1, users, user("bjensen", title="before"))
        first = created["meta"]["version"]
        await backend.replace(T1, users, created["id"], user("bjensen", title="v2"), if_match=None)
        current = await backend.get(T1, users, created["id"])
        n = version_number(current)
        value = {
            "stale": first,
            "garbage": "not-an-etag",
            "list": f'W/"{n + 1}", {first}',
            "empty": '""',
        }[stale]
        with pytest.raises(errors.PreconditionFailed):
            await backend.replace(
                T1, users, created["id"], user("bjensen", title="lost"), if_match=value
            )
        assert comparable(await backend.get(T1, users, created["id"])) == comparable(current)

    @needs("etag")
    async def test_if_match_on_unknown_id_is_not_found(
        self, backend: Backend, users: ResourceType
    ) -> None:
        with pytest.raises(errors.NotFound):
            await backend.replace(T1, users, "does-not-exist", user("x"), if_match='W/"1"')

    @needs("etag")
    async def test_concurrent_replaces_with_same_if_match_one_wins(
        self, backend: Backend, users: ResourceType
    ) -> None:
        created = await backend.create(T1, users, user("bjensen"))
        version = created["meta"]["version"]
        results = await asyncio.gather(
            outcome(
                backend.replace(
                    T1, users, created["id"], user("bjensen", title="A"), if_match=version
                )
            ),
            outcome(
                backend.replace(
                    T1, users, created["id"], user("bjensen", title="B"), if_match=version
                )
            ),
        )
        winners = [r for r in results if isinstance(r, dict)]
        losers = [r for r in results if isinstance(r, errors.PreconditionFailed)]
        assert len(winners) == 1 and len(losers) == 1, results
        final = await backend.get(T1, users, created["id"])
        assert final["title"] == winners[0]["title"]
        assert version_number(final) == version_number(winners[0])

    async def test_replace_group_members(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        a, b, c = [(await backend.create(T1, users, user(n)))["id"] for n in ("a", "b", "c")]
        g = await backend.create(T1, groups, group("G", [a, b]))
        replaced = await backend.replace(T1, groups, g["id"], group("G2", [b, c]), if_match=None)
        assert member_values(replaced) == {b, c}
        assert replaced["displayName"] == "G2"
        fetched = await backend.get(T1, groups, g["id"])
        assert member_values(fetched) == {b, c}


# ==========================================================================================
# delete
# ==========================================================================================


class DeleteContract(ContractBase):
    async def test_delete_removes(self, backend: Backend, users: ResourceType) -> None:
        keep = await backend.create(T1, users, user("keep"))
        gone = await backend.create(T1, users, user("gone"))
        await backend.delete(T1, users, gone["id"], if_match=None)
        with pytest.raises(errors.NotFound):
            await backend.get(T1, users, gone["id"])
        page = await self.all_of(backend, T1, users)
        assert [r["id"] for r in page.resources] == [keep["id"]]
        assert page.total_results in (None, 1)

    async def test_second_delete_is_not_found(self, backend: Backend, users: ResourceType) -> None:
        created = await backend.create(T1, users, user("bjensen"))
        await backend.delete(T1, users, created["id"], if_match=None)
        with pytest.raises(errors.NotFound):
            await backend.delete(T1, users, created["id"], if_match=None)

    @pytest.mark.parametrize("rid", ODD_IDS[:6], ids=lambda r: repr(r)[:40])
    async def test_delete_unknown_is_not_found(
        self, backend: Backend, users: ResourceType, rid: str
    ) -> None:
        with pytest.raises(errors.NotFound):
            await backend.delete(T1, users, rid, if_match=None)

    async def test_deleted_user_leaves_its_groups(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        a = (await backend.create(T1, users, user("a")))["id"]
        b = (await backend.create(T1, users, user("b")))["id"]
        g1 = await backend.create(T1, groups, group("G1", [a, b]))
        g2 = await backend.create(T1, groups, group("G2", [a]))
        await backend.delete(T1, users, a, if_match=None)
        assert member_values(await backend.get(T1, groups, g1["id"])) == {b}
        assert member_values(await backend.get(T1, groups, g2["id"])) == set()
        page = await self.all_of(backend, T1, groups, self.parse(groups, f'members.value eq "{a}"'))
        assert page.resources == []

    async def test_deleted_group_leaves_user_groups(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        a = (await backend.create(T1, users, user("a")))["id"]
        g1 = await backend.create(T1, groups, group("G1", [a]))
        g2 = await backend.create(T1, groups, group("G2", [a]))
        await backend.delete(T1, groups, g1["id"], if_match=None)
        assert group_values(await backend.get(T1, users, a)) == {g2["id"]}

    async def test_recreate_after_delete_gets_a_new_resource(
        self, backend: Backend, users: ResourceType
    ) -> None:
        first = await backend.create(T1, users, user("bjensen", title="old"))
        await backend.delete(T1, users, first["id"], if_match=None)
        second = await backend.create(T1, users, user("bjensen"))
        assert "title" not in second
        with pytest.raises(errors.NotFound):
            await backend.get(T1, users, first["id"])

    @needs("etag")
    async def test_delete_if_match(self, backend: Backend, users: ResourceType) -> None:
        created = await backend.create(T1, users, user("bjensen"))
        first = created["meta"]["version"]
        await backend.replace(T1, users, created["id"], user("bjensen", title="2"), if_match=None)
        with pytest.raises(errors.PreconditionFailed):
            await backend.delete(T1, users, created["id"], if_match=first)
        current = await backend.get(T1, users, created["id"])
        await backend.delete(T1, users, created["id"], if_match=current["meta"]["version"])
        with pytest.raises(errors.NotFound):
            await backend.get(T1, users, created["id"])
        other = await backend.create(T1, users, user("other"))
        await backend.delete(T1, users, other["id"], if_match="*")
        with pytest.raises(errors.NotFound):
            await backend.get(T1, users, other["id"])


# ==========================================================================================
# uniqueness
# ==========================================================================================


class UniquenessContract(ContractBase):
    """``uniqueness: server`` attributes (userName case-insensitively; Group displayName as
    the schema declares) are unique per tenant."""

    @pytest.mark.parametrize("dup", ["bjensen@example.com", "BJensen@Example.COM"])
    async def test_duplicate_user_name_on_create(
        self, backend: Backend, users: ResourceType, dup: str
    ) -> None:
        await backend.create(T1, users, user("bjensen@example.com"))
        with pytest.raises(errors.Uniqueness) as info:
            await backend.create(T1, users, user(dup))
        assert "username" in info.value.detail.lower(), "the error names the attribute"
        page = await self.all_of(backend, T1, users)
        assert len(page.resources) == 1

    async def test_concurrent_duplicate_creates_one_wins(
        self, backend: Backend, users: ResourceType
    ) -> None:
        results = await asyncio.gather(
            outcome(backend.create(T1, users, user("race"))),
            outcome(backend.create(T1, users, user("RACE"))),
        )
        assert sum(isinstance(r, dict) for r in results) == 1, results
        assert sum(isinstance(r, errors.Uniqueness) for r in results) == 1, results

    async def test_duplicate_user_name_on_replace(
        self, backend: Backend, users: ResourceType
    ) -> None:
        await backend.create(T1, users, user("alice"))
        bob = await backend.create(T1, users, user("bob"))
        with pytest.raises(errors.Uniqueness):
            await backend.replace(T1, users, bob["id"], user("ALICE"), if_match=None)
        assert (await backend.get(T1, users, bob["id"]))["userName"] == "bob"

    async def test_replace_keeping_own_user_name(
        self, backend: Backend, users: ResourceType
    ) -> None:
        created = await backend.create(T1, users, user("bjensen"))
        replaced = await backend.replace(T1, users, created["id"], user("BJENSEN"), if_match=None)
        assert replaced["userName"] == "BJENSEN"

    async def test_user_name_is_free_after_rename_and_delete(
        self, backend: Backend, users: ResourceType
    ) -> None:
        a = await backend.create(T1, users, user("first"))
        await backend.replace(T1, users, a["id"], user("renamed"), if_match=None)
        b = await backend.create(T1, users, user("first"))
        await backend.delete(T1, users, b["id"], if_match=None)
        await backend.create(T1, users, user("FIRST"))

    @needs("native_patch")
    async def test_duplicate_user_name_on_patch(
        self, backend: Backend, users: ResourceType
    ) -> None:
        await backend.create(T1, users, user("alice"))
        bob = await backend.create(T1, users, user("bob"))
        op = PatchOp("replace", self.path(users, "userName"), "Alice")
        with pytest.raises(errors.Uniqueness):
            await backend.patch(T1, users, bob["id"], [op], if_match=None)
        assert (await backend.get(T1, users, bob["id"]))["userName"] == "bob"

    async def test_group_display_name_uniqueness_follows_schema(
        self, backend: Backend, groups: ResourceType
    ) -> None:
        defn = groups.lookup(None, "displayName")
        assert defn is not None
        await backend.create(T1, groups, group("Admins"))
        if defn.uniqueness == "none":
            await backend.create(T1, groups, group("Admins"))
            return
        with pytest.raises(errors.Uniqueness) as info:
            await backend.create(T1, groups, group("Admins" if defn.case_exact else "ADMINS"))
        assert "displayname" in info.value.detail.lower()

    async def test_user_and_group_names_do_not_collide(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        await backend.create(T1, users, user("same"))
        await backend.create(T1, groups, group("same"))


# ==========================================================================================
# PATCH
# ==========================================================================================


@needs("native_patch")
class PatchContract(ContractBase):
    """``patch`` applies ``PatchOp`` lists atomically, touching only what they name."""

    async def test_replace_add_remove(self, backend: Backend, users: ResourceType) -> None:
        created = await backend.create(
            T1, users, user("bjensen", displayName="Babs", nickName="B", title="Guide")
        )
        ops = [
            PatchOp("replace", self.path(users, "displayName"), "Barbara"),
            PatchOp(
                "add", self.path(users, "emails"), [{"value": "b@example.com", "type": "work"}]
            ),
            PatchOp("remove", self.path(users, "nickName")),
        ]
        patched = await backend.patch(T1, users, created["id"], ops, if_match=None)
        expected = user(
            "bjensen",
            displayName="Barbara",
            title="Guide",
            emails=[{"value": "b@example.com", "type": "work"}],
        )
        assert without_meta(patched) == comparable(expected)
        assert comparable(await backend.get(T1, users, created["id"])) == comparable(patched)

    async def test_patch_bumps_version_and_last_modified(
        self, backend: Backend, users: ResourceType, caps: Capabilities
    ) -> None:
        created = await backend.create(T1, users, user("bjensen"))
        op = PatchOp("replace", self.path(users, "title"), "x")
        patched = await backend.patch(T1, users, created["id"], [op], if_match=None)
        assert patched["meta"]["created"] == created["meta"]["created"]
        assert instant(patched["meta"]["lastModified"]) >= instant(created["meta"]["lastModified"])
        assert "location" not in patched["meta"]
        if caps.etag:
            assert version_number(patched) > version_number(created)

    async def test_patch_filtered_and_extension_paths(
        self, backend: Backend, users: ResourceType
    ) -> None:
        body = full_user()
        created = await backend.create(T1, users, copy.deepcopy(body))
        ops = [
            PatchOp("replace", self.path(users, 'emails[type eq "work"].value'), "new@example.com"),
            PatchOp("replace", self.path(users, f"{ENTERPRISE_URN}:department"), "Finance"),
            PatchOp("replace", self.path(users, "name.givenName"), "Babs"),
            PatchOp("add", self.path(users, f"{CONTRACT_EXTENSION_URN}:score"), 7),
        ]
        patched = await backend.patch(T1, users, created["id"], ops, if_match=None)
        expected = copy.deepcopy(body)
        expected["emails"][0]["value"] = "new@example.com"
        expected[ENTERPRISE_URN]["department"] = "Finance"
        expected["name"]["givenName"] = "Babs"
        expected[CONTRACT_EXTENSION_URN] = {"score": 7}
        assert without_meta(patched)[ENTERPRISE_URN] == expected[ENTERPRISE_URN]
        assert without_meta(patched)["emails"] == expected["emails"]
        assert patched["name"] == expected["name"]
        assert patched[CONTRACT_EXTENSION_URN] == {"score": 7}
        fetched = await backend.get(T1, users, created["id"])
        assert comparable(fetched) == comparable(patched)

    async def test_pathless_add(self, backend: Backend, users: ResourceType) -> None:
        """RFC 7644 3.5.2.1: without a path the value is a map of attributes to add."""
        created = await backend.create(T1, users, user("bjensen"))
        op = PatchOp("add", None, {"displayName": "Babs", "title": "Guide"})
        patched = await backend.patch(T1, users, created["id"], [op], if_match=None)
        assert patched["displayName"] == "Babs" and patched["title"] == "Guide"

    async def test_failed_patch_changes_nothing(
        self, backend: Backend, users: ResourceType
    ) -> None:
        """All or none: the second op has no target (RFC 7644 3.5.2.3 noTarget; a filter of
        only ``eq`` terms would create the element, quirk patch_filtered_replace_creates)."""
        created = await backend.create(
            T1, users, user("bjensen", emails=[{"value": "b@example.com", "type": "work"}])
        )
        ops = [
            PatchOp("replace", self.path(users, "displayName"), "changed"),
            PatchOp("replace", self.path(users, 'emails[type co "pager"].value'), "x"),
        ]
        with pytest.raises(errors.ScimError):
            await backend.patch(T1, users, created["id"], ops, if_match=None)
        assert comparable(await backend.get(T1, users, created["id"])) == comparable(created)

    @pytest.mark.parametrize("rid", ODD_IDS[:6], ids=lambda r: repr(r)[:40])
    async def test_patch_unknown_is_not_found(
        self, backend: Backend, users: ResourceType, rid: str
    ) -> None:
        op = PatchOp("replace", self.path(users, "displayName"), "x")
        with pytest.raises(errors.NotFound):
            await backend.patch(T1, users, rid, [op], if_match=None)

    @needs("etag")
    async def test_patch_if_match(self, backend: Backend, users: ResourceType) -> None:
        created = await backend.create(T1, users, user("bjensen"))
        op = PatchOp("replace", self.path(users, "title"), "one")
        first = await backend.patch(
            T1, users, created["id"], [op], if_match=created["meta"]["version"]
        )
        with pytest.raises(errors.PreconditionFailed):
            await backend.patch(T1, users, created["id"], [op], if_match=created["meta"]["version"])
        op2 = PatchOp("replace", self.path(users, "title"), "two")
        second = await backend.patch(T1, users, created["id"], [op2], if_match="*")
        assert version_number(second) > version_number(first)

    @needs("etag")
    async def test_concurrent_patches_with_same_if_match_one_wins(
        self, backend: Backend, users: ResourceType
    ) -> None:
        created = await backend.create(T1, users, user("bjensen"))
        version = created["meta"]["version"]
        results = await asyncio.gather(
            outcome(
                backend.patch(
                    T1,
                    users,
                    created["id"],
                    [PatchOp("replace", self.path(users, "title"), "A")],
                    if_match=version,
                )
            ),
            outcome(
                backend.patch(
                    T1,
                    users,
                    created["id"],
                    [PatchOp("replace", self.path(users, "title"), "B")],
                    if_match=version,
                )
            ),
        )
        winners = [r for r in results if isinstance(r, dict)]
        assert len(winners) == 1, results
        assert sum(isinstance(r, errors.PreconditionFailed) for r in results) == 1, results
        assert (await backend.get(T1, users, created["id"]))["title"] == winners[0]["title"]

    async def test_concurrent_patches_of_different_attributes_both_apply(
        self, backend: Backend, users: ResourceType
    ) -> None:
        """Without If-Match, each patch is applied to the state the other left."""
        created = await backend.create(T1, users, user("bjensen"))
        await asyncio.gather(
            backend.patch(
                T1,
                users,
                created["id"],
                [PatchOp("add", self.path(users, "title"), "T")],
                if_match=None,
            ),
            backend.patch(
                T1,
                users,
                created["id"],
                [PatchOp("add", self.path(users, "nickName"), "N")],
                if_match=None,
            ),
        )
        fetched = await backend.get(T1, users, created["id"])
        assert (fetched.get("title"), fetched.get("nickName")) == ("T", "N")


# ==========================================================================================
# Group membership
# ==========================================================================================


class MembershipContract(ContractBase):
    """Members are a relation: changed member by member, loaded only when asked for, and
    reflected in the User's computed ``groups``."""

    async def _users(self, backend: Backend, users: ResourceType, n: int) -> list[str]:
        return [(await backend.create(T1, users, user(f"member{i}")))["id"] for i in range(n)]

    async def test_create_with_members(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        a, b = await self._users(backend, users, 2)
        g = await backend.create(T1, groups, group("G", [a, b]))
        assert member_values(g) == {a, b}
        assert member_values(await backend.get(T1, groups, g["id"])) == {a, b}

    @needs("native_patch")
    async def test_member_add_remove_touch_only_named_members(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        a, b, c, d = await self._users(backend, users, 4)
        g = await backend.create(T1, groups, group("G", [a, b]))
        add = PatchOp("add", self.path(groups, "members"), [{"value": c}, {"value": a}])
        after_add = await backend.patch(T1, groups, g["id"], [add], if_match=None)
        assert member_values(after_add) == {a, b, c}
        assert len(after_add["members"]) == 3, "adding a present member must not duplicate it"
        remove = PatchOp("remove", self.path(groups, f'members[value eq "{b}"]'))
        after_remove = await backend.patch(T1, groups, g["id"], [remove], if_match=None)
        assert member_values(after_remove) == {a, c}
        assert after_remove["displayName"] == "G"
        setop = PatchOp("replace", self.path(groups, "members"), [{"value": c}, {"value": d}])
        after_set = await backend.patch(T1, groups, g["id"], [setop], if_match=None)
        assert member_values(after_set) == {c, d}
        clear = PatchOp("remove", self.path(groups, "members"))
        after_clear = await backend.patch(T1, groups, g["id"], [clear], if_match=None)
        assert member_values(after_clear) == set()
        assert member_values(await backend.get(T1, groups, g["id"])) == set()

    @needs("native_patch")
    async def test_pathless_member_add(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        """Okta/Entra send ``{"op": "add", "value": {"members": [...]}}`` without a path."""
        a, b = await self._users(backend, users, 2)
        g = await backend.create(T1, groups, group("G", [a]))
        op = PatchOp("add", None, {"members": [{"value": b}]})
        patched = await backend.patch(T1, groups, g["id"], [op], if_match=None)
        assert member_values(patched) == {a, b}

    @needs("native_patch")
    async def test_concurrent_member_adds_both_survive(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        """Membership is never rewritten whole: two concurrent adds both land."""
        ids = await self._users(backend, users, 6)
        g = await backend.create(T1, groups, group("G", ids[:2]))
        await asyncio.gather(
            *(
                backend.patch(
                    T1,
                    groups,
                    g["id"],
                    [PatchOp("add", self.path(groups, "members"), [{"value": uid}])],
                    if_match=None,
                )
                for uid in ids[2:]
            )
        )
        assert member_values(await backend.get(T1, groups, g["id"])) == set(ids)

    @needs("native_patch")
    async def test_member_patch_bumps_group_version(
        self, backend: Backend, users: ResourceType, groups: ResourceType, caps: Capabilities
    ) -> None:
        (a,) = await self._users(backend, users, 1)
        g = await backend.create(T1, groups, group("G"))
        add = PatchOp("add", self.path(groups, "members"), [{"value": a}])
        patched = await backend.patch(T1, groups, g["id"], [add], if_match=None)
        assert instant(patched["meta"]["lastModified"]) >= instant(g["meta"]["lastModified"])
        if caps.etag:
            assert version_number(patched) > version_number(g)

    async def test_load_members_false_omits_members(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        a, b = await self._users(backend, users, 2)
        g = await backend.create(T1, groups, group("G", [a, b]))
        light = OpContext(tenant="t1", principal="system", request_id="r", load_members=False)
        fetched = await backend.get(light, groups, g["id"])
        assert "members" not in fetched
        assert fetched["displayName"] == "G" and fetched["id"] == g["id"]
        page = await self.all_of(backend, light, groups)
        assert [r["id"] for r in page.resources] == [g["id"]]
        assert "members" not in page.resources[0]

    async def test_member_filter_without_loading_members(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        """Filtering on members still works when the response will not carry them."""
        a, b = await self._users(backend, users, 2)
        g1 = await backend.create(T1, groups, group("G1", [a]))
        await backend.create(T1, groups, group("G2", [b]))
        light = OpContext(tenant="t1", principal="system", request_id="r", load_members=False)
        page = await self.all_of(
            backend, light, groups, self.parse(groups, f'members.value eq "{a}"')
        )
        assert [r["id"] for r in page.resources] == [g1["id"]]
        assert "members" not in page.resources[0]

    @needs("native_patch")
    async def test_member_patch_without_loading_members(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        """The bulk of IdP traffic: member PATCHes whose response omits members. The change
        must land in full even though the backend is told not to read member rows back."""
        a, b, c = await self._users(backend, users, 3)
        g = await backend.create(T1, groups, group("G", [a, b]))
        light = OpContext(tenant="t1", principal="system", request_id="r", load_members=False)
        ops = [
            PatchOp("add", self.path(groups, "members"), [{"value": c}]),
            PatchOp("remove", self.path(groups, f'members[value eq "{a}"]')),
        ]
        patched = await backend.patch(light, groups, g["id"], ops, if_match=None)
        assert "members" not in patched
        assert member_values(await backend.get(T1, groups, g["id"])) == {b, c}
        assert group_values(await backend.get(T1, users, a)) == set()
        assert group_values(await backend.get(T1, users, c)) == {g["id"]}

    async def test_query_returns_members_when_asked(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        a, b = await self._users(backend, users, 2)
        g = await backend.create(T1, groups, group("G", [a, b]))
        page = await self.all_of(backend, T1, groups)
        assert comparable(page.resources[0]) == comparable(await backend.get(T1, groups, g["id"]))
        assert member_values(page.resources[0]) == {a, b}

    async def test_user_groups_are_computed(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        a, b = await self._users(backend, users, 2)
        g1 = await backend.create(T1, groups, group("Admins", [a]))
        g2 = await backend.create(T1, groups, group("Staff", [a, b]))
        fetched = await backend.get(T1, users, a)
        assert group_values(fetched) == {g1["id"], g2["id"]}
        names = {g["value"]: g.get("display") for g in fetched["groups"]}
        assert names[g1["id"]] in (None, "Admins") and names[g2["id"]] in (None, "Staff")
        assert group_values(await backend.get(T1, users, b)) == {g2["id"]}
        page = await self.all_of(backend, T1, users, self.parse(users, f'id eq "{a}"'))
        assert group_values(page.resources[0]) == {g1["id"], g2["id"]}

    async def test_user_groups_follow_membership_changes(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        a, b = await self._users(backend, users, 2)
        g = await backend.create(T1, groups, group("G", [a]))
        await backend.replace(T1, groups, g["id"], group("G", [b]), if_match=None)
        assert group_values(await backend.get(T1, users, a)) == set()
        assert group_values(await backend.get(T1, users, b)) == {g["id"]}

    async def test_member_filter(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        a, b, c = await self._users(backend, users, 3)
        g1 = await backend.create(T1, groups, group("G1", [a, b]))
        await backend.create(T1, groups, group("G2", [c]))
        page = await self.all_of(backend, T1, groups, self.parse(groups, f'members.value eq "{b}"'))
        assert [r["id"] for r in page.resources] == [g1["id"]]
        assert page.total_results in (None, 1)


# ==========================================================================================
# tenant isolation
# ==========================================================================================


@needs("multi_tenant")
class TenantIsolationContract(ContractBase):
    """A resource of another tenant does not exist, whatever the method."""

    async def _seed_tenants(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        u = await backend.create(T1, users, user("bjensen", displayName="Secret Name"))
        g = await backend.create(T1, groups, group("T1 Group", [u["id"]]))
        # Re-read: the user's computed ``groups`` now names the group.
        return await backend.get(T1, users, u["id"]), g

    async def test_get(self, backend: Backend, users: ResourceType, groups: ResourceType) -> None:
        u, g = await self._seed_tenants(backend, users, groups)
        with pytest.raises(errors.NotFound):
            await backend.get(T2, users, u["id"])
        with pytest.raises(errors.NotFound):
            await backend.get(T2, groups, g["id"])

    async def test_replace(
        self, backend: Backend, users: ResourceType, groups: ResourceType, caps: Capabilities
    ) -> None:
        u, g = await self._seed_tenants(backend, users, groups)
        with pytest.raises(errors.NotFound):
            await backend.replace(T2, users, u["id"], user("hijack"), if_match=None)
        with pytest.raises(errors.NotFound):
            await backend.replace(T2, groups, g["id"], group("hijack"), if_match=None)
        if caps.etag:
            with pytest.raises(errors.NotFound):
                await backend.replace(T2, users, u["id"], user("hijack"), if_match="*")
        assert comparable(await backend.get(T1, users, u["id"])) == comparable(u)
        assert member_values(await backend.get(T1, groups, g["id"])) == {u["id"]}

    @needs("native_patch")
    async def test_patch(self, backend: Backend, users: ResourceType, groups: ResourceType) -> None:
        u, g = await self._seed_tenants(backend, users, groups)
        with pytest.raises(errors.NotFound):
            await backend.patch(
                T2,
                users,
                u["id"],
                [PatchOp("replace", self.path(users, "displayName"), "x")],
                if_match=None,
            )
        with pytest.raises(errors.NotFound):
            await backend.patch(
                T2,
                groups,
                g["id"],
                [PatchOp("remove", self.path(groups, "members"))],
                if_match=None,
            )
        assert comparable(await backend.get(T1, users, u["id"])) == comparable(u)
        assert member_values(await backend.get(T1, groups, g["id"])) == {u["id"]}

    async def test_delete(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        u, g = await self._seed_tenants(backend, users, groups)
        with pytest.raises(errors.NotFound):
            await backend.delete(T2, users, u["id"], if_match=None)
        with pytest.raises(errors.NotFound):
            await backend.delete(T2, groups, g["id"], if_match=None)
        await backend.get(T1, users, u["id"])
        assert member_values(await backend.get(T1, groups, g["id"])) == {u["id"]}

    async def test_query(self, backend: Backend, users: ResourceType, groups: ResourceType) -> None:
        u, _ = await self._seed_tenants(backend, users, groups)
        mine = await backend.create(T2, users, user("other-tenant"))
        page = await self.all_of(backend, T2, users)
        assert [r["id"] for r in page.resources] == [mine["id"]]
        assert page.total_results in (None, 1)
        for text in (f'id eq "{u["id"]}"', 'userName eq "bjensen"', "userName pr"):
            page = await self.all_of(backend, T2, users, self.parse(users, text))
            assert u["id"] not in {r["id"] for r in page.resources}, text
        groups_page = await self.all_of(backend, T2, groups)
        assert groups_page.resources == [] and groups_page.total_results in (None, 0)
        by_member = self.parse(groups, f'members.value eq "{u["id"]}"')
        assert (await self.all_of(backend, T2, groups, by_member)).resources == []

    async def test_uniqueness_is_per_tenant(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        await backend.create(T1, users, user("bjensen@example.com"))
        await backend.create(T2, users, user("BJENSEN@example.com"))
        await backend.create(T1, groups, group("Admins"))
        await backend.create(T2, groups, group("Admins"))
        with pytest.raises(errors.Uniqueness):
            await backend.create(T2, users, user("bjensen@example.com"))

    async def test_member_references_do_not_cross_tenants(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        """A t2 group naming a t1 user's id neither leaks that user nor shows up in its
        ``groups``; the backend may also refuse the reference."""
        u, _ = await self._seed_tenants(backend, users, groups)
        result = await outcome(backend.create(T2, groups, group("Sneaky", [u["id"]])))
        if isinstance(result, Exception):
            assert isinstance(result, errors.ScimError), repr(result)
        else:
            for member in result.get("members") or []:
                assert member.get("display") not in ("Secret Name", "bjensen"), member
            fetched = await backend.get(T2, groups, result["id"])
            for member in fetched.get("members") or []:
                assert member.get("display") not in ("Secret Name", "bjensen"), member
        t1_user = await backend.get(T1, users, u["id"])
        assert all(g.get("display") != "Sneaky" for g in t1_user.get("groups") or [])
        t1_groups = await self.all_of(backend, T1, groups)
        assert [g["displayName"] for g in t1_groups.resources] == ["T1 Group"]


# ==========================================================================================
# filtering (the in-memory evaluator is the oracle)
# ==========================================================================================

_EXT = CONTRACT_EXTENSION_URN
_ENT = ENTERPRISE_URN

#: Filters over the corpus of ``scimd.testing.samples.filter_corpus``: every operator on
#: every attribute type, logic, value paths, extensions, missing attributes.
USER_FILTERS: tuple[str, ...] = (
    # string, caseExact false
    'userName eq "ALICE@example.com"',
    'userName ne "carol"',
    'userName co "SMITH"',
    'userName sw "b"',
    'userName ew ".COM"',
    'userName gt "dave"',
    'userName ge "dave"',
    'userName lt "carol"',
    'userName le "Carol"',
    'userName eq "frank.o\'neil@example.com"',
    'userName co "%"',
    'userName co "_"',
    'userName sw "jü"',
    "userName pr",
    'displayName co "\\"the tank\\""',
    "displayName pr",
    "not (displayName pr)",
    'title eq "engineer"',
    'title ne "engineer"',
    'title gt "e"',
    "title pr",
    'externalId eq "ext-2"',
    'externalId sw "ext"',
    'userType eq "contractor"',
    # boolean
    "active eq true",
    "active eq false",
    "active ne true",
    "active ne false",
    "active pr",
    # complex single-valued
    'name.givenName eq "alice"',
    'name.familyName eq "SMITH"',
    'name.familyName sw "m"',
    "name.givenName pr",
    "name pr",
    # multi-valued complex
    'emails.value co "example.org"',
    'emails.value eq "carol@work.example.com"',
    'emails.type eq "work"',
    "emails.primary eq true",
    "emails pr",
    "emails.type pr",
    "phoneNumbers pr",
    'emails[type eq "work" and primary eq true]',
    'emails[type eq "home"].value ew ".ORG"',
    'emails[type eq "work" and value co "example.com"]',
    'emails[not (type eq "work")]',
    'emails[type eq "work" or type eq "home"]',
    'emails[type eq "home" and primary eq true]',
    'emails[value sw "frank"] and emails[primary eq true]',
    # enterprise extension (string, complex)
    f'{_ENT}:department eq "sales"',
    f'{_ENT}:department ne "Engineering"',
    f'{_ENT}:employeeNumber gt "100"',
    f'{_ENT}:employeeNumber le "100"',
    f"{_ENT}:employeeNumber pr",
    f'{_ENT}:manager.value eq "m-1"',
    f"{_ENT}:manager.value pr",
    f'{_ENT}:manager.value ne "m-1"',
    # contract extension: integer
    f"{_EXT}:score eq 10",
    f"{_EXT}:score ne 10",
    f"{_EXT}:score gt 5",
    f"{_EXT}:score ge 5",
    f"{_EXT}:score lt 0",
    f"{_EXT}:score le 0",
    f"{_EXT}:score gt -5",
    f"{_EXT}:score pr",
    # decimal
    f"{_EXT}:ratio gt 0.5",
    f"{_EXT}:ratio le 0.25",
    f"{_EXT}:ratio eq 0",
    f"{_EXT}:ratio lt 100",
    # dateTime
    f'{_EXT}:since gt "2020-01-01T00:00:00Z"',
    f'{_EXT}:since ge "2020-01-15T08:30:00Z"',
    f'{_EXT}:since eq "2020-01-15T08:30:00Z"',
    f'{_EXT}:since eq "2020-01-15T08:30:00.000Z"',
    f'{_EXT}:since lt "2020-01-15T09:30:00+01:00"',
    f'{_EXT}:since le "1999-01-01T00:00:00Z"',
    f'{_EXT}:since ne "2020-01-15T08:30:00Z"',
    f"{_EXT}:since pr",
    # boolean in an extension
    f"{_EXT}:flag eq true",
    f"{_EXT}:flag eq false",
    f"{_EXT}:flag ne true",
    # caseExact string
    f'{_EXT}:code eq "abc"',
    f'{_EXT}:code ne "abc"',
    f'{_EXT}:code co "B"',
    f'{_EXT}:code sw "A"',
    f'{_EXT}:code gt "XY"',
    # multi-valued string
    f'{_EXT}:tags eq "red"',
    f'{_EXT}:tags eq "RED"',
    f'{_EXT}:tags co "e"',
    f'{_EXT}:tags ne "red"',
    f"{_EXT}:tags pr",
    # common attributes
    'meta.resourceType eq "User"',
    'meta.created gt "2000-01-01T00:00:00Z"',
    'meta.lastModified lt "2000-01-01T00:00:00Z"',
    "meta.created pr",
    # logic and precedence
    'title eq "engineer" and active eq true',
    'title eq "engineer" or title eq "manager"',
    'active eq true and (title eq "engineer" or title eq "manager")',
    'active eq true and title eq "engineer" or title eq "manager"',
    'title eq "manager" or active eq false and title pr',
    'not (title eq "engineer")',
    "not (active eq true) and not (title pr)",
    "not (not (active eq true))",
    f'{_EXT}:score gt 0 and {_EXT}:score lt 50 and not ({_EXT}:tags eq "red")',
    '(userName sw "a" or userName sw "b") and emails[type eq "work"]',
    'userName eq "nobody"',
)


def _filter_id(text: str) -> str:
    return text.replace(f"{_EXT}:", "ext:").replace(f"{_ENT}:", "ent:")


class FilterContract(ContractBase):
    """Every filter returns exactly the resources the reference evaluator matches."""

    async def _corpus(
        self, backend: Backend, users: ResourceType, ctx: OpContext = T1
    ) -> list[dict[str, Any]]:
        created = [await backend.create(ctx, users, body) for body in filter_corpus()]
        # The oracle sees the resources as the backend returns them (with its own meta).
        return [await backend.get(ctx, users, c["id"]) for c in created]

    async def _check(
        self,
        backend: Backend,
        rtype: ResourceType,
        text: str,
        corpus: Sequence[Mapping[str, Any]],
        ctx: OpContext = T1,
    ) -> None:
        from scimd.query.evaluate import matches

        filt = self.parse(rtype, text)
        reason = unsupported_filter_reason(backend.capabilities, rtype, filt)
        if reason:
            pytest.skip(reason)
        expected = {str(r["id"]) for r in corpus if matches(filt, r)}
        page = await self.all_of(backend, ctx, rtype, filt)
        got = [str(r["id"]) for r in page.resources]
        names = {str(r["id"]): r.get("userName", r.get("displayName")) for r in corpus}
        assert len(got) == len(set(got)), f"{text}: a resource is returned twice"
        assert set(got) == expected, (
            f"{text}: backend returned {sorted(names.get(i, i) for i in got)}, "
            f"reference evaluator matches {sorted(names[i] for i in expected)}"
        )
        assert page.total_results in (None, len(expected)), f"{text}: totalResults"
        by_id = {str(r["id"]): r for r in corpus}
        for resource in page.resources:
            assert comparable(resource) == comparable(by_id[str(resource["id"])]), text

    @pytest.mark.parametrize("text", USER_FILTERS, ids=_filter_id)
    async def test_user_filter(self, backend: Backend, users: ResourceType, text: str) -> None:
        corpus = await self._corpus(backend, users)
        if backend.capabilities.multi_tenant:
            # The same corpus in another tenant must never leak into t1's results.
            await self._corpus(backend, users, T2)
        await self._check(backend, users, text, corpus)

    async def test_id_filters(self, backend: Backend, users: ResourceType) -> None:
        corpus = await self._corpus(backend, users)
        first, second = corpus[0]["id"], corpus[1]["id"]
        for text in (
            f'id eq "{first}"',
            f'id ne "{first}"',
            f'id eq "{first}" or id eq "{second}"',
            'id eq "does-not-exist"',
            "id pr",
            f'meta.created ge "{corpus[5]["meta"]["created"]}"',
            f'meta.lastModified le "{corpus[5]["meta"]["lastModified"]}"',
        ):
            await self._check(backend, users, text, corpus)

    async def test_no_filter_returns_everything(
        self, backend: Backend, users: ResourceType
    ) -> None:
        corpus = await self._corpus(backend, users)
        page = await self.all_of(backend, T1, users)
        assert {r["id"] for r in page.resources} == {r["id"] for r in corpus}
        assert page.total_results in (None, len(corpus))

    async def test_group_filters(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        corpus = await self._corpus(backend, users)
        ids = [str(r["id"]) for r in corpus]
        for name, members in (("Admins", ids[:3]), ("admins-2", ids[2:5]), ("Empty", [])):
            await backend.create(T1, groups, group(name, members))
        stored = (await self.all_of(backend, T1, groups)).resources
        for text in (
            'displayName eq "ADMINS"',
            'displayName sw "admins"',
            f'members.value eq "{ids[2]}"',
            f'members[value eq "{ids[0]}"]',
            "members pr",
            "not (members pr)",
            f'members.value eq "{ids[0]}" and members.value eq "{ids[1]}"',
            'members.value eq "nobody"',
        ):
            await self._check(backend, groups, text, stored)


# ==========================================================================================
# sorting
# ==========================================================================================

SORT_PATHS: tuple[str, ...] = (
    "userName",
    "title",
    "displayName",
    "name.familyName",
    "active",
    "externalId",
    f"{_EXT}:score",
    f"{_EXT}:ratio",
    f"{_EXT}:since",
    f"{_EXT}:code",
    f"{_ENT}:department",
    "meta.created",
)


def expected_order(
    resources: Sequence[Mapping[str, Any]], path: Any, *, descending: bool = False
) -> list[str]:
    """Ids in the contract order, the reference ``scimd.query.sort.sort_key``: by sort value
    (caseExact-aware), resources without a value last in both directions, ties by id
    (descending sorts are the exact reverse except that the valueless group stays last)."""
    from scimd.query.sort import sort_key

    spec = SortSpec(path, descending=descending)
    return [str(r["id"]) for r in sorted(resources, key=lambda r: sort_key(r, spec))]


@needs("sort")
class SortContract(ContractBase):
    """``sortBy`` orders by the attribute (caseExact-aware), values before unassigned ones,
    then by id."""

    @pytest.mark.parametrize("text", SORT_PATHS, ids=_filter_id)
    async def test_ascending(self, backend: Backend, users: ResourceType, text: str) -> None:
        for body in filter_corpus():
            await backend.create(T1, users, body)
        corpus = (await self.all_of(backend, T1, users)).resources
        path = self.attr_path(users, text)
        page = await self.all_of(backend, T1, users, sort=SortSpec(path))
        names = {r["id"]: r["userName"] for r in corpus}
        got = [names[r["id"]] for r in page.resources]
        assert got == [names[i] for i in expected_order(corpus, path)], text

    @pytest.mark.parametrize("text", SORT_PATHS, ids=_filter_id)
    async def test_descending(self, backend: Backend, users: ResourceType, text: str) -> None:
        """Descending reverses values and ties; valueless resources stay last."""
        for body in filter_corpus():
            await backend.create(T1, users, body)
        corpus = (await self.all_of(backend, T1, users)).resources
        path = self.attr_path(users, text)
        page = await self.all_of(backend, T1, users, sort=SortSpec(path, descending=True))
        names = {r["id"]: r["userName"] for r in corpus}
        got = [names[r["id"]] for r in page.resources]
        assert got == [names[i] for i in expected_order(corpus, path, descending=True)], text

    async def test_sort_with_filter_and_paging(
        self, backend: Backend, users: ResourceType, caps: Capabilities
    ) -> None:
        self.require(caps, "index_paging")
        for body in filter_corpus():
            await backend.create(T1, users, body)
        corpus = (await self.all_of(backend, T1, users)).resources
        from scimd.query.evaluate import matches

        filt = self.parse(users, "title pr")
        path = self.attr_path(users, "title")
        want = expected_order([r for r in corpus if matches(filt, r)], path)
        got: list[str] = []
        for start in range(1, len(want) + 1, 3):
            q = Query(filter=filt, sort=SortSpec(path), start_index=start, count=3)
            page = await backend.query(T1, users, q)
            assert page.total_results in (None, len(want))
            got.extend(r["id"] for r in page.resources)
        assert got == want


# ==========================================================================================
# index paging
# ==========================================================================================


@needs("index_paging")
class IndexPagingContract(ContractBase):
    """``startIndex``/``count`` (RFC 7644 3.4.2.4): 1-based, exact totals, count=0."""

    async def _seed_pages(self, backend: Backend, users: ResourceType, n: int = 11) -> None:
        for i in range(n):
            await backend.create(T1, users, user(f"page{i:02d}", title=f"t{i % 3}"))

    @pytest.mark.parametrize("count", [1, 3, 4, 11, 50])
    async def test_pages_cover_everything_once(
        self, backend: Backend, users: ResourceType, count: int
    ) -> None:
        await self._seed_pages(backend, users)
        seen: list[str] = []
        start = 1
        while True:
            page = await backend.query(T1, users, Query(start_index=start, count=count))
            assert page.total_results == 11
            assert len(page.resources) == min(count, max(0, 11 - start + 1))
            if not page.resources:
                break
            seen.extend(r["id"] for r in page.resources)
            start += count
        assert len(seen) == 11 and len(set(seen)) == 11

    @needs("sort")
    async def test_sorted_pages(self, backend: Backend, users: ResourceType) -> None:
        await self._seed_pages(backend, users)
        path = self.attr_path(users, "userName")
        full = await self.all_of(backend, T1, users, sort=SortSpec(path, descending=True))
        ids = [r["id"] for r in full.resources]
        for start, count in ((1, 5), (6, 5), (11, 5), (3, 2), (10, 100)):
            q = Query(sort=SortSpec(path, descending=True), start_index=start, count=count)
            page = await backend.query(T1, users, q)
            assert [r["id"] for r in page.resources] == ids[start - 1 : start - 1 + count]
            assert page.total_results == 11

    async def test_count_zero_returns_only_the_total(
        self, backend: Backend, users: ResourceType
    ) -> None:
        await self._seed_pages(backend, users)
        page = await backend.query(T1, users, Query(count=0))
        assert page.resources == [] and page.total_results == 11
        filt = self.parse(users, 'title eq "t0"')
        page = await backend.query(T1, users, Query(filter=filt, count=0))
        assert page.resources == [] and page.total_results == 4

    async def test_start_index_past_the_end(self, backend: Backend, users: ResourceType) -> None:
        await self._seed_pages(backend, users)
        page = await backend.query(T1, users, Query(start_index=12, count=10))
        assert page.resources == [] and page.total_results == 11
        page = await backend.query(T1, users, Query(start_index=1000, count=10))
        assert page.resources == [] and page.total_results == 11

    async def test_filtered_total_is_exact(self, backend: Backend, users: ResourceType) -> None:
        await self._seed_pages(backend, users)
        filt = self.parse(users, 'title eq "t1" or title eq "t2"')
        page = await backend.query(T1, users, Query(filter=filt, start_index=2, count=3))
        assert page.total_results == 7 and len(page.resources) == 3

    async def test_without_total(self, backend: Backend, users: ResourceType) -> None:
        """``want_total=False`` lets a backend skip counting; the page itself is unchanged."""
        await self._seed_pages(backend, users)
        full = await backend.query(T1, users, Query(start_index=4, count=5))
        page = await backend.query(T1, users, Query(start_index=4, count=5, want_total=False))
        assert ids_of(page) == ids_of(full) and len(page.resources) == 5
        assert page.total_results in (None, 11)

    async def test_empty_store(self, backend: Backend, users: ResourceType) -> None:
        page = await backend.query(T1, users, Query())
        assert page.resources == [] and page.total_results == 0


# ==========================================================================================
# cursor paging
# ==========================================================================================


@needs("cursor")
class CursorPagingContract(ContractBase):
    """Keyset paging (RFC 9865): ``next_keyset``/``prev_keyset`` walk the whole result in
    order, without skips or repeats, also while resources come and go."""

    async def _seed_cursor(self, backend: Backend, users: ResourceType, n: int = 10) -> None:
        for i in range(n):
            extra = {"title": f"t{i % 4}"} if i % 5 else {}
            await backend.create(T1, users, user(f"cur{i:02d}", **extra))

    async def _walk(
        self,
        backend: Backend,
        users: ResourceType,
        *,
        count: int,
        sort: SortSpec | None = None,
        filt: Any = None,
        between: Callable[[int], Any] | None = None,
    ) -> list[Page]:
        pages: list[Page] = []
        keyset: Keyset | None = None
        for _ in range(1000):
            q = Query(filter=filt, sort=sort, paging="cursor", keyset=keyset, count=count)
            page = await backend.query(T1, users, q)
            ids = [r["id"] for r in page.resources]
            assert len(ids) <= count
            if pages:
                assert page.prev_keyset is not None, "a page after the first has a previous one"
            else:
                assert page.prev_keyset is None, "the first page has no previous page"
            pages.append(page)
            if page.next_keyset is None:
                return pages
            assert ids, "an empty page must not announce a next page"
            assert page.next_keyset.direction == "next"
            keyset = page.next_keyset
            if between is not None:
                await between(len(pages))
        raise AssertionError("cursor paging does not terminate")

    @pytest.mark.parametrize("count", [1, 3, 5, 10, 11])
    async def test_forward_walk_without_sort(
        self, backend: Backend, users: ResourceType, count: int
    ) -> None:
        await self._seed_cursor(backend, users)
        pages = [ids_of(p) for p in await self._walk(backend, users, count=count)]
        flat = [i for p in pages for i in p]
        all_ids = {r["id"] for r in (await self.all_of(backend, T1, users)).resources}
        assert len(flat) == len(set(flat)) and set(flat) == all_ids
        assert all(len(p) == count for p in pages[:-1]), "only the last page may be short"
        assert pages[-1], "the last page holds the last resource"

    @needs("sort")
    @pytest.mark.parametrize(
        "text", ["userName", "title", f"{_EXT}:score", "meta.created"], ids=_filter_id
    )
    @pytest.mark.parametrize("descending", [False, True])
    async def test_forward_and_back_with_sort(
        self, backend: Backend, users: ResourceType, text: str, descending: bool
    ) -> None:
        for body in filter_corpus():
            await backend.create(T1, users, body)
        sort = SortSpec(self.attr_path(users, text), descending=descending)
        full = [r["id"] for r in (await self.all_of(backend, T1, users, sort=sort)).resources]
        walked = await self._walk(backend, users, count=5, sort=sort)
        pages = [ids_of(p) for p in walked]
        assert [i for p in pages for i in p] == full, "cursor order equals the sorted order"
        # Walk back from the last page with prev_keyset.
        back: list[list[str]] = []
        page = walked[-1]
        while page.prev_keyset is not None:
            assert page.prev_keyset.direction == "prev"
            q = Query(sort=sort, paging="cursor", keyset=page.prev_keyset, count=5)
            page = await backend.query(T1, users, q)
            back.append(ids_of(page))
            assert len(back) <= len(pages), "prev paging does not terminate"
        assert back == list(reversed(pages[:-1])), "prev pages are the pages before, in order"

    async def test_totals_in_cursor_mode(self, backend: Backend, users: ResourceType) -> None:
        await self._seed_cursor(backend, users)
        page = await backend.query(T1, users, Query(paging="cursor", count=3))
        assert page.total_results in (None, 10)
        assert page.next_keyset is not None

    async def test_filtered_walk(self, backend: Backend, users: ResourceType) -> None:
        for body in filter_corpus():
            await backend.create(T1, users, body)
        filt = self.parse(users, "title pr or active eq false")
        want = {r["id"] for r in (await self.all_of(backend, T1, users, filt)).resources}
        pages = await self._walk(backend, users, count=2, filt=filt)
        flat = [i for p in pages for i in ids_of(p)]
        assert len(flat) == len(set(flat)) and set(flat) == want

    @needs("sort")
    async def test_inserts_and_deletes_between_pages(
        self, backend: Backend, users: ResourceType
    ) -> None:
        """Resources added behind the cursor are not seen, ones added ahead are, deleted ones
        are not, and deleting the resource the cursor points at does not break the walk."""
        created = {}
        for name in ("b", "d", "f", "h", "j", "l", "n", "p"):
            created[name] = (await backend.create(T1, users, user(name)))["id"]
        sort = SortSpec(self.attr_path(users, "userName"))
        added: dict[str, str] = {}

        async def between(pages_done: int) -> None:
            if pages_done == 1:  # seen: b d f
                added["a"] = (await backend.create(T1, users, user("a")))["id"]  # behind
                added["g"] = (await backend.create(T1, users, user("g")))["id"]  # ahead
                await backend.delete(T1, users, created["f"], if_match=None)  # the cursor row
                await backend.delete(T1, users, created["j"], if_match=None)  # ahead
            if pages_done == 2:  # seen: g h l
                added["m"] = (await backend.create(T1, users, user("m")))["id"]  # ahead
                added["c"] = (await backend.create(T1, users, user("c")))["id"]  # behind

        pages = await self._walk(backend, users, count=3, sort=sort, between=between)
        ids = {**created, **added}
        names = {v: k for k, v in ids.items()}
        walked = [names[i] for p in pages for i in ids_of(p)]
        assert walked == ["b", "d", "f", "g", "h", "l", "m", "n", "p"]

    async def test_empty_result(self, backend: Backend, users: ResourceType) -> None:
        page = await backend.query(T1, users, Query(paging="cursor", count=5))
        assert page.resources == [] and page.next_keyset is None and page.prev_keyset is None
        assert page.total_results in (None, 0)


# ==========================================================================================
# errors
# ==========================================================================================


class ErrorContract(ContractBase):
    """Whatever the input, a backend raises ``scimd.errors`` classes, never driver errors."""

    @pytest.mark.parametrize("rid", ODD_IDS, ids=lambda r: repr(r)[:40])
    async def test_odd_ids_everywhere(
        self, backend: Backend, users: ResourceType, groups: ResourceType, rid: str
    ) -> None:
        caps = backend.capabilities
        await backend.create(T1, users, user("someone"))
        attempts: list[Callable[[], Any]] = [
            lambda: backend.get(T1, users, rid),
            lambda: backend.get(T1, groups, rid),
            lambda: backend.replace(T1, users, rid, user("x"), if_match=None),
            lambda: backend.delete(T1, users, rid, if_match=None),
            lambda: backend.delete(T1, groups, rid, if_match=None),
        ]
        if caps.native_patch:
            op = PatchOp("replace", self.path(users, "title"), "x")
            attempts.append(lambda: backend.patch(T1, users, rid, [op], if_match=None))
        if caps.etag:
            attempts.append(lambda: backend.replace(T1, users, rid, user("x"), if_match=rid or "*"))
        for attempt in attempts:
            result = await outcome(attempt())
            assert isinstance(result, errors.NotFound), repr(result)

    @pytest.mark.parametrize(
        "text",
        [
            'active eq "true"',
            "userName eq true",
            "userName gt 5",
            f'{_EXT}:score eq "10"',
            f"{_EXT}:score gt 1.5",
            f"{_EXT}:since gt 5",
            f'{_EXT}:since gt "not a date"',
            f'{_EXT}:flag eq "yes"',
            f'{_EXT}:ratio lt "x"',
            "meta.created eq true",
            'userName eq "' + "x" * 5000 + '"',
            'displayName co "\\u0000"',
        ],
        ids=lambda t: _filter_id(t)[:40],
    )
    async def test_type_mismatched_filters(
        self, backend: Backend, users: ResourceType, text: str
    ) -> None:
        """Filters the parser lets through with a value of the wrong type: the backend
        answers with a page or a SCIM error (400 invalidFilter), never a driver error."""
        for body in filter_corpus():
            await backend.create(T1, users, body)
        try:
            filt = self.parse(users, text)
        except errors.ScimError:
            return  # refused by the parser already: nothing reaches a backend
        reason = unsupported_filter_reason(backend.capabilities, users, filt)
        if reason:
            pytest.skip(reason)
        result = await outcome(self.all_of(backend, T1, users, filt))
        assert isinstance(result, Page | errors.ScimError), repr(result)

    @needs("etag")
    @pytest.mark.parametrize(
        "if_match", ['W/"', "W/", '"', 'W/"1', "\x00", ",", " ", 'W/"99999999999999999999999"']
    )
    async def test_malformed_if_match(
        self, backend: Backend, users: ResourceType, if_match: str
    ) -> None:
        created = await backend.create(T1, users, user("bjensen"))
        with pytest.raises(errors.PreconditionFailed):
            await backend.replace(T1, users, created["id"], user("bjensen"), if_match=if_match)

    @needs("cursor")
    @pytest.mark.parametrize(
        "keyset",
        [
            Keyset(sort_value=None, id="does-not-exist"),
            Keyset(sort_value=12, id="' OR 1=1 --"),
            Keyset(sort_value=True, id="", direction="prev"),
            Keyset(sort_value="\x00", id="%"),
        ],
        ids=["unknown", "injection", "empty-prev", "nul"],
    )
    async def test_odd_keysets(self, backend: Backend, users: ResourceType, keyset: Keyset) -> None:
        """A keyset that names no resource is a position, not an error; anything a backend
        rejects is rejected with a SCIM error."""
        for i in range(3):
            await backend.create(T1, users, user(f"k{i}"))
        result = await outcome(
            backend.query(T1, users, Query(paging="cursor", keyset=keyset, count=2))
        )
        assert isinstance(result, Page | errors.ScimError), repr(result)


class BackendContract(
    CreateGetContract,
    ReplaceContract,
    DeleteContract,
    UniquenessContract,
    PatchContract,
    MembershipContract,
    TenantIsolationContract,
    FilterContract,
    SortContract,
    IndexPagingContract,
    CursorPagingContract,
    ErrorContract,
):
    """The whole contract. Subclass it as ``Test<YourBackend>Contract`` and override the
    ``backend_factory`` fixture (plus ``backend_options``) or the ``backend`` fixture."""
