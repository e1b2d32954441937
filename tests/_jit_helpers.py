"""JIT test helpers: in-process RSA keys and id_tokens (joserfc), signed calls to the hook,
and a loopback JWKS server (aiohttp) that counts its fetches."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from joserfc import jwt
from joserfc.jwk import RSAKey

from scimd.app import create_app
from scimd.jit.caller import sign
from scimd.jit.config import JitCaller, JitIdp
from scimd.plugins import PluginManager
from scimd.settings import JitSettings, Settings
from tests._http_helpers import AiohttpClient, Scim, make_settings

__all__ = [
    "AUDIENCE",
    "ISSUER",
    "SECRET",
    "JitApp",
    "JwksServer",
    "make_idp",
    "make_jit_app",
    "make_token",
    "rsa_key",
]

ISSUER = "https://idp.example.test"
AUDIENCE = "client-123"
SECRET = "whsec_" + "c2NpbWQtdGVzdC1zZWNyZXQtMzItYnl0ZXMtbG9uZyE="
BEARER = "dev-bearer-token-for-tests"
_KEYS: dict[str, RSAKey] = {}


def rsa_key(kid: str = "k1") -> RSAKey:
    """An RSA key (cached per kid for speed)."""
    if kid not in _KEYS:
        _KEYS[kid] = RSAKey.generate_key(2048, parameters={"kid": kid})
    return _KEYS[kid]


def public_jwks(*keys: RSAKey) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def make_token(
    key: Any = None,
    *,
    header: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    """A signed id_token with good defaults (iss, aud, sub, nonce, iat, exp, email)."""
    key = key or rsa_key()
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "sub-1",
        "nonce": "n-1",
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_hex(8),
        "email": "Ann@Example.com",
        "email_verified": True,
        "given_name": "Ann",
        "family_name": "Smith",
    }
    body.update(claims)
    for name in drop:
        body.pop(name, None)
    head = {"alg": "RS256", "kid": getattr(key, "kid", None) or "k1"}
    head.update(header or {})
    return jwt.encode(head, body, key)


def make_idp(**kw: Any) -> JitIdp:
    base: dict[str, Any] = {
        "id": "okta",
        "issuer": ISSUER,
        "audiences": (AUDIENCE,),
        "jwks": public_jwks(rsa_key()),
        "attributes": {
            "userName": "email",
            "name.givenName": "given_name",
            "name.familyName": "family_name",
        },
    }
    base.update(kw)
    return JitIdp(**base)


class JitApp:
    """A running scimd with JIT enabled: ``await app.login(...)`` signs and posts."""

    def __init__(self, scim: Scim) -> None:
        self.scim = scim
        self.client = scim.client

    async def post(
        self,
        body: Any,
        *,
        secret: str = SECRET,
        msg_id: str | None = None,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        msg_id = msg_id or "msg_" + secrets.token_hex(8)
        ts = int(time.time()) if timestamp is None else timestamp
        h = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(secret, msg_id, ts, raw),
        }
        h.update(headers or {})
        resp = await self.client.post("/jit/v1/logins", data=raw, headers=h)
        data = await resp.read()
        return resp.status, orjson.loads(data) if data else None, dict(resp.headers)

    async def login(self, token: str | None = None, *, nonce: str = "n-1", **kw: Any) -> Any:
        body = {"idp": "okta", "protocol": "oidc", "id_token": token or make_token()}
        if nonce is not None:
            body["nonce"] = nonce
        extra = kw.pop("body", None)
        if extra:
            body.update(extra)
        return await self.post(body, **kw)

    async def events(self, prefix: str = "jit.") -> list[Any]:
        return await self.scim.state.list_events(type_prefix=prefix)


MakeJit = Callable[..., Awaitable[JitApp]]


def jit_settings(
    tmp_path: Path,
    idps: tuple[JitIdp, ...],
    *,
    callers: tuple[JitCaller, ...] | None = None,
    enabled: bool = True,
    **jit: Any,
) -> Settings:
    callers = callers or (
        JitCaller(id="gw", auth="hmac", secret=SECRET, allowed_idps=tuple(i.id for i in idps)),
    )
    settings = make_settings(tmp_path)
    return dataclasses.replace(
        settings,
        jit=JitSettings(enabled=enabled, options={"callers": callers, "idp": idps}, **jit),
    )


async def make_jit_app(aiohttp_client: AiohttpClient, tmp_path: Path, settings: Settings) -> JitApp:
    app = create_app(settings, PluginManager.create(entry_points=False))
    client = await aiohttp_client(app)
    from scimd.http.context import RUNTIME

    _record, token = await app[RUNTIME].state.create_token(
        tenant="default", scopes=("read", "write")
    )
    return JitApp(Scim(client, token))


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 whose keys the test changes; counts fetches."""

    def __init__(self) -> None:
        self.keys: list[RSAKey] = [rsa_key()]
        self.fetches = 0
        self.status = 200
        app = web.Application()
        app.router.add_get("/keys", self._keys)
        self.server = TestServer(app, host="127.0.0.1")

    async def _keys(self, _request: web.Request) -> web.Response:
        self.fetches += 1
        if self.status != 200:
            return web.Response(status=self.status)
        return web.json_response(public_jwks(*self.keys))

    async def start(self) -> str:
        await self.server.start_server()
        return str(self.server.make_url("/keys"))

    async def close(self) -> None:
        await self.server.close()


__all__ += ["BEARER", "MakeJit", "TestClient", "jit_settings", "public_jwks"]
