"""scimd.config: TOML + SCIMD_* environment + secret references -> typed Settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from scimd import settings as settings_module
from scimd.config import (
    CORE_SETTINGS,
    ConfigError,
    LoadedConfig,
    find_config_file,
    load_config,
    load_settings,
    parse_duration,
    show_config,
)
from scimd.plugins import PluginManager
from scimd.settings import Settings
from tests._config_helpers import (
    EmbeddedStandIn,
    FakeBackendPlugin,
    NoOptionsBackendPlugin,
    make_plugins,
)


def write(tmp_path: Path, text: str, name: str = "scimd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(
    path: Path | None, env: dict[str, str] | None = None, pm: PluginManager | None = None
) -> LoadedConfig:
    return load_config(path, environ=env or {}, plugins=pm or make_plugins())


def error_of(path: Path | None, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(path, env)
    return info.value


# --------------------------------------------------------------------------- defaults & file


def test_defaults_without_file_equal_the_dataclass_defaults(tmp_path: Path) -> None:
    loaded = load(None)
    s = loaded.settings
    assert s.server == settings_module.ServerSettings()
    assert s.scim == settings_module.ScimSettings()
    assert s.source is None
    assert all(str(o) == "default" for o in loaded.origins.values())


def test_declaration_table_mirrors_settings_dataclasses() -> None:
    """Every field of every core section is declared once, with the same default."""
    declared = {(s.section, s.key): s for s in CORE_SETTINGS}
    assert len(declared) == len(CORE_SETTINGS)
    for f in dataclasses.fields(Settings):
        if f.name in ("base_dir", "source", "extra"):
            continue
        assert callable(f.default_factory)
        instance = f.default_factory()
        for sub in dataclasses.fields(instance):
            if sub.name == "options":
                continue  # the [storage.<backend>] / [state.<store>] tables
            spec = declared.pop((f.name, sub.name))
            default = getattr(instance, sub.name)
            assert spec.default == default, spec.name
    assert declared == {}, f"declared but not in settings.py: {sorted(declared)}"


def test_file_values_are_typed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[server]
host = "0.0.0.0"
port = 9090
shutdown_timeout = "1m30s"
anonymous_discovery = true

[scim]
patch_success_status = 204
cursor_ttl = "2h"

[logging]
level = "debug"

[plugins]
block = ["ldap"]
""",
    )
    s = load(path).settings
    assert s.server.host == "0.0.0.0"
    assert s.server.port == 9090
    assert s.server.shutdown_timeout == 90.0
    assert s.server.anonymous_discovery is True
    assert s.scim.patch_success_status == 204
    assert s.scim.cursor_ttl == 7200.0
    assert s.logging.level == "DEBUG"  # choices compare case-insensitively, canonical kept
    assert s.plugins.block == ("ldap",)
    assert s.source == path.resolve()
    assert s.base_dir == tmp_path.resolve()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("120s", 120.0), ("1h", 3600.0), ("1h30m", 5400.0), ("500ms", 0.5), ("90", 90.0), (5, 5.0)],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1x", "h", "-5", "1h 2", "s1"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# --------------------------------------------------------------------------- errors


