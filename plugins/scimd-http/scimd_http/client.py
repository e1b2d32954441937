"""The HTTP client every upstream call goes through: credentials (static bearer or OAuth2
client credentials), timeouts, retries of idempotent requests, the circuit breaker, a
concurrency limit per tenant, and the mapping of upstream SCIM errors to ``scimd.errors``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlsplit

import aiohttp
import orjson

from scimd import errors
from scimd_http.resilience import RETRY_STATUSES, CircuitBreaker, RetryPolicy, parse_retry_after

__all__ = [
    "ErrorMapper",
    "OAuthClientCredentials",
    "Response",
    "UpstreamClient",
    "client_from_options",
    "map_error",
]

SCIM_JSON = "application/scim+json"

_BY_SCIM_TYPE: dict[str, type[errors.ScimError]] = {
    "invalidfilter": errors.InvalidFilter,
    "toomany": errors.TooMany,
    "uniqueness": errors.Uniqueness,
    "mutability": errors.Mutability,
    "invalidsyntax": errors.InvalidSyntax,
    "invalidpath": errors.InvalidPath,
    "notarget": errors.NoTarget,
    "invalidvalue": errors.InvalidValue,
    "invalidvers": errors.InvalidVersion,
    "sensitive": errors.Sensitive,
    "invalidcursor": errors.InvalidCursor,
    "expiredcursor": errors.ExpiredCursor,
}

_BY_STATUS: dict[int, type[errors.ScimError]] = {
    400: errors.BadRequest,
    403: errors.Forbidden,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    409: errors.Conflict,
    412: errors.PreconditionFailed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
    501: errors.NotImplementedFeature,
}


@dataclass(slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: Any


ErrorMapper = Callable[[int, Any, Mapping[str, str]], errors.ScimError]


def map_error(status: int, body: Any, headers: Mapping[str, str]) -> errors.ScimError:
    """An upstream error response as the scimd error the client of scimd gets: by
    ``scimType`` first (RFC 7644 3.12), then by status. The upstream's ``detail`` is kept
    (it names the attribute of a uniqueness conflict, for example)."""
    detail = None
    scim_type = None
    if isinstance(body, dict):
        raw_detail = body.get("detail")
        detail = raw_detail if isinstance(raw_detail, str) else None
        raw_type = body.get("scimType")
        scim_type = raw_type.lower() if isinstance(raw_type, str) else None
    text = f"upstream: {detail}" if detail else f"upstream answered HTTP {status}"
    retry_after = parse_retry_after(headers.get("Retry-After"))
    wait = max(1, int(retry_after)) if retry_after is not None else 5
    if status == 429:
        return errors.TooManyRequests(text, headers={"Retry-After": str(wait)})
    if status in (401, 407) or (status >= 500 and status != 501):
        # 401: scimd's own upstream credentials were refused; 5xx: the upstream is down.
        # Neither is the SCIM client's fault: 503, try later.
        return errors.ServiceUnavailable(text, retry_after=wait)
    if scim_type == "preconditionfailed" or status == 412:
        return errors.PreconditionFailed(text)
    cls = _BY_SCIM_TYPE.get(scim_type or "") if 400 <= status < 500 else None
    if cls is None:
        cls = _BY_STATUS.get(status, errors.BadRequest if 400 <= status < 500 else errors.ScimError)
    return cls(text)


class OAuthClientCredentials:
    """OAuth 2.0 client credentials grant (RFC 6749 4.4): a cached access token, refreshed
    before ``expires_in`` runs out or when the upstream answers 401."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str = "",
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    def invalidate(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def token(self, session: aiohttp.ClientSession, limits: aiohttp.ClientTimeout) -> str:
        async with self._lock:
            if self._token is not None and self.clock() < self._expires:
                return self._token
            form = {"grant_type": "client_credentials"}
            if self.scope:
                form["scope"] = self.scope
            # RFC 6749 2.3.1: HTTP Basic with the form-urlencoded id and secret.
            pair = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret)}"
            auth = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
            try:
                async with session.post(
                    self.token_url, data=form, headers=auth, timeout=limits
                ) as resp:
                    raw = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise errors.ServiceUnavailable(
                    f"upstream token endpoint unreachable ({type(exc).__name__})"
                ) from None
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                doc = None
            token = doc.get("access_token") if isinstance(doc, dict) else None
            if status != 200 or not isinstance(token, str) or not token:
                raise errors.ServiceUnavailable(
                    f"upstream token endpoint refused the client credentials (HTTP {status})"
                )
            expires_in = doc.get("expires_in") if isinstance(doc, dict) else None
            life = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
            # Refresh a little early so a token never expires in flight.
            self._expires = self.clock() + max(0.0, life - min(30.0, life / 10))
            self._token = token
            self.fetches += 1
            return token


