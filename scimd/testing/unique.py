"""Contract tests for derived unique keys (``Capabilities.unique_keys``, issue 7 item 4).

A backend that declares ``"email"`` in ``Capabilities.unique_keys`` keeps the normalised
primary email of every User (``scimd.store.unique_keys.derive_keys``) and, when a write's
``OpContext.unique_keys`` asks for it, refuses in the write's own transaction a key that
another User of the tenant holds (409 ``uniqueness`` naming the email). Run it like the
rest of the suite::

    class TestMyBackendUniqueKeys(UniqueKeysContract):
        @pytest.fixture
        def backend_factory(self): ...

A backend that does not declare the capability skips these tests, naming it (the service
then falls back to its in-process check, which is not safe across processes).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from scimd import errors
from scimd.backend import Backend, BackendEnv, OpContext, PatchOp
from scimd.schema.model import ResourceType, SchemaRegistry
from scimd.store.unique_keys import EMAIL
from scimd.testing.contract import T1, T2, ContractBase, outcome
from scimd.testing.samples import group, user

__all__ = ["UniqueKeysContract"]

E1 = OpContext(T1.tenant, T1.principal, T1.request_id, unique_keys=frozenset({EMAIL}))
E2 = OpContext(T2.tenant, T2.principal, T2.request_id, unique_keys=frozenset({EMAIL}))


RACE = ("Race@Example.com", "race@example.COM")


def with_email(name: str, email: str, **extra: Any) -> dict[str, Any]:
    return user(name, emails=[{"value": email, "type": "work", "primary": True}], **extra)


class UniqueKeysContract(ContractBase):
    """The normalised primary email, enforced by the backend on request."""

    @pytest.fixture(autouse=True)
    def _unique_keys_gate(self, backend: Backend) -> None:
        if EMAIL not in getattr(backend.capabilities, "unique_keys", frozenset()):
            pytest.skip("backend capability 'unique_keys' does not include 'email'")

    @pytest_asyncio.fixture(loop_scope="function")
    async def second_backend(
        self,
        backend: Backend,
        backend_factory: Callable[[BackendEnv], Backend],
        backend_options: Mapping[str, Any],
        contract_registry: SchemaRegistry,
        tmp_path: Path,
    ) -> AsyncIterator[Backend]:
        """Another instance on the same store (as another scimd process would open it)."""
        env = BackendEnv(options=backend_options, registry=contract_registry, base_dir=tmp_path)
        instance = backend_factory(env)
        await instance.start()
        try:
            yield instance
        finally:
            await instance.aclose()

    @pytest.mark.parametrize("dup", ["ann@example.com", "ANN@Example.COM", " Ann@EXAMPLE.com"])
    async def test_taken_email_is_refused_in_any_case(
        self, backend: Backend, users: ResourceType, dup: str
    ) -> None:
        await backend.create(E1, users, with_email("ann", "Ann@example.com"))
        with pytest.raises(errors.Uniqueness) as info:
            await backend.create(E1, users, with_email("other", dup))
        assert dup.strip() in info.value.detail, "the error names the email"
        assert len((await self.all_of(backend, T1, users)).resources) == 1

    async def test_keys_are_per_tenant_and_secondary_emails_are_free(
        self, backend: Backend, users: ResourceType
    ) -> None:
        await backend.create(E1, users, with_email("ann", "ann@example.com"))
        await backend.create(E2, users, with_email("ann", "ann@example.com"))
        second = user(
            "bob",
            emails=[
                {"value": "bob@example.com", "primary": True},
                {"value": "ann@example.com", "type": "home"},
            ],
        )
        await backend.create(E1, users, second)

    async def test_other_instance_on_the_same_store_is_refused(
        self, backend: Backend, second_backend: Backend, users: ResourceType
    ) -> None:
        await backend.create(E1, users, with_email("ann", "ann@example.com"))
        with pytest.raises(errors.Uniqueness):
            await second_backend.create(E1, users, with_email("ann2", "ANN@example.com"))

    async def test_concurrent_creates_of_one_email_one_wins(
        self, backend: Backend, second_backend: Backend, users: ResourceType
    ) -> None:
        results = await asyncio.gather(
            *(
                outcome(b.create(E1, users, with_email(f"racer{i}", RACE[i % 2])))
                for i, b in enumerate([backend, second_backend] * 4)
            )
        )
        assert sum(isinstance(r, dict) for r in results) == 1, results
        assert all(isinstance(r, (dict, errors.Uniqueness)) for r in results), results

    async def test_patch_and_replace_to_a_taken_email_change_nothing(
        self, backend: Backend, users: ResourceType
    ) -> None:
        await backend.create(E1, users, with_email("ann", "ann@example.com"))
        bob = await backend.create(E1, users, with_email("bob", "bob@example.com"))
        op = PatchOp(
            "replace", self.path(users, "emails"), [{"value": "Ann@Example.com", "primary": True}]
        )
        with pytest.raises(errors.Uniqueness):
            await backend.patch(E1, users, bob["id"], [op], if_match=None)
        with pytest.raises(errors.Uniqueness):
            await backend.replace(
                E1, users, bob["id"], with_email("bob", "ANN@example.com"), if_match=None
            )
        after = await backend.get(T1, users, bob["id"])
        assert after["emails"][0]["value"] == "bob@example.com"
        assert after["meta"]["version"] == bob["meta"]["version"]

    async def test_delete_and_change_free_the_key(
        self, backend: Backend, users: ResourceType
    ) -> None:
        ann = await backend.create(E1, users, with_email("ann", "ann@example.com"))
        bob = await backend.create(E1, users, with_email("bob", "bob@example.com"))
        await backend.delete(E1, users, ann["id"], if_match=None)
        await backend.create(E1, users, with_email("ann2", "ann@example.com"))
        op = PatchOp("replace", self.path(users, "emails"), [{"value": "b@example.com"}])
        await backend.patch(E1, users, bob["id"], [op], if_match=None)
        await backend.create(E1, users, with_email("bob2", "bob@example.com"))

    async def test_unrequested_duplicates_stay_editable(
        self, backend: Backend, users: ResourceType, groups: ResourceType
    ) -> None:
        # Written without the key being asked for (the setting off, or an import): both
        # holders keep working as long as they keep it, a new holder is refused.
        await backend.create(T1, groups, group("ann@example.com"))
        first = await backend.create(T1, users, with_email("first", "dup@example.com"))
        second = await backend.create(T1, users, with_email("second", "DUP@example.com"))
        for made in (first, second):
            await backend.replace(
                E1,
                users,
                made["id"],
                with_email(made["userName"], "dup@example.com", title="x"),
                if_match=None,
            )
        with pytest.raises(errors.Uniqueness):
            await backend.create(E1, users, with_email("third", "dup@example.com"))
