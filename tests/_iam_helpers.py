"""Helpers for end-to-end tests against a real OIDC provider: ``pytest-iam`` (Canaille)
runs in a thread on loopback; these helpers create its users and clients, drive a real
authorization-code login over HTTP (authorize -> code -> token endpoint -> id_token), hand
the id_token to scimd's JIT hook, and make Canaille push its users and groups to scimd with
its own SCIM client (``canaille.scim.client``: scim2-client's SyncSCIMClient over httpx).

The fixtures here (``iam_configuration``, ``http``, ``rp``) are imported by the test
modules that use them (as ``*_fixture``: the fixture name is set by ``name=``)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from scimd.jit.config import JitCaller, JitIdp
from scimd.settings import JitSettings, Settings
from tests._http_helpers import BASE, AiohttpClient, make_settings
from tests._jit_helpers import JitApp, make_jit_app

__all__ = [
    "CALLER_SECRET",
    "CanaillePush",
    "IamClient",
    "OidcLogin",
    "authorization_code_login",
    "discover",
    "hook",
    "http_fixture",
    "iam_configuration_fixture",
    "iam_idp",
    "iam_jit_settings",
    "jit_for",
    "login_via_hook",
    "make_iam_client",
    "make_iam_user",
    "new_user",
    "remove_iam_client",
    "rp_fixture",
    "save_iam",
    "scim_users",
    "without_pagination",
]

CALLER_SECRET = "whsec_" + base64.b64encode(b"e2e-oidc-caller-secret-32-bytes!").decode()
REDIRECT_URI = "http://127.0.0.1:9/callback"
"""Never contacted: the test reads the code from the provider's redirect."""


@dataclasses.dataclass(frozen=True, slots=True)
class IamClient:
    client_id: str
    client_secret: str
    redirect_uri: str
    model: Any


@dataclasses.dataclass(frozen=True, slots=True)
class OidcLogin:
    id_token: str
    nonce: str
    tokens: dict[str, Any]


def iam_base(iam_server: Any) -> str:
    """The provider's URL: ``http://localhost:<port>`` (loopback; Canaille redirects any
    other Host to its configured ``SERVER_NAME``, so its own URLs are used as given)."""
    return str(iam_server.url).rstrip("/")


def make_iam_user(iam_server: Any, **kw: Any) -> Any:
    """A user in the provider (``models.User`` fields: user_name, emails, ...)."""
    with iam_server.app.app_context():
        user = iam_server.models.User(**kw)
        iam_server.backend.save(user)
    return user


def save_iam(iam_server: Any, obj: Any, **changes: Any) -> None:
    with iam_server.app.app_context():
        iam_server.backend.update(obj, **changes)
        iam_server.backend.save(obj)


def make_iam_client(
    iam_server: Any, *, client_uri: str | None = None, redirect_uri: str = REDIRECT_URI
) -> IamClient:
    """A confidential OIDC client (authorization code, ``client_secret_basic``)."""
    client_id = "rp-" + uuid.uuid4().hex[:12]
    secret = secrets.token_urlsafe(24)
    with iam_server.app.app_context():
        model = iam_server.models.Client(
            client_id=client_id,
            client_secret=secret,
            client_name="scimd e2e " + client_id,
            client_uri=client_uri,
            redirect_uris=[redirect_uri],
            grant_types=["authorization_code"],
            response_types=["code"],
            token_endpoint_auth_method="client_secret_basic",
            scope=["openid", "profile", "email"],
            client_id_issued_at=datetime.datetime.now(datetime.UTC),
            id_token_signed_response_alg="RS256",
        )
        iam_server.backend.save(model)
        # The id_token's "aud" lists the client's audience (as dynamic registration sets).
        iam_server.backend.update(model, audience=[model])
        iam_server.backend.save(model)
    return IamClient(client_id, secret, redirect_uri, model)


def remove_iam_client(iam_server: Any, client: IamClient) -> None:
    """Delete a client and its consents (so later user saves push nowhere)."""
    with iam_server.app.app_context():
        backend = iam_server.backend
        for consent in backend.query(iam_server.models.Consent, client=client.model):
            backend.delete(consent)
        for token in backend.query(iam_server.models.Token, client=client.model):
            backend.delete(token)
        backend.delete(client.model)


async def discover(session: aiohttp.ClientSession, iam_server: Any) -> dict[str, Any]:
    """The provider's OpenID Connect discovery document."""
    url = iam_base(iam_server) + "/.well-known/openid-configuration"
    async with session.get(url) as resp:
        assert resp.status == 200, await resp.text()
        doc: dict[str, Any] = await resp.json()
    return doc