class UpstreamClient:
    """Sends requests to the upstream SCIM service with every resilience rule applied."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str = "",
        oauth: OAuthClientCredentials | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        max_concurrency: int = 16,
        ssl: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        media_type: str = SCIM_JSON,
        auth_header: str = "Authorization",
        auth_scheme: str = "Bearer",
        error_mapper: ErrorMapper = map_error,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.media_type = media_type
        self.auth_header = auth_header
        self.auth_scheme = auth_scheme
        self.error_mapper = error_mapper
        self.static_token = token
        self.oauth = oauth
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self.policy = policy or RetryPolicy()
        self.breaker = breaker or CircuitBreaker()
        self.max_concurrency = max_concurrency
        self.ssl = ssl
        self.sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._limits: dict[str, asyncio.Semaphore] = {}

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self.ssl)
            self._session = aiohttp.ClientSession(connector=connector)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url(self, path: str) -> str:
        """``path`` under the base URL; an absolute URL (an API's next-page link) only
        when it is on the same origin, so credentials never go to another host."""
        if "://" not in path:
            return self.base_url + path
        base = urlsplit(self.base_url)
        target = urlsplit(path)
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            raise errors.ServiceUnavailable(
                "the upstream sent a link to another origin; not followed"
            )
        return path

    def _limit(self, tenant: str) -> asyncio.Semaphore:
        sem = self._limits.get(tenant)
        if sem is None:
            sem = self._limits[tenant] = asyncio.Semaphore(self.max_concurrency)
        return sem

    async def _auth_header(self, session: aiohttp.ClientSession) -> str | None:
        if self.oauth is not None:
            return await self.oauth.token(session, self.timeout)
        return self.static_token or None

    async def request(
        self,
        method: str,
        path: str,
        *,
        tenant: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool,
    ) -> Response:
        """One logical call. Retries (backoff, jitter, ``Retry-After``) only when
        ``idempotent``; raises ``ServiceUnavailable`` (with ``Retry-After``) when the
        breaker is open, the upstream is unreachable or keeps failing, and the mapped
        ``scimd.errors`` class for any other upstream error status."""
        session = self._session
        if session is None:
            raise errors.ServiceUnavailable("the upstream backend is not started")
        url = self._url(path)
        data = orjson.dumps(body) if body is not None else None
        attempt = 0
        refreshed = False
        async with self._limit(tenant):
            while True:
                if not self.breaker.allow():
                    raise errors.ServiceUnavailable(
                        "the upstream SCIM service is unavailable (circuit open)",
                        retry_after=self.breaker.retry_after(),
                    )
                token = await self._auth_header(session)
                hdrs = {"Accept": self.media_type}
                if data is not None:
                    hdrs["Content-Type"] = self.media_type
                if token:
                    scheme = f"{self.auth_scheme} " if self.auth_scheme else ""
                    hdrs[self.auth_header] = scheme + token
                hdrs.update(headers or {})
                retry_after: float | None = None
                try:
                    async with session.request(
                        method,
                        url,
                        params=params,
                        data=data,
                        headers=hdrs,
                        timeout=self.timeout,
                    ) as resp:
                        raw = await resp.read()
                        status = resp.status
                        resp_headers = dict(resp.headers)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.breaker.failure()
                    what = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
                    delay = self.policy.delay(attempt) if idempotent else None
                    if delay is None:
                        raise errors.ServiceUnavailable(
                            f"upstream SCIM service unreachable ({what})",
                            retry_after=self.breaker.retry_after(),
                        ) from None
                    attempt += 1
                    await self.sleep(delay)
                    continue
                if status >= 500 and status != 501:
                    self.breaker.failure()  # 429 is rate limiting, not an outage
                else:
                    self.breaker.success()
                body_out = _decode(raw)
                if status == 401 and self.oauth is not None and token and not refreshed:
                    # The access token expired or was revoked: fetch a new one once. The
                    # upstream did not process a request it did not authenticate, so even
                    # a POST is safe to send again.
                    self.oauth.invalidate(token)
                    refreshed = True
                    continue
                if status in RETRY_STATUSES and idempotent:
                    retry_after = parse_retry_after(resp_headers.get("Retry-After"))
                    delay = self.policy.delay(attempt, retry_after)
                    if delay is not None:
                        attempt += 1
                        await self.sleep(delay)
                        continue
                if status >= 400:
                    raise self.error_mapper(status, body_out, resp_headers)
                return Response(status, resp_headers, body_out)


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def client_from_options(opts: Mapping[str, Any], url: str, **extra: Any) -> UpstreamClient:
    """An ``UpstreamClient`` from the shared ``[storage.<http backend>]`` options: token or
    OAuth2 client credentials, timeouts, retry policy, breaker, concurrency, TLS."""
    oauth = None
    if opts.get("token_url"):
        oauth = OAuthClientCredentials(
            str(opts["token_url"]),
            str(opts.get("client_id") or ""),
            str(opts.get("client_secret") or ""),
            str(opts.get("scope") or ""),
        )
    return UpstreamClient(
        url,
        token=str(opts.get("token") or ""),
        oauth=oauth,
        timeout=float(opts.get("timeout", 30.0)),
        connect_timeout=float(opts.get("connect_timeout", 5.0)),
        policy=RetryPolicy(
            retries=int(opts.get("retries", 3)),
            base=float(opts.get("backoff_base", 0.2)),
            max_delay=float(opts.get("backoff_max", 5.0)),
            max_retry_after=float(opts.get("max_retry_after", 30.0)),
        ),
        breaker=CircuitBreaker(
            int(opts.get("breaker_threshold", 5)), float(opts.get("breaker_reset", 30.0))
        ),
        max_concurrency=int(opts.get("max_concurrency", 16)),
        ssl=bool(opts.get("verify_tls", True)),
        **extra,
    )
