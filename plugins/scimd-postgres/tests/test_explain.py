"""The identity-provider lookups are index-backed: with sequential scans disabled the
planner still answers them without scanning a whole table (an index exists that serves
the predicate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scimd_postgres.backend import PostgresBackend

from scimd.backend import BackendEnv, OpContext
from scimd.query.parse import parse_filter
from scimd.testing import build_contract_registry

CTX = OpContext(tenant="t1", principal="system", request_id="r1")


@pytest.fixture
async def backend(fresh_dsn: str, tmp_path: Path) -> Any:
    b = PostgresBackend(
        BackendEnv(
            options={"dsn": fresh_dsn, "migrate_on_start": True},
            registry=build_contract_registry(tmp_path),
            base_dir=tmp_path,
        )
    )
    await b.start()
    yield b
    await b.aclose()


@pytest.mark.parametrize(
    ("rtype_name", "text"),
    [
        ("User", 'id eq "00000000-0000-0000-0000-000000000001"'),
        ("User", 'userName eq "bjensen"'),
        ("User", 'externalId eq "ext-1"'),
        ("User", 'emails.value eq "b@example.com"'),
        ("User", 'emails[type eq "work"].value eq "b@example.com"'),
        ("User", 'groups.value eq "00000000-0000-0000-0000-000000000001"'),
        ("User", 'userName sw "bj"'),
        ("Group", 'displayName eq "Admins"'),
        ("Group", 'members.value eq "00000000-0000-0000-0000-000000000001"'),
    ],
)
async def test_identity_provider_lookups_use_indexes(
    backend: PostgresBackend, rtype_name: str, text: str
) -> None:
    rtype = backend.registry.resource_type(rtype_name)
    assert rtype is not None
    where, _, _, params, n_where = backend.compile_where("t1", rtype, parse_filter(text, rtype))
    assert backend.pool is not None
    async with backend.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                f"EXPLAIN SELECT r.pk FROM scimd_resources r WHERE {where}", *params[:n_where]
            )
        )
    assert "Seq Scan" not in plan, plan
    assert "Index" in plan, plan
