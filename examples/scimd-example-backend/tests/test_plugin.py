"""The plugin is found through its entry point, as an installed scimd sees it: what
``scimd plugins`` prints for it (docs/plugins.md shows these lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scimd.cli import main
from scimd.config import load_config
from scimd.plugins import PluginManager

HERE = Path(__file__).resolve().parent.parent

#: The lines ``scimd plugins`` prints for this plugin.
EXPECTED = """\
example (scimd-example-backend 0.1.0)
  backend example-memory: In-memory store (example plugin; data is lost at exit); options: max_results
"""  # noqa: E501 (the exact line printed)


def test_entry_point_registers_the_backend() -> None:
    pm = PluginManager.create()  # builtins + installed entry points, as `scimd serve` does
    assert "example-memory" in pm.backend_factories()
    (info,) = [i for i in pm.list_plugins() if i.name == "example"]
    assert info.dist == "scimd-example-backend"


def test_example_config_selects_the_backend() -> None:
    settings = load_config(HERE / "scimd.example.toml", environ={}).settings
    assert settings.storage.backend == "example-memory"
    assert settings.storage.backend_options()["max_results"] == 500


def test_scimd_plugins_lists_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "-c", str(HERE / "scimd.example.toml")]) == 0
    out = capsys.readouterr().out
    assert EXPECTED in out
