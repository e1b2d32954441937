"""Helpers for end-to-end tests against a real OIDC provider: ``pytest-iam`` (Canaille)
runs in a thread on loopback; these helpers create its users and clients and drive a real
authorization-code login over HTTP (authorize -> code -> token endpoint -> id_token)."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import secrets
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import aiohttp

from scimd.jit.config import JitCaller, JitIdp
from scimd.settings import JitSettings, Settings
from tests._http_helpers import Scim, make_settings

__all__ = [
    "CALLER_SECRET",
    "IamClient",
    "OidcLogin",
    "authorization_code_login",
    "discover",
    "iam_idp",
    "iam_jit_settings",
    "make_iam_client",
    "make_iam_user",
    "push_like_canaille",
    "remove_iam_client",
    "save_iam",
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


async def push_like_canaille(scim: Scim, user: Any) -> dict[str, Any]:
    """Push a provider user to scimd over SCIM as Canaille's SCIM client does
    (``canaille.scim.client.execute_scim_user_action``): look it up by
    ``externalId eq "<canaille id>"``, then POST it, or PUT it over the user found."""
    flt = quote(f'externalId eq "{user.id}"')
    status, found = await scim.call("GET", f"/Users?filter={flt}")
    assert status == 200, found
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user.user_name,
        "externalId": user.id,
        "name": {
            "givenName": user.given_name,
            "familyName": user.family_name,
            "formatted": user.formatted_name,
        },
        "displayName": user.formatted_name,
        "emails": [
            {"value": email, "primary": index == 0} for index, email in enumerate(user.emails)
        ],
        "active": True,
    }
    if found["totalResults"]:
        rid = found["Resources"][0]["id"]
        status, doc = await scim.call("PUT", f"/Users/{rid}", json={**body, "id": rid})
        assert status == 200, doc
    else:
        status, doc = await scim.call("POST", "/Users", json=body)
        assert status == 201, doc
    result: dict[str, Any] = doc
    return result


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


def iam_idp(meta: dict[str, Any], iam_server: Any, client: IamClient, **kw: Any) -> JitIdp:
    """The scimd IdP entry for the provider: issuer from discovery, keys from its real
    ``jwks_uri`` (http on loopback)."""
    base: dict[str, Any] = {
        "id": "iam",
        "issuer": meta["issuer"],
        "audiences": (client.client_id,),
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


def iam_jit_settings(tmp_path: Path, idp: JitIdp) -> Settings:
    caller = JitCaller(id="rp", auth="hmac", secret=CALLER_SECRET, allowed_idps=(idp.id,))
    settings = make_settings(tmp_path)
    return dataclasses.replace(
        settings,
        jit=JitSettings(enabled=True, options={"callers": (caller,), "idp": (idp,)}),
    )
