"""The plugin registers the ``ldap`` backend and its settings."""

from __future__ import annotations

from scimd_ldap import plugin


def test_backend_registered() -> None:
    (factory,) = plugin.scimd_backends()
    assert factory.name == "ldap"


def test_settings_declared() -> None:
    specs = {s.key: s for s in plugin.scimd_setting_declarations()}
    assert {"url", "bind_dn", "bind_password", "base_dn"} <= set(specs)
    assert specs["bind_password"].secret
    assert all(s.section == "storage.ldap" for s in specs.values())
