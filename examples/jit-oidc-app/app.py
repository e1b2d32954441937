"""A small OpenID Connect relying party whose SSO callback provisions the user in scimd.

The flow (authorization code, RFC 6749 4.1 + OpenID Connect Core 3.1):

1. ``GET /login``: make ``state`` and ``nonce``, remember them, redirect the browser to
   the provider's authorization endpoint.
2. ``GET /callback?code=...&state=...``: check ``state``, exchange the code at the token
   endpoint (``client_secret_basic``) for an ``id_token``.
3. Before opening a session, call scimd's JIT hook ``POST /jit/v1/logins`` with the
   ``id_token`` and the ``nonce``, signed per Standard Webhooks. scimd verifies the token
   (signature against the provider's JWKS, ``iss``, ``aud``, ``exp``, ``nonce``, one-time
   use) and creates, links or updates the user; a 4xx answer denies the login.
4. Open a session holding the SCIM user scimd returned.

Only aiohttp and the standard library. Run: ``python app.py config.toml``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import html
import json
import secrets
import sys
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

__all__ = ["Config", "LoginDenied", "RelyingParty", "load_config", "make_app", "sign"]


@dataclasses.dataclass
class Config:
    issuer: str
    """The provider's issuer URL (discovery: ``<issuer>/.well-known/openid-configuration``)."""
    client_id: str
    client_secret: str
    redirect_uri: str
    """This app's ``/callback`` URL, registered at the provider."""
    scimd_url: str
    """scimd's base URL, e.g. ``https://scimd.internal``."""
    hook_secret: str
    """The caller's secret in scimd's ``[[jit.callers]]`` (``whsec_<base64>`` or text)."""
    idp: str
    """The ``[[jit.idp]]`` id of this provider in scimd."""
    scope: str = "openid profile email"


def load_config(path: str | Path) -> Config:
    """Read the ``[oidc]`` and ``[scimd]`` tables of a TOML file (see config.example.toml);
    the secrets are read from the environment variables the file names."""
    import os

    doc = tomllib.loads(Path(path).read_text())
    oidc, scimd = doc["oidc"], doc["scimd"]
    return Config(
        issuer=oidc["issuer"],
        client_id=oidc["client_id"],
        client_secret=os.environ[oidc["client_secret_env"]],
        redirect_uri=oidc["redirect_uri"],
        scope=oidc.get("scope", "openid profile email"),
        scimd_url=scimd["url"],
        hook_secret=os.environ[scimd["hook_secret_env"]],
        idp=scimd["idp"],
    )


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: ``v1,<base64 HMAC-SHA256(key, id.timestamp.body)>``; a
    ``whsec_`` secret is base64 (the Standard Webhooks form), anything else is UTF-8."""
    key = (
        base64.b64decode(secret.removeprefix("whsec_"))
        if secret.startswith("whsec_")
        else secret.encode()
    )
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class LoginDenied(Exception):
    """The login must not open a session (``reason`` from scimd, or a protocol error)."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class RelyingParty:
    """The OIDC client side and the call to scimd's hook (framework independent)."""

    def __init__(self, config: Config, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session
        self._metadata: dict[str, Any] | None = None
        self._pending: dict[str, tuple[str, float]] = {}
        """state -> (nonce, time): logins started and not finished (10 minutes)."""

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            async with self.session.get(url) as resp:
                resp.raise_for_status()
                self._metadata = await resp.json()
        return self._metadata

    async def start_login(self) -> str:
        """Step 1: the provider URL to redirect the browser to."""
        now = time.monotonic()
        self._pending = {s: v for s, v in self._pending.items() if now - v[1] < 600}
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self._pending[state] = (nonce, now)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": self.config.redirect_uri,
                "scope": self.config.scope,
                "state": state,
                "nonce": nonce,
            }
        )
        return f"{(await self.metadata())['authorization_endpoint']}?{query}"

    async def finish_login(self, params: dict[str, str]) -> dict[str, Any]:
        """Steps 2 and 3: the callback's query parameters -> scimd's answer (outcome, SCIM
        user). Raises ``LoginDenied``."""
        if "error" in params:
            raise LoginDenied(params["error"], 401)
        pending = self._pending.pop(params.get("state", ""), None)
        if pending is None or "code" not in params:
            raise LoginDenied("unknown_state", 400)
        nonce = pending[0]
        meta = await self.metadata()
        basic = f"{self.config.client_id}:{self.config.client_secret}".encode()
        async with self.session.post(
            meta["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": self.config.redirect_uri,
            },
            headers={"Authorization": "Basic " + base64.b64encode(basic).decode()},
        ) as resp:
            if resp.status != 200:
                raise LoginDenied("token_exchange_failed", 401)
            tokens = await resp.json()
        return await self.call_hook(tokens["id_token"], nonce)

    async def call_hook(self, id_token: str, nonce: str) -> dict[str, Any]:
        """Step 3: ``POST /jit/v1/logins``. A network error may be retried with the same
        ``webhook-id`` and body: scimd answers the stored result (``Idempotent-Replayed``)."""
        body = json.dumps(
            {"idp": self.config.idp, "protocol": "oidc", "id_token": id_token, "nonce": nonce}
        ).encode()
        msg_id, ts = f"msg_{uuid.uuid4().hex}", int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(self.config.hook_secret, msg_id, ts, body),
        }
        url = self.config.scimd_url.rstrip("/") + "/jit/v1/logins"
        for attempt in (1, 2):
            try:
                async with self.session.post(url, data=body, headers=headers) as resp:
                    result: dict[str, Any] = await resp.json(content_type=None)
                    if resp.status >= 400:
                        raise LoginDenied(str(result.get("reason", "denied")), resp.status)
                    return result
            except aiohttp.ClientConnectionError:
                if attempt == 2:
                    raise LoginDenied("provisioning_unavailable", 503) from None
        raise AssertionError("unreachable")


