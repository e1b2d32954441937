"""A real aiohttp server on loopback that proxies to the upstream scimd and injects faults:
an answer status (429 with Retry-After, 503), a slow answer, a dropped connection. It can
also act as an OAuth2 token endpoint (client credentials) in front of the upstream."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["Fault", "FaultProxy"]


@dataclass
class Fault:
    kind: str  # "status" | "slow" | "drop"
    status: int = 503
    retry_after: str | None = None


@dataclass
class FaultProxy:
    upstream_url: str
    upstream_token: str
    faults: list[Fault] = field(default_factory=list)
    always: Fault | None = None
    seen: Counter[str] = field(default_factory=Counter)
    oauth_tokens: int = 0
    current_token: str | None = None
    client_auth: tuple[str, str] = ("gateway", "s3cret")
    released: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    base: str = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/oauth/token", self.token)
        app.router.add_route("*", "/scim/v2/{tail:.*}", self.proxy)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"
        self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        self.released.set()
        await self.session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def rotate_token(self) -> None:
        """Revoke the issued access token (the next call with it gets 401)."""
        self.current_token = None

    async def token(self, request: web.Request) -> web.StreamResponse:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        pair = base64.b64decode(value).decode() if scheme == "Basic" else ""
        form = await request.post()
        if tuple(pair.split(":", 1)) != self.client_auth:
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        self.oauth_tokens += 1
        self.current_token = f"access-{self.oauth_tokens}"
        body = {"access_token": self.current_token, "token_type": "Bearer", "expires_in": 3600}
        return web.json_response(body)

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        self.seen[request.method] += 1
        fault = self.faults.pop(0) if self.faults else self.always
        if fault is not None:
            if fault.kind == "drop":
                assert request.transport is not None
                request.transport.close()
                raise asyncio.CancelledError  # the connection is gone; answer nothing
            if fault.kind == "slow":
                await self.released.wait()
            if fault.kind == "status":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                body: dict[str, Any] = {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "status": str(fault.status),
                    "detail": "injected",
                }
                return web.json_response(body, status=fault.status, headers=headers)
        token = self.upstream_token
        if self.current_token is not None or self.oauth_tokens:
            given = request.headers.get("Authorization", "")
            if self.current_token is None or given != f"Bearer {self.current_token}":
                return web.json_response({"status": "401", "detail": "bad token"}, status=401)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("content-type", "accept", "if-match", "if-none-match")
        }
        headers["Authorization"] = f"Bearer {token}"
        url = self.upstream_url + "/" + request.match_info["tail"]
        async with self.session.request(
            request.method,
            url,
            params=request.rel_url.query,
            data=await request.read(),
            headers=headers,
        ) as resp:
            raw = await resp.read()
            out = {k: v for k, v in resp.headers.items() if k.lower() in ("content-type", "etag")}
            return web.Response(status=resp.status, body=raw, headers=out)
