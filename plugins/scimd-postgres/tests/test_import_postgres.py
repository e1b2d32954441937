"""``scimd import`` on PostgreSQL: the COPY bulk path (``PostgresBackend.import_resources``)
with the core checks of ``<repo>/tests/test_cli_import.py`` (JSONL and CSV, bad lines
reported by number without aborting, re-runs resume)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli_import import check_csv_import, check_jsonl_import


def pg_config(tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SCIMD_PG_DSN", dsn)
    config = tmp_path / "scimd.toml"
    config.write_text(
        '[storage]\nbackend = "postgres"\n'
        '[storage.postgres]\ndsn = { "$env" = "SCIMD_PG_DSN" }\n'
        f'[state]\npath = "{tmp_path}/state.db"\n'
    )
    return config


def test_import_jsonl_postgres(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    check_jsonl_import(pg_config(tmp_path, pg_dsn, monkeypatch), tmp_path, capsys)


def test_import_csv_postgres(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    check_csv_import(pg_config(tmp_path, pg_dsn, monkeypatch), tmp_path, capsys)


async def test_import_rules_postgres_pool(pg_dsn: str, tmp_path: Path) -> None:
    """unique_email, resume and events on the COPY path, Users normalised by 2 processes."""
    from scimd_postgres.backend import PostgresBackend

    from scimd.backend import BackendEnv
    from scimd.schema.loader import builtin_registry
    from tests.test_import_rules import check_import_rules

    backend = PostgresBackend(
        BackendEnv(options={"dsn": pg_dsn}, registry=builtin_registry(), base_dir=tmp_path)
    )
    await backend.start()
    try:
        await check_import_rules(backend, tmp_path, workers=2)
    finally:
        await backend.aclose()
