"""The plugin as scimd sees it: entry point, backend factory, declared settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from scimd.config import load_config
from scimd.plugins import PluginManager

CONF = Path(__file__).resolve().parents[3] / "conf" / "postgres.toml"


def test_entry_point_provides_the_backend() -> None:
    pm = PluginManager.create()
    assert "postgres" in pm.backend_factories()
    info = {p.name: p for p in pm.list_plugins()}["postgres"]
    assert info.dist == "scimd-postgres"
    assert [b[0] for b in info.backends] == ["postgres"]


def test_shipped_config_reads_the_dsn_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCIMD_PG_DSN", "postgresql://scimd@db.example:5432/scimd")
    loaded = load_config(CONF)
    options = loaded.settings.storage.backend_options()
    assert loaded.settings.storage.backend == "postgres"
    assert options["dsn"] == "postgresql://scimd@db.example:5432/scimd"
    assert options["max_pool"] == 10
    assert options["migrate_on_start"] is False
    assert options["command_timeout"] == 30.0


def test_unknown_option_is_a_config_error(tmp_path: Path) -> None:
    from scimd.config import ConfigError

    config = tmp_path / "scimd.toml"
    config.write_text('[storage]\nbackend = "postgres"\n[storage.postgres]\npool_size = 3\n')
    with pytest.raises(ConfigError, match="pool_size"):
        load_config(config)
