"""End to end against a real OIDC provider (JIT.md "Real IdPs"; issue 7 item 7).

``pytest-iam`` runs Canaille (an OpenID Connect provider) in a thread on loopback. Each test
makes a real authorization-code login (authorize -> code -> token endpoint) and hands the
``id_token`` and ``nonce`` to ``POST /jit/v1/logins`` with a Standard Webhooks signature;
scimd fetches the provider's keys from its real ``jwks_uri``.

The hybrid path, where Canaille first pushes the user to scimd with its own SCIM client and
the login then links instead of creating, is ``tests/test_jit_e2e_canaille_push.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest

from tests._http_helpers import AiohttpClient
from tests._iam_helpers import (  # noqa: F401 (fixtures)
    CALLER_SECRET,
    IamClient,
    authorization_code_login,
    hook,
    http_fixture,
    iam_configuration_fixture,
    jit_for,
    make_iam_client,
    new_user,
    remove_iam_client,
    rp_fixture,
    scim_users,
)


async def test_real_oidc_login_creates_then_reuses_the_user(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    iam_server: Any,
    rp: IamClient,
) -> None:
    jit = await jit_for(aiohttp_client, tmp_path, http, iam_server, rp.client_id)
    user = new_user(iam_server)
    login = await authorization_code_login(http, iam_server, rp, user)
    status, body = await hook(jit, login.id_token, login.nonce)
    assert status == 201, body
    assert body["outcome"] == "created"
    assert body["identity"] == {"idp": "iam", "subject": user.id, "matched_by": "new"}
    scim_user = body["user"]
    assert scim_user["userName"] == user.emails[0].lower()
    assert scim_user["externalId"] == user.id
    assert scim_user["name"]["givenName"] == "Ann"
    # A second real login (new code, new nonce, new token): the link finds the user.
    again = await authorization_code_login(http, iam_server, rp, user)
    assert again.id_token != login.id_token
    status, body = await hook(jit, again.id_token, again.nonce)
    assert status == 200, body
    assert (body["outcome"], body["identity"]["matched_by"]) == ("unchanged", "link")
    assert body["user"]["id"] == scim_user["id"]
    assert [u["id"] for u in await scim_users(jit)] == [scim_user["id"]]
    # Replaying the first token is refused (one-time use), and so is a wrong nonce.
    assert (await hook(jit, login.id_token, login.nonce))[1]["reason"] == "assertion_replayed"
    third = await authorization_code_login(http, iam_server, rp, user)
    status, body = await hook(jit, third.id_token, "not-the-nonce")
    assert (status, body["reason"]) == (422, "nonce_mismatch")


async def test_token_for_another_client_is_rejected(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    iam_server: Any,
    rp: IamClient,
) -> None:
    jit = await jit_for(aiohttp_client, tmp_path, http, iam_server, rp.client_id)
    other = make_iam_client(iam_server)
    try:
        login = await authorization_code_login(http, iam_server, other, new_user(iam_server))
    finally:
        remove_iam_client(iam_server, other)
    status, body = await hook(jit, login.id_token, login.nonce)
    assert (status, body["reason"]) == (422, "invalid_audience")
    assert await scim_users(jit) == []


# ---------------------------------------------------------------------- the example app

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "jit-oidc-app"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("jit_oidc_example_app", EXAMPLE / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    example = load_example()
    monkeypatch.setenv("EXAMPLE_APP_CLIENT_SECRET", "client-secret")
    monkeypatch.setenv("JIT_GATEWAY_SECRET", CALLER_SECRET)
    config = example.load_config(EXAMPLE / "config.example.toml")
    assert (config.client_id, config.idp, config.hook_secret) == (
        "example-app",
        "example-idp",
        CALLER_SECRET,
    )


async def test_example_app_login_provisions_the_user(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    iam_server: Any,
) -> None:
    """The example's /login and /callback, driven like a browser against pytest-iam, with
    its hook call answered by a real scimd: the user is created, then reused."""
    example = load_example()
    config = example.Config(
        issuer=iam_server.url,
        client_id="",
        client_secret="",
        redirect_uri="",
        scimd_url="",
        hook_secret=CALLER_SECRET,
        idp="iam",
    )
    browser = await aiohttp_client(example.make_app(config))
    client = make_iam_client(iam_server, redirect_uri=str(browser.make_url("/callback")))
    try:
        config.client_id, config.client_secret = client.client_id, client.client_secret
        config.redirect_uri = client.redirect_uri
        jit = await jit_for(aiohttp_client, tmp_path, http, iam_server, client.client_id)
        config.scimd_url = str(jit.client.make_url("/"))
        user = new_user(iam_server)
        ids = []
        for _ in range(2):
            page = await browser_login(browser, http, iam_server, client, user)
            assert page.startswith("Hello, " + user.emails[0].lower()), page
            ids.append(page.rsplit("(", 1)[1].rstrip(")"))
        assert ids[0] == ids[1]
        accepted = await jit.events("jit.login.accepted")
        assert [e.data["outcome"] for e in accepted] == ["created", "unchanged"]
        assert [u["id"] for u in await scim_users(jit)] == [ids[0]]
        # A user SCIM deactivated cannot log in through the app: scimd denies it.
        patch = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        }
        assert (await jit.scim.call("PATCH", f"/Users/{ids[0]}", json=patch))[0] == 200
        denied = await browser_login(browser, http, iam_server, client, user, status=403)
        assert denied == "Login denied: user_deprovisioned"
    finally:
        remove_iam_client(iam_server, client)


async def browser_login(
    browser: Any,
    http: aiohttp.ClientSession,
    iam_server: Any,
    client: IamClient,
    user: Any,
    *,
    status: int = 200,
) -> str:
    """What a browser does: app /login -> provider (session and consent open) -> app
    /callback -> app /. Returns the final page."""
    browser.session.cookie_jar.clear()
    resp = await browser.get("/login", allow_redirects=False)
    assert resp.status == 302
    iam_server.login(user)
    iam_server.consent(user, client.model)
    try:
        async with http.get(resp.headers["Location"], allow_redirects=False) as at_idp:
            assert at_idp.status == 302, await at_idp.text()
            back = at_idp.headers["Location"]
    finally:
        iam_server.logout()
    assert back.startswith(client.redirect_uri)
    resp = await browser.get(back[len(str(browser.make_url(""))) :], allow_redirects=False)
    if resp.status != 302:
        assert resp.status == status, await resp.text()
        return str(await resp.text())
    assert resp.headers["Location"] == "/"
    resp = await browser.get("/")
    assert resp.status == status
    return str(await resp.text())