async def authorization_code_login(
    session: aiohttp.ClientSession, iam_server: Any, client: IamClient, user: Any
) -> OidcLogin:
    """A real authorization-code login of ``user`` (session opened and consent given in
    the provider, as after its login and consent screens): authorize -> code -> token."""
    iam_server.login(user)
    iam_server.consent(user, client.model)
    try:
        meta = await discover(session, iam_server)
        nonce, state = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client.client_id,
                "redirect_uri": client.redirect_uri,
                "scope": "openid profile email",
                "nonce": nonce,
                "state": state,
            }
        )
        authorize = meta["authorization_endpoint"]
        async with session.get(f"{authorize}?{query}", allow_redirects=False) as resp:
            assert resp.status == 302, await resp.text()
            location = resp.headers["Location"]
    finally:
        iam_server.logout()
    assert location.startswith(client.redirect_uri), location
    params = parse_qs(urlsplit(location).query)
    assert params["state"] == [state]
    code = params["code"][0]
    token_url = meta["token_endpoint"]
    basic = f"{client.client_id}:{client.client_secret}".encode()
    async with session.post(
        token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
        },
        headers={"Authorization": "Basic " + base64.b64encode(basic).decode()},
    ) as resp:
        assert resp.status == 200, await resp.text()
        tokens: dict[str, Any] = await resp.json()
    return OidcLogin(tokens["id_token"], nonce, tokens)


def iam_idp(meta: dict[str, Any], client_id: str, **kw: Any) -> JitIdp:
    """The scimd IdP entry for the provider: issuer from discovery, keys from its real
    ``jwks_uri`` (http on loopback)."""
    base: dict[str, Any] = {
        "id": "iam",
        "issuer": meta["issuer"],
        "audiences": (client_id,),
        "jwks_uri": meta["jwks_uri"],
        "algorithms": ("RS256",),
        "trust_email": True,
        "attributes": {
            "userName": "email",
            "name.givenName": "given_name",
            "name.familyName": "family_name",
        },
    }
    base.update(kw)
    return JitIdp(**base)


def iam_jit_settings(tmp_path: Path, idp: JitIdp, **sections: Any) -> Settings:
    caller = JitCaller(id="rp", auth="hmac", secret=CALLER_SECRET, allowed_idps=(idp.id,))
    settings = make_settings(tmp_path, **sections)
    return dataclasses.replace(
        settings,
        jit=JitSettings(enabled=True, options={"callers": (caller,), "idp": (idp,)}),
    )


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session", name="iam_configuration")
def iam_configuration_fixture(iam_configuration: dict[str, Any]) -> dict[str, Any]:
    """pytest-iam's configuration, plus ``sub`` = the Canaille user id (what its SCIM
    client sends as ``externalId``): the stable key, not the renamable user name.
    ``CANAILLE_SCIM``: the SCIM server's routes exist (Canaille's push builds each user's
    ``meta.location`` from them); its client stays off, a test connects its signal handlers
    around the saves it means to push (:class:`CanaillePush`)."""
    conf = dict(iam_configuration)
    oidc = dict(conf["CANAILLE_OIDC"])
    oidc["USERINFO_MAPPING"] = {"SUB": "{{ user.id }}"}
    conf["CANAILLE_OIDC"] = oidc
    conf["CANAILLE_SCIM"] = {"ENABLE_SERVER": True, "ENABLE_CLIENT": False}
    return conf


@pytest.fixture(name="http")
async def http_fixture() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trust_env=False) as session:
        yield session


@pytest.fixture(name="rp")
def rp_fixture(iam_server: Any) -> Iterator[IamClient]:
    client = make_iam_client(iam_server)
    yield client
    remove_iam_client(iam_server, client)


# ------------------------------------------------------------------ logins through the hook


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
    client_id: str,
    *,
    settings: Callable[[Settings], Settings] | None = None,
    **idp: Any,
) -> JitApp:
    """scimd on loopback with the JIT hook trusting the provider's tokens for ``client_id``
    (``settings`` amends the settings)."""
    meta = await discover(http, iam_server)
    built = iam_jit_settings(tmp_path, iam_idp(meta, client_id, **idp))
    return await make_jit_app(aiohttp_client, tmp_path, settings(built) if settings else built)


async def hook(jit: JitApp, id_token: str, nonce: str) -> tuple[int, Any]:
    """What the application's SSO callback does: hand the id_token to the JIT hook."""
    body = {"idp": "iam", "protocol": "oidc", "id_token": id_token, "nonce": nonce}
    status, doc, _h = await jit.post(body, secret=CALLER_SECRET)
    return status, doc


