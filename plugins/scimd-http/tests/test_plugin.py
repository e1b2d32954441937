"""The plugin as scimd sees it: entry point, backend factory, declared settings, the
shipped configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from scimd.config import ConfigError, load_config
from scimd.plugins import PluginManager

CONF = Path(__file__).resolve().parents[3] / "conf" / "scim-upstream.toml"


def test_entry_point_provides_the_backend() -> None:
    pm = PluginManager.create()
    assert "scim-upstream" in pm.backend_factories()
    info = {p.name: p for p in pm.list_plugins()}["http"]
    assert info.dist == "scimd-http"
    assert [b[0] for b in info.backends] == ["scim-upstream", "rest"]


def test_shipped_config_reads_url_and_token_from_the_environment() -> None:
    env = {
        "SCIMD_UPSTREAM_URL": "https://idm.example.com/scim/v2",
        "SCIMD_UPSTREAM_TOKEN": "upstream-secret",
    }
    loaded = load_config(CONF, environ=env)
    options = loaded.settings.storage.backend_options()
    assert loaded.settings.storage.backend == "scim-upstream"
    assert options["url"] == "https://idm.example.com/scim/v2"
    assert options["token"] == "upstream-secret"  # noqa: S105 - a test value
    assert options["timeout"] == 30.0 and options["backoff_base"] == 0.2
    assert options["retries"] == 3 and options["tenant"] == "default"


def test_missing_token_variable_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="SCIMD_UPSTREAM_TOKEN"):
        load_config(CONF, environ={"SCIMD_UPSTREAM_URL": "https://idm.example.com/scim/v2"})


def test_token_written_in_the_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "scimd.toml"
    config.write_text(
        '[storage]\nbackend = "scim-upstream"\n[storage.scim-upstream]\n'
        'url = "https://x.example/scim/v2"\ntoken = "plain"\n'
    )
    with pytest.raises(ConfigError, match="token"):
        load_config(config, environ={})


def test_unknown_option_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "scimd.toml"
    config.write_text('[storage]\nbackend = "scim-upstream"\n[storage.scim-upstream]\nurll = "x"\n')
    with pytest.raises(ConfigError, match="urll"):
        load_config(config, environ={})


def test_environment_overrides_use_underscores() -> None:
    env = {
        "SCIMD_UPSTREAM_URL": "https://idm.example.com/scim/v2",
        "SCIMD_UPSTREAM_TOKEN": "t",
        "SCIMD_STORAGE_SCIM_UPSTREAM_RETRIES": "5",
        "SCIMD_STORAGE_SCIM_UPSTREAM_TIMEOUT": "2s",
    }
    options = load_config(CONF, environ=env).settings.storage.backend_options()
    assert options["retries"] == 5 and options["timeout"] == 2.0
