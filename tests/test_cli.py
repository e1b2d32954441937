"""The ``scimd`` command, in-process through ``main(argv)`` and as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scimd.cli import main
from scimd.plugins import PluginManager
from scimd.settings import Settings
from scimd.state.base import Event
from scimd.state.sqlite import SqliteStateStore

CONFIG = """
[storage.embedded]
path = "data/scimd.db"

[state]
path = "data/state.db"

[scim]
cursor_secret = { "$env" = "TEST_CURSOR_SECRET" }
"""


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "scimd.toml"
    path.write_text(CONFIG)
    monkeypatch.setenv("TEST_CURSOR_SECRET", "very-secret-cursor-key")
    monkeypatch.delenv("SCIMD_CONFIG", raising=False)
    return path


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (or ``python -m scimd.cli`` without one)."""
    script = Path(sys.executable).parent / "scimd"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "scimd.cli"]
    full_env = {**os.environ, "TEST_CURSOR_SECRET": "very-secret-cursor-key", **(env or {})}
    full_env.pop("SCIMD_CONFIG", None)
    return subprocess.run(
        [*cmd, *argv], capture_output=True, text=True, env=full_env, timeout=60, check=False
    )


def state(conf: Path) -> SqliteStateStore:
    return SqliteStateStore(conf.parent / "data" / "state.db")


async def _verify(conf: Path, token: str) -> Any:
    store = state(conf)
    await store.start()
    try:
        return await store.verify_token(token)
    finally:
        await store.aclose()


# --------------------------------------------------------------------------- tokens


def test_token_create_prints_the_token_last(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["token", "create", "-c", str(conf), "--tenant", "acme", "--scope", "read"])
    out, err = capsys.readouterr()
    assert rc == 0
    token = out.strip().splitlines()[-1]
    assert token.startswith("scimd_")
    assert "tenant 'acme'" in err
    record = asyncio.run(_verify(conf, token))
    assert record.tenant == "acme"
    assert record.scopes == ("read",)
    assert token.encode() not in (conf.parent / "data" / "state.db").read_bytes()


