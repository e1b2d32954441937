"""``scimd import``: JSON lines and CSV, bad lines reported with their number without
aborting the load, re-runs resume (what is stored is skipped). On the embedded store this
is the ``create`` fallback; ``plugins/scimd-postgres/tests/test_import_postgres.py`` runs
the same checks on PostgreSQL's COPY path."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from scimd.app import load_schema_registry
from scimd.backend import OpContext, Query
from scimd.cli import main
from scimd.config import load_config
from scimd.query.parse import parse_filter

GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"


def jsonl_lines() -> list[str]:
    users = [
        orjson.dumps(
            {
                "schemas": [USER_URN],
                "userName": f"u{i}",
                "externalId": f"x{i}",
                "emails": [{"value": f"u{i}@example.com", "type": "work"}],
            }
        ).decode()
        for i in range(5)
    ]
    return [
        *users[:3],
        "{not json",  # line 4
        orjson.dumps({"schemas": [USER_URN], "userName": "bad", "active": "maybe"}).decode(),
        *users[3:],
        orjson.dumps({"schemas": [USER_URN], "userName": "U0"}).decode(),  # line 8: duplicate
        orjson.dumps(
            {
                "schemas": [GROUP_URN],
                "displayName": "Staff",
                "members": [{"userName": "u1"}, {"externalId": "x4"}],
            }
        ).decode(),
        orjson.dumps(
            {"schemas": [GROUP_URN], "displayName": "Ghosts", "members": [{"userName": "nobody"}]}
        ).decode(),
    ]


def query(config: Path, rtype_name: str, text: str) -> list[dict[str, Any]]:
    loaded = load_config(config)
    assert loaded.plugins is not None
    loaded.plugins.configure(loaded.settings)
    registry = load_schema_registry(loaded.settings, loaded.plugins)
    backend = loaded.plugins.backend(loaded.settings, registry)
    rtype = registry.resource_type(rtype_name)
    assert rtype is not None

    async def run() -> list[dict[str, Any]]:
        await backend.start()
        try:
            ctx = OpContext(tenant="default", principal="test", request_id="t")
            flt = parse_filter(text, rtype) if text else None
            page = await backend.query(ctx, rtype, Query(filter=flt, count=100))
            return page.resources
        finally:
            await backend.aclose()

    return asyncio.run(run())


def check_jsonl_import(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "users.jsonl"
    data.write_text("\n".join(jsonl_lines()) + "\n")
    assert main(["import", "-c", str(config), "--batch", "2", str(data)]) == 1
    out, err = capsys.readouterr()
    assert "10 lines: 6 created, 1 skipped (already stored), 3 errors" in out, out
    assert "users.jsonl:4: not JSON" in err
    assert "users.jsonl:5: invalidValue" in err
    assert "users.jsonl:10: member" in err and "nobody" in err
    users = query(config, "User", "")
    assert sorted(u["userName"] for u in users) == ["u0", "u1", "u2", "u3", "u4"]
    staff = query(config, "Group", 'displayName eq "Staff"')
    by_name = {u["userName"]: u["id"] for u in users}
    assert sorted(m["value"] for m in staff[0]["members"]) == sorted([by_name["u1"], by_name["u4"]])
    # Resume: a re-run stores nothing twice and reports the same bad lines.
    assert main(["import", "-c", str(config), str(data)]) == 1
    out, err = capsys.readouterr()
    assert "0 created, 7 skipped (already stored), 3 errors" in out, out
    assert len(query(config, "User", "")) == 5


def check_csv_import(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "people.csv"
    data.write_text(
        "userName,name.givenName,emails,emails.home,active\n"
        "alice,Alice,alice@work.example,alice@home.example,true\n"
        ",Nobody,,,\n"
        "bob,Bob,bob@work.example,,false\n"
    )
    assert main(["import", "-c", str(config), str(data)]) == 1
    out, err = capsys.readouterr()
    assert "3 lines: 2 created, 0 skipped (already stored), 1 errors" in out, out
    assert "people.csv:3: invalidValue" in err, err
    [alice] = query(config, "User", 'emails[type eq "home"].value eq "alice@home.example"')
    assert alice["userName"] == "alice" and alice["active"] is True
    assert alice["name"]["givenName"] == "Alice"
    [bob] = query(config, "User", 'emails.value eq "bob@work.example"')
    assert bob["active"] is False
    assert main(["import", "-c", str(config), str(data)]) == 1
    out, _ = capsys.readouterr()
    assert "0 created, 2 skipped" in out


def embedded_config(tmp_path: Path) -> Path:
    config = tmp_path / "scimd.toml"
    config.write_text(
        f'[storage]\nbackend = "embedded"\n[storage.embedded]\npath = "{tmp_path}/s.db"\n'
        f'[state]\npath = "{tmp_path}/state.db"\n'
    )
    return config


def test_import_jsonl_embedded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_jsonl_import(embedded_config(tmp_path), tmp_path, capsys)


def test_import_csv_embedded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_csv_import(embedded_config(tmp_path), tmp_path, capsys)


def test_import_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "-c", str(embedded_config(tmp_path)), str(tmp_path / "no")]) == 1
    assert "no such file" in capsys.readouterr().err