def test_type_error_names_file_key_and_reason(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nport = "abc"\n')
    err = error_of(path)
    assert str(err) == (f'{path}: server.port: expected an integer between 1 and 65535, got "abc"')


@pytest.mark.parametrize(
    ("toml", "key", "reason"),
    [
        ("[server]\nport = 70000\n", "server.port", "between 1 and 65535, got 70000"),
        ("[server]\nport = true\n", "server.port", "expected an integer"),
        ('[server]\nbase_path = "scim/v2/"\n', "server.base_path", 'must start with "/"'),
        ('[server]\npublic_url = "scim.example.com"\n', "server.public_url", "absolute http"),
        ('[server]\nshutdown_timeout = "soon"\n', "server.shutdown_timeout", "a duration"),
        ("[server]\nanonymous_discovery = 1\n", "server.anonymous_discovery", "a boolean"),
        ("[scim]\npatch_success_status = 201\n", "scim.patch_success_status", "one of 200, 204"),
        ('[schema]\nunknown_attributes = "drop"\n', "schema.unknown_attributes", "one of"),
        ('[schema]\nfiles = "a.json"\n', "schema.files", "a list of paths"),
        ("[plugins]\nblock = [1]\n", "plugins.block", "a list of strings"),
        ("[scim]\ndefault_count = 5000\n", "scim.default_count", "must not exceed"),
        ('[storage]\nbackend = "mongo"\n', "storage.backend", "installed: embedded, fake"),
        ('[state]\nbackend = "redis"\n', "state.backend", "installed: sqlite"),
    ],
)
def test_each_error_kind_names_file_key_and_reason(
    tmp_path: Path, toml: str, key: str, reason: str
) -> None:
    path = write(tmp_path, toml)
    err = error_of(path)
    assert len(err.issues) == 1, err
    assert str(err).startswith(f"{path}: {key}: "), err
    assert reason in str(err)


def test_unknown_key_is_an_error_with_a_hint(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, '[server]\nhots = "x"\n'))
    assert str(err).startswith(f"{tmp_path / 'scimd.toml'}: server.hots: unknown key")
    assert 'did you mean "host"' in str(err)


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "[sever]\nport = 1\n"))
    assert "[sever]: unknown section" in str(err)
    assert 'did you mean "[server]"' in str(err)


def test_unknown_backend_option_section_lists_installed(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "[storage.mongo]\nuri = 1\n"))
    assert "[storage.mongo]: unknown storage backend 'mongo'; installed: embedded, fake" in str(err)


def test_top_level_key_is_an_error(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "port = 1\n"))
    assert "port: settings belong in a section" in str(err)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "[server\n"))
    assert str(err).startswith(f"{tmp_path / 'scimd.toml'}: invalid TOML")
    err = error_of(tmp_path / "nope.toml")
    assert str(err) == f"{tmp_path / 'nope.toml'}: no such file"


def test_all_errors_are_reported_together(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, '[server]\nport = "x"\nworkers = 0\n[bulk]\nenabled = "y"\n'))
    assert [i.key for i in err.issues] == ["server.port", "server.workers", "bulk.enabled"]


# --------------------------------------------------------------------------- environment


def test_env_overrides_server_host_and_port(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nhost = "127.0.0.1"\nport = 8080\n')
    loaded = load(path, {"SCIMD_SERVER_HOST": "0.0.0.0", "SCIMD_SERVER_PORT": "9443"})
    assert loaded.settings.server.host == "0.0.0.0"
    assert loaded.settings.server.port == 9443
    assert str(loaded.origins["server.port"]) == "env SCIMD_SERVER_PORT"


def test_env_values_are_parsed_by_type(tmp_path: Path) -> None:
    s = load(
        None,
        {
            "SCIMD_SERVER_ANONYMOUS_DISCOVERY": "yes",
            "SCIMD_SCIM_CURSOR_TTL": "15m",
            "SCIMD_PLUGINS_BLOCK": "ldap, http",
            "SCIMD_SCHEMA_FILES": "a.json,b.json",
            "SCIMD_STORAGE_FAKE_POOL_SIZE": "8",
        },
    ).settings
    assert s.server.anonymous_discovery is True
    assert s.scim.cursor_ttl == 900.0
    assert s.plugins.block == ("ldap", "http")
    assert s.schema.files == (Path.cwd() / "a.json", Path.cwd() / "b.json")
    assert s.storage.options["fake"]["pool_size"] == 8


def test_env_type_error_names_the_variable(tmp_path: Path) -> None:
    err = error_of(None, {"SCIMD_SERVER_PORT": "abc"})
    assert str(err) == (
        "SCIMD_SERVER_PORT (environment): server.port: expected an integer between 1 and "
        '65535, got "abc"'
    )


def test_env_typo_in_known_section_is_an_error() -> None:
    err = error_of(None, {"SCIMD_SERVER_PROT": "1"})
    assert "SCIMD_SERVER_PROT: no such setting (did you mean SCIMD_SERVER_PORT?)" in str(err)


def test_unrelated_scimd_env_vars_are_ignored() -> None:
    load(None, {"SCIMD_CONFIG": "/x.toml", "SCIMD_DEBUG": "1"})


# --------------------------------------------------------------------------- secrets


def test_plain_secret_in_file_is_an_error(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, '[scim]\ncursor_secret = "hunter2"\n'))
    assert str(err).startswith(f"{tmp_path / 'scimd.toml'}: scim.cursor_secret: secrets must")
    assert "hunter2" not in str(err)