def test_token_create_defaults_to_default_tenant_and_both_scopes(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "create", "-c", str(conf), "--me", "u1", "--description", "okta"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    record = asyncio.run(_verify(conf, token))
    assert (record.tenant, record.scopes, record.me_user_id) == ("default", ("read", "write"), "u1")


def test_token_lifecycle_as_subprocess(conf: Path) -> None:
    created = run("token", "create", "-c", str(conf), "--description", "entra")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("scimd_")

    listed = run("token", "list", "-c", str(conf), "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["tenant"] == "default"
    assert row["scopes"] == ["read", "write"]
    assert row["description"] == "entra"
    assert row["revoked"] is None
    assert token not in listed.stdout
    assert "hash" not in row

    table = run("token", "list", "-c", str(conf))
    assert row["id"] in table.stdout
    assert token not in table.stdout

    revoked = run("token", "revoke", "-c", str(conf), row["id"])
    assert revoked.returncode == 0, revoked.stderr
    assert asyncio.run(_verify(conf, token)) is None
    again = run("token", "revoke", "-c", str(conf), row["id"])
    assert again.returncode == 1
    assert f"no active token with id '{row['id']}'" in again.stderr
    assert "Traceback" not in again.stderr


def test_token_list_filters_by_tenant(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["token", "create", "-c", str(conf), "--tenant", "a"])
    main(["token", "create", "-c", str(conf), "--tenant", "b"])
    capsys.readouterr()
    assert main(["token", "list", "-c", str(conf), "--tenant", "b", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["tenant"] for r in rows] == ["b"]


def test_invalid_scope_is_a_usage_error(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "create", "-c", str(conf), "--scope", "admin"]) == 2
    assert "invalid choice: 'admin'" in capsys.readouterr().err


# --------------------------------------------------------------------------- config commands


def test_check_config_ok(conf: Path) -> None:
    result = run("check-config", "-c", str(conf))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_config_reports_file_key_reason_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = "abc"\n')
    result = run("check-config", "-c", str(bad))
    assert result.returncode == 2
    assert f'{bad}: server.port: expected an integer between 1 and 65535, got "abc"' in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_check_config_env_error(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run("check-config", "-c", str(conf), env={"SCIMD_SERVER_PORT": "0"})
    assert result.returncode == 2
    assert "SCIMD_SERVER_PORT (environment): server.port" in result.stderr


def test_missing_config_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-c", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: no such file" in capsys.readouterr().err


def test_config_from_scimd_config_env(
    conf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCIMD_CONFIG", str(conf))
    assert main(["check-config"]) == 0
    assert f"{conf.resolve()}: OK" in capsys.readouterr().out


def test_config_from_working_directory(
    conf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(conf.parent)
    assert main(["show-config"]) == 0
    assert f'path = "{conf.parent.resolve() / "data" / "state.db"}"' in capsys.readouterr().out


def test_show_config_masks_secrets(conf: Path) -> None:
    result = run("show-config", "-c", str(conf), env={"SCIMD_SERVER_PORT": "9001"})
    assert result.returncode == 0, result.stderr
    assert "very-secret-cursor-key" not in result.stdout
    assert 'cursor_secret = "********"' in result.stdout
    assert "port = 9001  # env SCIMD_SERVER_PORT" in result.stdout


def test_show_config_sample_lists_every_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show-config", "--sample"]) == 0
    assert "# port = 8080" in capsys.readouterr().out


def test_plugins_lists_embedded_and_sqlite(conf: Path) -> None:
    result = run("plugins", "-c", str(conf))
    assert result.returncode == 0, result.stderr
    assert "backend embedded" in result.stdout
    assert "capabilities:" in result.stdout
    assert "state store sqlite" in result.stdout


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["serve", "--port", "99999"]) == 2
    assert "between 1 and 65535" in capsys.readouterr().err
    assert main(["--help"]) == 0


# --------------------------------------------------------------------------- events


def test_events_filters(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)

    def ev(i: str, type_: str, rid: str, tenant: str = "default", age: float = 0) -> Event:
        return Event(
            id=i,
            type=type_,
            time=now - timedelta(hours=age),
            tenant=tenant,
            resource_type="User",
            resource_id=rid,
            changed_attributes=("active",),
        )

    async def seed() -> None:
        store = state(conf)
        await store.start()
        await store.record_events(
            [
                ev("e1", "scim.user.created", "u1", age=48),
                ev("e2", "scim.user.patched", "u1", age=0.5),
                ev("e3", "scim.group.created", "g1", age=0.2),
                ev("e4", "scim.user.created", "u2", tenant="acme", age=0.1),
            ]
        )
        await store.aclose()

    asyncio.run(seed())

    def ids(*extra: str) -> list[str]:
        assert main(["events", "-c", str(conf), *extra]) == 0
        return [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]

    assert ids() == ["e1", "e2", "e3", "e4"]
    assert ids("--resource", "u1") == ["e1", "e2"]
    assert ids("--type", "scim.user") == ["e1", "e2", "e4"]
    assert ids("--since", "1h") == ["e2", "e3", "e4"]
    since = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids("--since", since, "--tenant", "default") == ["e2", "e3"]
    assert ids("--limit", "1") == ["e4"]
    assert main(["events", "-c", str(conf), "--resource", "u1"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["changedAttributes"] == ["active"]
    assert first["type"] == "scim.user.created"


def test_events_since_rejects_garbage(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "-c", str(conf), "--since", "yesterday-ish"]) == 2
    assert "ISO time" in capsys.readouterr().err


# --------------------------------------------------------------------------- serve


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Settings, PluginManager]]:
    """Replace ``scimd.app`` by a recorder: serve's own behaviour is F's to test."""
    calls: list[tuple[Settings, PluginManager]] = []
    fake = types.ModuleType("scimd.app")

    def serve(settings: Settings, plugins: PluginManager) -> None:
        calls.append((settings, plugins))

    fake.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "scimd.app", fake)
    return calls


def test_serve_bootstraps_a_token_once(
    conf: Path,
    served: list[tuple[Settings, PluginManager]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "-c", str(conf), "--port", "9999", "--host", "0.0.0.0"]) == 0
    out = capsys.readouterr().out
    token = out.strip().splitlines()[-1]
    assert token.startswith("scimd_")
    assert "shown ONLY NOW" in out
    record = asyncio.run(_verify(conf, token))
    assert (record.tenant, record.scopes) == ("default", ("read", "write"))
    ((settings, plugins),) = served
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 9999)
    assert "embedded" in plugins.backend_factories()
    assert (conf.parent / "data").is_dir()

    assert main(["serve", "-c", str(conf)]) == 0  # second start: a token exists
    assert "scimd_" not in capsys.readouterr().out
    assert len(served) == 2


def test_serve_without_bootstrap(
    conf: Path,
    served: list[tuple[Settings, PluginManager]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCIMD_AUTH_BOOTSTRAP_TOKEN", "false")
    assert main(["serve", "-c", str(conf), "--workers", "3"]) == 0
    assert "scimd_" not in capsys.readouterr().out
    assert served[0][0].server.workers == 3


def test_unexpected_errors_have_no_traceback(
    conf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = types.ModuleType("scimd.app")

    def serve(settings: Settings, plugins: PluginManager) -> None:
        raise OSError("address already in use")

    fake.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "scimd.app", fake)
    monkeypatch.delenv("SCIMD_DEBUG", raising=False)
    assert main(["serve", "-c", str(conf)]) == 1
    err = capsys.readouterr().err
    assert "scimd: error: OSError: address already in use" in err
    assert "Traceback" not in err
