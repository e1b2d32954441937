"""``co``/``sw``/``ew`` are exact on LIKE metacharacters (``%``, ``_``, ``\\``): the
compiler escapes the operand of the LIKE pattern the trigram index serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from scimd_postgres.backend import PostgresBackend

from scimd.backend import BackendEnv, OpContext, Query
from scimd.query.evaluate import matches
from scimd.query.parse import parse_filter
from scimd.testing import build_contract_registry

CTX = OpContext(tenant="t1", principal="system", request_id="r1")
NAMES = ["ab", "a%b", "a_b", "axb", "a\\b", "a\\\\b", "%", "_", "x%", "_x", "ß", "S"]


@pytest.fixture
async def backend(pg_dsn: str, tmp_path: Path) -> AsyncIterator[PostgresBackend]:
    b = PostgresBackend(
        BackendEnv(
            options={"dsn": pg_dsn}, registry=build_contract_registry(tmp_path), base_dir=tmp_path
        )
    )
    await b.start()
    yield b
    await b.aclose()


@pytest.mark.parametrize("op", ["co", "sw", "ew"])
@pytest.mark.parametrize("operand", ["%", "_", "a%", "a_", "%b", "_b", "\\", "\\b", "a\\", "s"])
async def test_like_metacharacters_are_literal(
    backend: PostgresBackend, op: str, operand: str
) -> None:
    rtype = backend.registry.resource_type("User")
    assert rtype is not None
    stored = [
        await backend.create(
            CTX, rtype, {"schemas": [rtype.schema.id], "userName": name, "displayName": name}
        )
        for name in NAMES
    ]
    for attr in ("userName", "displayName"):
        flt = parse_filter(f"{attr} {op} {orjson_str(operand)}", rtype)
        page = await backend.query(CTX, rtype, Query(filter=flt, count=100))
        want = {r["userName"] for r in stored if matches(flt, r)}
        assert {r["userName"] for r in page.resources} == want, (attr, op, operand)


def orjson_str(text: str) -> str:
    import json

    return json.dumps(text)