async def login_via_hook(
    jit: JitApp, http: aiohttp.ClientSession, iam_server: Any, client: IamClient, user: Any
) -> tuple[int, Any]:
    """A real login of ``user`` at the provider, its id_token handed to the hook."""
    login = await authorization_code_login(http, iam_server, client, user)
    return await hook(jit, login.id_token, login.nonce)


async def scim_users(jit: JitApp, filt: str = "") -> list[dict[str, Any]]:
    status, body = await jit.scim.call("GET", "/Users" + (f"?filter={filt}" if filt else ""))
    assert status == 200
    return list(body["Resources"]) if body["totalResults"] else []


# ---------------------------------------------------------------- Canaille's own SCIM push


def without_pagination(settings: Settings) -> Settings:
    """``scim.advertise_pagination = false``: Canaille 0.3's scim2-models (< 0.10) rejects
    the RFC 9865 ``pagination`` block of /ServiceProviderConfig (docs/interop.md)."""
    return dataclasses.replace(
        settings, scim=dataclasses.replace(settings.scim, advertise_pagination=False)
    )


class CanaillePush:
    """Canaille provisioning into scimd with its own code path.

    The SCIM target is a Canaille client whose ``client_uri`` is scimd's SCIM base URL; the
    bearer Canaille presents is its own client token (``models.Token``, no subject), which
    ``canaille.scim.client.get_or_create_token`` finds: it is seeded with a token scimd
    issued. :meth:`save` and :meth:`delete` run Canaille's backend save/delete with its SCIM
    signal handlers connected (``setup_scim_client``), in a thread because the push is
    synchronous httpx and scimd serves on this event loop; dramatiq's eager broker (no
    broker URL) runs ``execute_scim_user_action`` inline. Canaille logs and swallows a failed
    push, so its messages are collected and a test asserts there are none.

    Users log in through another client (the ``rp`` fixture): Canaille's memory backend
    (pytest-iam's) answers ``query(Token, client=c, subject=None)`` with every token of the
    client (attribute filters are OR-ed, ``None`` ignored), so after a login through the
    pushing client its SCIM push could present that user's access token instead."""

    def __init__(self, iam_server: Any, jit: JitApp, client: IamClient) -> None:
        self.iam = iam_server
        self.jit = jit
        self.client = client
        self.messages: list[str] = []

    @classmethod
    async def connect(cls, iam_server: Any, jit: JitApp) -> CanaillePush:
        url = str(jit.client.make_url(BASE))
        client = make_iam_client(iam_server, client_uri=url)
        token = await jit.scim.new_token()
        with iam_server.app.app_context():
            iam_server.backend.save(
                iam_server.models.Token(
                    token_id=secrets.token_urlsafe(24),
                    access_token=token,
                    refresh_token=secrets.token_urlsafe(24),
                    subject=None,
                    audience=[client.model],
                    client=client.model,
                    scope=["openid", "profile"],
                    issue_date=datetime.datetime.now(datetime.UTC),
                    lifetime=3600,
                )
            )
        return cls(iam_server, jit, client)

    def close(self) -> None:
        remove_iam_client(self.iam, self.client)

    def consent(self, user: Any) -> None:
        """Canaille pushes a user to the clients the user consented to."""
        self.iam.consent(user, self.client.model)

    async def save(self, obj: Any, **changes: Any) -> None:
        await self._run(lambda backend: (backend.update(obj, **changes), backend.save(obj)))

    async def delete(self, obj: Any) -> None:
        await self._run(lambda backend: backend.delete(obj))

    async def _run(self, action: Callable[[Any], object]) -> None:
        import canaille.scim.client as canaille_scim  # type: ignore[import-untyped]

        # initiate_scim_client never closes the httpx.Client it opens for each push (its
        # socket would be reported unclosed whenever the garbage collector happens to run,
        # possibly in another test): record the clients it opens and close them here.
        opened: list[Any] = []
        real_client = canaille_scim.httpx_client

        def recording_client(*args: Any, **kwargs: Any) -> Any:
            client = real_client(*args, **kwargs)
            opened.append(client)
            return client

        def work() -> None:
            logger = self.iam.app.logger
            handler = _Collect(self.messages)
            logger.addHandler(handler)
            try:
                with self.iam.app.app_context():
                    canaille_scim.setup_scim_client()
                    try:
                        action(self.iam.backend)
                    finally:
                        canaille_scim.teardown_scim_client()
            finally:
                logger.removeHandler(handler)
                for client in opened:
                    client.close()

        canaille_scim.httpx_client = recording_client
        try:
            await asyncio.to_thread(work)
        finally:
            canaille_scim.httpx_client = real_client


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.INFO)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())