def test_secret_by_env_reference(tmp_path: Path) -> None:
    path = write(tmp_path, '[scim]\ncursor_secret = { "$env" = "CURSOR_KEY" }\n')
    loaded = load(path, {"CURSOR_KEY": "s3cr3t"})
    assert loaded.settings.scim.cursor_secret == "s3cr3t"
    assert str(loaded.origins["scim.cursor_secret"]) == f"{path}:2 ($env CURSOR_KEY)"


def test_secret_by_file_reference_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "cursor").write_text("from-file\n")
    path = write(tmp_path, '[scim]\ncursor_secret = { "$file" = "secrets/cursor" }\n')
    assert load(path).settings.scim.cursor_secret == "from-file"


def test_missing_secret_reference_is_an_error(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, '[scim]\ncursor_secret = { "$env" = "NOPE" }\n'))
    assert "scim.cursor_secret: environment variable NOPE (from $env) is not set" in str(err)
    err = error_of(write(tmp_path, '[scim]\ncursor_secret = { "$file" = "missing" }\n'))
    assert "scim.cursor_secret: cannot read $file" in str(err)
    err = error_of(write(tmp_path, '[scim]\ncursor_secret = { "$vault" = "x" }\n'))
    assert "scim.cursor_secret: a reference is" in str(err)


def test_plugin_declared_secret_option(tmp_path: Path) -> None:
    path = write(tmp_path, '[storage.fake]\ndsn = "postgres://u:pw@h/db"\n')
    assert "storage.fake.dsn: secrets must not be written" in str(error_of(path))
    path = write(tmp_path, '[storage.fake]\ndsn = { "$env" = "PG_DSN" }\n')
    s = load(path, {"PG_DSN": "postgres://u:pw@h/db"}).settings
    assert s.storage.options["fake"]["dsn"] == "postgres://u:pw@h/db"


# --------------------------------------------------------------------------- paths & options


def test_relative_paths_resolve_against_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "etc"
    conf.mkdir()
    monkeypatch.chdir(tmp_path)
    path = write(
        conf,
        """
[storage]
backend = "fake"
[storage.fake]
path = "data/fake.db"
[state]
path = "data/state.db"
[schema]
files = ["schemas/custom.json", "/abs/x.json"]
""",
    )
    s = load(path).settings
    base = conf.resolve()
    assert s.storage.backend_options()["path"] == base / "data/fake.db"
    assert s.state.path == base / "data/state.db"
    assert s.schema.files == (base / "schemas/custom.json", Path("/abs/x.json"))


def test_default_paths_resolve_against_config_dir(tmp_path: Path) -> None:
    s = load(write(tmp_path, "")).settings
    assert s.state.path == tmp_path.resolve() / "scimd-state.db"


def test_active_backend_gets_declared_defaults(tmp_path: Path) -> None:
    s = load(write(tmp_path, '[storage]\nbackend = "fake"\n')).settings
    assert s.storage.backend_options() == {
        "path": tmp_path.resolve() / "fake.db",
        "dsn": "",
        "pool_size": 4,
    }


def test_backend_option_errors_name_the_option(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, '[storage.fake]\npool_size = 0\nflavor = "x"\n'))
    text = str(err)
    assert "storage.fake.pool_size: expected an integer >= 1, got 0" in text
    assert "storage.fake.flavor: unknown key" in text


def test_undeclared_backend_options_pass_through(tmp_path: Path) -> None:
    pm = make_plugins(NoOptionsBackendPlugin())
    path = write(tmp_path, '[storage]\nbackend = "bare"\n[storage.bare]\npath = "x.db"\nn = 3\n')
    s = load(path, pm=pm).settings
    assert s.storage.backend_options() == {"path": tmp_path.resolve() / "x.db", "n": 3}


