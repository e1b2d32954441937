"""End to end against a real OIDC provider (JIT.md "Real IdPs"; issue 7 item 7).

``pytest-iam`` runs Canaille (an OpenID Connect provider) in a thread on loopback. Each test
makes a real authorization-code login (authorize -> code -> token endpoint) and hands the
``id_token`` and ``nonce`` to ``POST /jit/v1/logins`` with a Standard Webhooks signature;
scimd fetches the provider's keys from its real ``jwks_uri``.

The hybrid path: the provider's user is first pushed to scimd over SCIM the way Canaille's
SCIM client does it (``GET /Users?filter=externalId eq "<canaille id>"``, then ``POST /Users``
with ``externalId`` = the Canaille user id, which the provider is configured to use as
``sub``), and the login then links instead of creating. Canaille's own client (its ``scim``
extra) is not used: Canaille 0.3.6 needs scim2-client 0.7.x, whose scim2-models rejects
scimd's RFC 9865 ``pagination`` member in ``/ServiceProviderConfig`` (extra fields
forbidden), so its discovery fails; the push is replayed over HTTP instead.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest

from tests._http_helpers import AiohttpClient
from tests._iam_helpers import (
    CALLER_SECRET,
    IamClient,
    authorization_code_login,
    discover,
    iam_idp,
    iam_jit_settings,
    make_iam_client,
    make_iam_user,
    push_like_canaille,
    remove_iam_client,
    save_iam,
)
from tests._jit_helpers import JitApp, make_jit_app


@pytest.fixture(scope="session")
def iam_configuration(iam_configuration: dict[str, Any]) -> dict[str, Any]:
    """pytest-iam's configuration, plus ``sub`` = the Canaille user id (what its SCIM
    client sends as ``externalId``): the stable key, not the renamable user name."""
    conf = dict(iam_configuration)
    oidc = dict(conf["CANAILLE_OIDC"])
    oidc["USERINFO_MAPPING"] = {"SUB": "{{ user.id }}"}
    conf["CANAILLE_OIDC"] = oidc
    return conf


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trust_env=False) as session:
        yield session


@pytest.fixture
def rp(iam_server: Any) -> Iterator[IamClient]:
    client = make_iam_client(iam_server)
    yield client
    remove_iam_client(iam_server, client)


def new_user(iam_server: Any, email: str = "") -> Any:
    tag = uuid.uuid4().hex[:8]
    return make_iam_user(
        iam_server,
        user_name=f"ann-{tag}",
        given_name="Ann",
        family_name="Smith",
        formatted_name="Ann Smith",
        emails=[email or f"Ann.{tag}@Example.com"],
        password="correct horse battery staple",
    )


async def jit_for(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    iam_server: Any,
    client: IamClient,
    **idp: Any,
) -> JitApp:
    meta = await discover(http, iam_server)
    settings = iam_jit_settings(tmp_path, iam_idp(meta, iam_server, client, **idp))
    return await make_jit_app(aiohttp_client, tmp_path, settings)


async def hook(jit: JitApp, id_token: str, nonce: str) -> tuple[int, Any]:
    body = {"idp": "iam", "protocol": "oidc", "id_token": id_token, "nonce": nonce}
    status, doc, _h = await jit.post(body, secret=CALLER_SECRET)
    return status, doc


async def users(jit: JitApp, filt: str = "") -> list[dict[str, Any]]:
    status, body = await jit.scim.call("GET", "/Users" + (f"?filter={filt}" if filt else ""))
    assert status == 200
    return list(body["Resources"]) if body["totalResults"] else []


async def test_real_oidc_login_creates_then_reuses_the_user(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    iam_server: Any,
    rp: IamClient,
) -> None:
    jit = await jit_for(aiohttp_client, tmp_path, http, iam_server, rp)
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
    assert [u["id"] for u in await users(jit)] == [scim_user["id"]]
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
    jit = await jit_for(aiohttp_client, tmp_path, http, iam_server, rp)
    other = make_iam_client(iam_server)
    try:
        login = await authorization_code_login(http, iam_server, other, new_user(iam_server))
    finally:
        remove_iam_client(iam_server, other)
    status, body = await hook(jit, login.id_token, login.nonce)
    assert (status, body["reason"]) == (422, "invalid_audience")
    assert await users(jit) == []


async def test_provider_pushes_over_scim_then_login_links(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    iam_server: Any,
    rp: IamClient,
) -> None:
    jit = await jit_for(aiohttp_client, tmp_path, http, iam_server, rp)
    user = new_user(iam_server)
    pushed = await push_like_canaille(jit.scim, user)
    assert pushed["externalId"] == user.id and pushed["userName"] == user.user_name
    login = await authorization_code_login(http, iam_server, rp, user)
    status, body = await hook(jit, login.id_token, login.nonce)
    assert status == 200, body
    assert body["outcome"] == "linked"
    assert body["identity"] == {"idp": "iam", "subject": user.id, "matched_by": "scim_correlation"}
    assert body["user"]["id"] == pushed["id"]
    # userName is SCIM-owned (default ownership): the login did not overwrite it.
    assert body["user"]["userName"] == user.user_name
    assert [u["id"] for u in await users(jit)] == [pushed["id"]]
    again = await authorization_code_login(http, iam_server, rp, user)
    status, body = await hook(jit, again.id_token, again.nonce)
    assert (status, body["identity"]["matched_by"]) == (200, "link")
    # The provider's next push finds the same user by externalId and replaces it (PUT),
    # as Canaille's client does: still one user, the link intact.
    save_iam(iam_server, user, family_name="Smith-Jones")
    replaced = await push_like_canaille(jit.scim, user)
    assert replaced["id"] == pushed["id"] and replaced["name"]["familyName"] == "Smith-Jones"
    third = await authorization_code_login(http, iam_server, rp, user)
    status, body = await hook(jit, third.id_token, third.nonce)
    assert (status, body["identity"]["matched_by"], body["user"]["id"]) == (
        200,
        "link",
        pushed["id"],
    )
    assert len(await users(jit)) == 1


async def test_jit_created_user_is_adopted_by_a_later_push(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    iam_server: Any,
    rp: IamClient,
) -> None:
    """The other door first: JIT creates the user (externalId = sub); the provider's
    later push finds it with its ``externalId eq`` query and replaces it, no duplicate."""
    jit = await jit_for(aiohttp_client, tmp_path, http, iam_server, rp)
    user = new_user(iam_server)
    login = await authorization_code_login(http, iam_server, rp, user)
    status, body = await hook(jit, login.id_token, login.nonce)
    assert status == 201, body
    adopted = await push_like_canaille(jit.scim, user)
    assert adopted["id"] == body["user"]["id"]
    assert adopted["userName"] == user.user_name
    assert len(await users(jit)) == 1


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
        jit = await jit_for(aiohttp_client, tmp_path, http, iam_server, client)
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
        assert [u["id"] for u in await users(jit)] == [ids[0]]
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
