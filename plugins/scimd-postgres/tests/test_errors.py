"""SQLSTATE -> SCIM error mapping, bounded retries, and an unreachable server (503)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from scimd_postgres.backend import PostgresBackend
from scimd_postgres.errors import RETRY, SQLSTATE_ERRORS, classify

from scimd.backend import BackendEnv, OpContext
from scimd.errors import InvalidValue, ScimError, ServiceUnavailable, Uniqueness
from scimd.testing import build_contract_registry

CTX = OpContext(tenant="t1", principal="system", request_id="r1")


def _pg_error(sqlstate: str) -> asyncpg.PostgresError:
    cls = asyncpg.PostgresError.get_message_class_for_sqlstate(sqlstate)
    return cls("boom")


@pytest.mark.parametrize(
    ("sqlstate", "expected"),
    [
        ("23505", Uniqueness),
        ("22021", InvalidValue),
        ("54000", InvalidValue),
        ("57014", ServiceUnavailable),
        ("57P01", ServiceUnavailable),
        ("53300", ServiceUnavailable),
        ("08006", ServiceUnavailable),
        ("22P02", InvalidValue),
        ("42P01", ScimError),
    ],
)
def test_sqlstate_table(sqlstate: str, expected: type[ScimError]) -> None:
    result = classify(_pg_error(sqlstate))
    assert type(result) is expected
    if expected is ServiceUnavailable:
        assert isinstance(result, ServiceUnavailable)
        assert result.headers.get("Retry-After")


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_serialization_failures_are_retried(sqlstate: str) -> None:
    assert SQLSTATE_ERRORS[sqlstate] == RETRY
    assert classify(_pg_error(sqlstate)) == RETRY


def test_connection_refused_is_unavailable() -> None:
    result = classify(ConnectionRefusedError(111, "refused"))
    assert isinstance(result, ServiceUnavailable)
    assert result.headers["Retry-After"] == "5"


@pytest.fixture
async def backend(fresh_dsn: str, tmp_path: Path) -> Any:
    registry = build_contract_registry(tmp_path)
    b = PostgresBackend(
        BackendEnv(
            options={"dsn": fresh_dsn, "migrate_on_start": True, "retries": 2},
            registry=registry,
            base_dir=tmp_path,
        )
    )
    await b.start()
    yield b
    await b.aclose()


async def test_retry_is_bounded_then_unavailable(backend: PostgresBackend) -> None:
    calls = 0

    async def always_conflicts(conn: asyncpg.Connection) -> None:
        nonlocal calls
        calls += 1
        raise _pg_error("40001")

    with pytest.raises(ServiceUnavailable):
        await backend._run(always_conflicts)
    assert calls == 3  # the first attempt and two retries


async def test_retry_then_success(backend: PostgresBackend) -> None:
    calls = 0

    async def conflicts_once(conn: asyncpg.Connection) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise _pg_error("40P01")
        return int(await conn.fetchval("SELECT 41 + 1"))

    assert await backend._run(conflicts_once) == 42
    assert calls == 2


async def test_unique_violation_names_the_attribute(backend: PostgresBackend) -> None:
    users = backend.registry.resource_type("User")
    assert users is not None
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Zoë"}
    await backend.create(CTX, users, dict(body))
    with pytest.raises(Uniqueness, match="userName"):
        await backend.create(CTX, users, {**body, "userName": "ZOË"})


async def test_unreachable_server_is_service_unavailable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = PostgresBackend(
        BackendEnv(
            options={"dsn": f"postgresql://postgres@127.0.0.1:{port}/x", "command_timeout": 5},
            registry=build_contract_registry(tmp_path),
            base_dir=tmp_path,
        )
    )
    with pytest.raises(ServiceUnavailable) as info:
        await b.start()
    assert info.value.headers["Retry-After"] == "5"


def test_missing_dsn_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="dsn"):
        PostgresBackend(
            BackendEnv(options={}, registry=build_contract_registry(tmp_path), base_dir=tmp_path)
        )