def test_undeclared_backend_options_take_env_overrides(tmp_path: Path) -> None:
    pm = make_plugins(NoOptionsBackendPlugin())
    path = write(tmp_path, '[storage]\nbackend = "bare"\n[storage.bare]\npath = "x.db"\nn = 3\n')
    env = {"SCIMD_STORAGE_BARE_N": "5", "SCIMD_STORAGE_BARE_PATH": "y.db"}
    loaded = load(path, env, pm=pm)
    assert loaded.settings.storage.backend_options() == {"path": tmp_path / "y.db", "n": 5}
    assert str(loaded.origins["storage.bare.n"]) == "env SCIMD_STORAGE_BARE_N"
    err = error_of_with(path, {"SCIMD_STORAGE_BARE_N": "many"}, pm)
    assert (
        str(err) == "SCIMD_STORAGE_BARE_N (environment): storage.bare.n: expected a value "
        'like 3, got "many"'
    )


def error_of_with(path: Path, env: dict[str, str], pm: PluginManager) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(path, env, pm)
    return info.value


def test_plugin_sections_go_to_extra(tmp_path: Path) -> None:
    s = load(write(tmp_path, '[webhook]\nurl = "https://hooks.example/x"\n')).settings
    assert s.extra == {"webhook": {"url": "https://hooks.example/x"}}


def test_load_settings_builds_plugins_itself_when_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured: dict[str, object] = {}
    pm = make_plugins()

    def fake_create(**kwargs: object) -> PluginManager:
        captured.update(kwargs)
        return pm

    monkeypatch.setattr(PluginManager, "create", staticmethod(fake_create))
    path = write(tmp_path, '[plugins]\nblock = ["ldap"]\n')
    s = load_settings(path, environ={})
    assert s.plugins.block == ("ldap",)
    assert captured == {"block": ("ldap",)}  # the block list applies before plugins load


# --------------------------------------------------------------------------- show-config


def test_show_config_shows_origins_and_masks_secrets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[server]\nport = 9000\n\n[scim]\ncursor_secret = { "$env" = "K" }\n'
        '[storage.fake]\ndsn = { "$env" = "DSN" }\n',
    )
    loaded = load(path, {"K": "topsecret-value", "DSN": "pg://u:pw@h", "SCIMD_SERVER_HOST": "::"})
    out = show_config(loaded)
    assert "topsecret-value" not in out
    assert "pg://u:pw@h" not in out
    assert f'cursor_secret = "********"  # {path}:5 ($env K)' in out
    assert f"port = 9000  # {path}:2" in out
    assert 'host = "::"  # env SCIMD_SERVER_HOST' in out
    assert 'base_path = "/scim/v2"  # default' in out
    assert 'dsn = "********"' in out


def test_show_config_output_is_valid_toml(tmp_path: Path) -> None:
    import tomllib

    doc = tomllib.loads(show_config(load(None)))
    assert doc["server"]["port"] == 8080


def test_show_config_masks_passthrough_secrets(tmp_path: Path) -> None:
    pm = make_plugins(NoOptionsBackendPlugin())
    path = write(tmp_path, '[storage.bare]\napi_token = { "$env" = "T" }\nregion = "eu"\n')
    out = show_config(load(path, {"T": "tok-123"}, pm=pm))
    assert "tok-123" not in out
    assert 'region = "eu"' in out


# --------------------------------------------------------------------------- finding the file


def test_find_config_file_order(tmp_path: Path) -> None:
    assert find_config_file("x.toml", environ={}, cwd=tmp_path) == Path("x.toml")
    assert find_config_file(None, environ={"SCIMD_CONFIG": "/e.toml"}, cwd=tmp_path) == Path(
        "/e.toml"
    )
    assert find_config_file(None, environ={}, cwd=tmp_path) is None
    write(tmp_path, "")
    assert find_config_file(None, environ={}, cwd=tmp_path) == tmp_path / "scimd.toml"


def test_configure_hook_receives_settings() -> None:
    plugin = FakeBackendPlugin()
    pm = PluginManager.create(
        builtins=("scimd.state.plugin",), entry_points=False, extra=[plugin, EmbeddedStandIn()]
    )
    loaded = load(None, pm=pm)
    pm.configure(loaded.settings)
    assert plugin.configured == [loaded.settings]