RP_KEY: web.AppKey[RelyingParty] = web.AppKey("rp", RelyingParty)
SESSIONS_KEY: web.AppKey[dict[str, dict[str, Any]]] = web.AppKey("sessions", dict)
_COOKIE = "rp_session"


async def index(request: web.Request) -> web.Response:
    user = request.app[SESSIONS_KEY].get(request.cookies.get(_COOKIE, ""))
    if user is None:
        return web.Response(text='<a href="/login">Log in</a>', content_type="text/html")
    name = html.escape(str(user.get("userName")))
    return web.Response(text=f"Hello, {name} ({user['id']})", content_type="text/html")


async def login(request: web.Request) -> web.Response:
    raise web.HTTPFound(await request.app[RP_KEY].start_login())


async def callback(request: web.Request) -> web.Response:
    try:
        result = await request.app[RP_KEY].finish_login(dict(request.query))
    except LoginDenied as denied:
        return web.Response(
            status=denied.status, text=f"Login denied: {html.escape(denied.reason)}"
        )
    sid = secrets.token_urlsafe(32)
    request.app[SESSIONS_KEY][sid] = result["user"]
    response = web.HTTPFound("/")
    response.set_cookie(_COOKIE, sid, httponly=True, samesite="Lax")
    raise response


def make_app(config: Config) -> web.Application:
    app = web.Application()
    app[SESSIONS_KEY] = {}

    async def client_session(app: web.Application) -> Any:
        async with aiohttp.ClientSession() as session:
            app[RP_KEY] = RelyingParty(config, session)
            yield

    app.cleanup_ctx.append(client_session)
    app.router.add_get("/", index)
    app.router.add_get("/login", login)
    app.router.add_get("/callback", callback)
    return app


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 2:
        sys.exit("usage: python app.py config.toml")
    web.run_app(make_app(load_config(sys.argv[1])), host="127.0.0.1", port=8000)
