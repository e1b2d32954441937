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
