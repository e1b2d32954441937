"""The [jit] keys and the [[jit.callers]] / [[jit.idp]] arrays of tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scimd.config import ConfigError, load_settings
from scimd.plugins import PluginManager
from scimd.settings import Settings
from tests._jit_helpers import public_jwks, rsa_key

GOOD = """
[jit]
enabled = true
clock_skew = "60s"
idempotency_ttl = "1h"

[[jit.callers]]
id = "sso-gateway"
auth = "hmac"
secret = { "$env" = "JIT_SECRET" }
allowed_idps = ["okta-prod"]

[[jit.idp]]
id = "okta-prod"
protocol = "oidc"
mode = "verify"
tenant = "acme"
issuer = "https://example.okta.com/oauth2/default"
audiences = ["0oa1clientid"]
jwks_uri = "https://example.okta.com/oauth2/default/v1/keys"
algorithms = ["RS256"]
allowed_email_domains = ["example.com"]
create_users = true
scim_authoritative = false
scim_correlation = { scim_attribute = "externalId", claim = "sub" }
link_by_email = "verified_domain_only"
update_on_login = "owned_attributes"
on_deprovisioned = "deny"
on_deleted = "deny"
attributes = { userName = "email", "name.givenName" = "given_name" }
ownership = { default = "scim", displayName = "jit_if_empty" }
groups = { claim = "groups", mode = "sync", managed = ["eng", "admins"] }
"""

ENV = {"JIT_SECRET": "whsec_c2NpbWQtdGVzdC1zZWNyZXQtMzItYnl0ZXMtbG9uZyE="}


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "scimd.toml"
    path.write_text(text)
    return load_settings(
        path, environ=ENV if env is None else env, plugins=PluginManager.create(entry_points=False)
    )


def errors(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return str(info.value)


def test_documented_sketch_loads(tmp_path: Path) -> None:
    s = load(tmp_path, GOOD)
    jit = s.jit
    assert (jit.enabled, jit.clock_skew, jit.idempotency_ttl) == (True, 60.0, 3600.0)
    (caller,) = jit.callers
    assert (caller.id, caller.auth, caller.allowed_idps) == ("sso-gateway", "hmac", ("okta-prod",))
    assert caller.secret == ENV["JIT_SECRET"]
    (idp,) = jit.idp
    assert idp.tenant == "acme" and idp.groups.managed == ("eng", "admins")
    assert idp.owner("displayName") == "jit_if_empty" and idp.owner("title") == "scim"
    assert "whsec" not in repr(caller)  # the secret is not in reprs


def test_defaults_when_absent(tmp_path: Path) -> None:
    s = load(tmp_path, "[server]\nport = 8080\n")
    assert s.jit.enabled is False and s.jit.callers == ()


def test_plain_secret_is_an_error(tmp_path: Path) -> None:
    text = GOOD.replace('{ "$env" = "JIT_SECRET" }', '"whsec_abc"')
    msg = errors(tmp_path, text)
    assert f"{tmp_path / 'scimd.toml'}: jit.callers[0].secret: secrets must not" in msg


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        ('algorithms = ["RS256"]', 'algorithms = ["HS256"]', "jit.idp[0].algorithms", "HS256"),
        ('algorithms = ["RS256"]', 'algorithms = ["none"]', "jit.idp[0].algorithms", "none"),
        ('auth = "hmac"', 'auth = "mtls"', "jit.callers[0].spki_sha256", "required for an mtls"),
        ('protocol = "oidc"', 'protocol = "saml2"', "jit.idp[0].issuer", "only for protocol"),
        ('allowed_idps = ["okta-prod"]', 'allowed_idps = ["nope"]', "allowed_idps", "unknown IdP"),
        ('issuer = "https://', 'isuer = "https://', "jit.idp[0].isuer", 'did you mean "issuer"'),
        ('on_deleted = "deny"', 'on_deleted = "maybe"', "jit.idp[0].on_deleted", "one of"),
        (
            "https://example.okta.com/oauth2/default/v1/keys",
            "http://evil/keys",
            "jwks_uri",
            "https",
        ),
        ('mode = "sync"', 'mode = "merge"', "jit.idp[0].groups.mode", "one of"),
        ('displayName = "jit_if_empty"', 'displayName = "x"', "ownership.displayName", "one of"),
    ],
)
def test_errors_name_file_key_and_reason(
    tmp_path: Path, old: str, new: str, key: str, reason: str
) -> None:
    assert old in GOOD
    msg = errors(tmp_path, GOOD.replace(old, new))
    assert str(tmp_path / "scimd.toml") in msg
    assert key in msg and reason in msg, msg


def test_missing_env_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, GOOD, env={})
    assert "jit.callers[0].secret: environment variable JIT_SECRET" in str(info.value)


def test_pinned_jwks_file(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text(json.dumps(public_jwks(rsa_key())))
    text = GOOD.replace(
        'jwks_uri = "https://example.okta.com/oauth2/default/v1/keys"', 'jwks_file = "keys.json"'
    )
    (idp,) = load(tmp_path, text).jit.idp
    assert idp.jwks is not None and idp.jwks_uri == ""


def test_private_keys_in_jwks_are_refused(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [rsa_key().as_dict(private=True)]}))
    text = GOOD.replace(
        'jwks_uri = "https://example.okta.com/oauth2/default/v1/keys"', 'jwks_file = "keys.json"'
    )
    assert "must not contain private keys" in errors(tmp_path, text)


def test_environment_overrides_scalar_keys(tmp_path: Path) -> None:
    s = load(tmp_path, GOOD, env={**ENV, "SCIMD_JIT_ENABLED": "false"})
    assert s.jit.enabled is False


async def test_state_schema_v1_migrates_to_jit_tables(tmp_path: Path) -> None:
    import sqlite3
    from datetime import UTC, datetime, timedelta

    from scimd.state import sqlite as state_sqlite

    db = tmp_path / "state.db"
    conn = sqlite3.connect(db)
    for statement in state_sqlite._MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("INSERT INTO kv (name, value, created) VALUES ('cursor', x'00', 'now')")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = state_sqlite.SqliteStateStore(db)
    await store.start()
    try:
        assert await store.get_or_create_secret("cursor") == b"\x00"  # data kept
        assert await store.put_identity_link("t", "okta", "s", "u1") == "u1"
        assert await store.put_identity_link("t", "okta", "s", "u2") == "u1"  # first wins
        later = datetime.now(UTC) + timedelta(minutes=5)
        assert await store.claim_replay("okta:jti:1", later) is True
        assert await store.claim_replay("okta:jti:1", later) is False
    finally:
        await store.aclose()
    assert (
        sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0]
        == state_sqlite.SCHEMA_VERSION
    )
