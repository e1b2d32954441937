"""Meta-tests: a hook or a setting that is undocumented or untested fails the build
(datasette ``tests/test_docs.py`` style)."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import pytest

from scimd import hookspecs
from scimd.config import CORE_SETTINGS, ConfigError, SettingSpec, load_config
from scimd.plugins import PluginManager
from scimd.testing.services import service_missing

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(
    name
    for name, fn in vars(hookspecs).items()
    if name.startswith("scimd_") and inspect.isfunction(fn)
)


def builtin_specs() -> list[SettingSpec]:
    """Core keys plus the keys declared by the builtin plugins."""
    pm = PluginManager.create(entry_points=False)
    return [*CORE_SETTINGS, *pm.setting_declarations()]


def test_there_are_hooks() -> None:
    assert {"scimd_backends", "scimd_state_stores", "scimd_configure"} <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_is_documented(name: str) -> None:
    fn = getattr(hookspecs, name)
    doc = inspect.getdoc(fn) or ""
    assert doc.splitlines()[0].strip(), f"{name}: no summary line"
    for param in inspect.signature(fn).parameters:
        assert f":param {param}:" in doc, f"{name}: no ':param {param}:'"
    assert ".. versionadded::" in doc, f"{name}: no versionadded"
    opts = getattr(fn, "scimd_spec", {})
    if opts.get("firstresult"):
        assert "first non-None result" in doc, f"{name}: firstresult not said"
    assert inspect.signature(fn).return_annotation != inspect.Signature.empty


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_is_in_plugins_doc(name: str) -> None:
    assert f"### `{name}(" in (ROOT / "docs" / "plugins.md").read_text()


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_is_implemented_or_called_in_tests(name: str) -> None:
    sources = [p.read_text() for p in (ROOT / "tests").glob("*.py") if p.name != "test_docs.py"]
    assert any(re.search(rf"\b{name}\b", s) for s in sources) or any(
        re.search(rf"\b{name.removeprefix('scimd_')}\(", s) for s in sources
    ), f"{name} is neither implemented nor called by any test"


@pytest.mark.parametrize("spec", builtin_specs(), ids=lambda s: s.name)
def test_setting_is_in_configuration_doc(spec: SettingSpec) -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert f"`{spec.name}`" in doc, f"{spec.name} missing from docs/configuration.md"
    assert f"`{spec.env}`" in doc, f"{spec.env} missing from docs/configuration.md"


def toml_keys(text: str) -> set[str]:
    """Dotted names of every assignment, commented out or not, by section."""
    keys: set[str] = set()
    section = ""
    for line in text.splitlines():
        if m := re.match(r"^\s*\[([^\]]+)\]\s*(#.*)?$", line):
            section = m.group(1).strip()
        elif m := re.match(r"^\s*#?\s*([a-z_]+)\s*=", line):
            keys.add(f"{section}.{m.group(1)}")
    return keys


@pytest.mark.parametrize("spec", builtin_specs(), ids=lambda s: s.name)
def test_setting_is_in_default_config(spec: SettingSpec) -> None:
    assert spec.name in toml_keys((ROOT / "scimd.toml").read_text()), (
        f"{spec.name} missing from scimd.toml"
    )


def test_default_config_has_no_stale_core_keys() -> None:
    core_sections = {s.section for s in CORE_SETTINGS}
    declared = {s.name for s in builtin_specs()}
    stale = {
        k
        for k in toml_keys((ROOT / "scimd.toml").read_text())
        if k.rsplit(".", 1)[0] in core_sections and k not in declared
    }
    assert stale == set()


def test_default_config_is_valid_and_serves_the_documented_address() -> None:
    loaded = load_config(ROOT / "scimd.toml", environ={})
    s = loaded.settings
    assert (s.server.host, s.server.port, s.server.base_path) == ("127.0.0.1", 8080, "/scim/v2")
    assert s.storage.backend == "embedded"
    assert s.storage.backend_options()["path"] == ROOT / "data" / "scimd.db"
    assert s.state.path == ROOT / "data" / "state.db"


@pytest.mark.parametrize("path", sorted((ROOT / "conf").glob("*.toml")), ids=lambda p: p.name)
def test_example_configs_are_valid(path: Path) -> None:
    data = tomllib.loads(path.read_text())
    backend = data.get("storage", {}).get("backend", "embedded")
    if backend not in PluginManager.create().backend_factories():
        # scimd-ldap builds only where libldap's headers are installed (CI has them).
        message = f"{path.name}: no installed plugin provides backend {backend!r}"
        service_missing(message)
    try:
        load_config(path, environ={})
    except ConfigError as exc:
        # Production examples point at secret files that exist only on the server.
        # and at secrets read from the environment ({ "$env" = "SCIMD_PG_DSN" }).
        others = [
            i
            for i in exc.issues
            if "cannot read $file /run/secrets/" not in i.reason
            and "(from $env) is not set" not in i.reason
        ]
        assert others == [], exc
