"""Retries, no retry of creates, timeouts, the circuit breaker and OAuth2 token refresh,
through a real fault-injecting proxy in front of the real upstream scimd."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from scimd_http.client import OAuthClientCredentials, UpstreamClient
from scimd_http.resilience import CircuitBreaker, RetryPolicy, parse_retry_after
from scimd_http.upstream import ScimUpstreamBackend

from scimd import errors
from scimd.backend import BackendEnv, OpContext, PatchOp
from scimd.query.parse import parse_path
from scimd.schema.model import SchemaRegistry
from scimd.testing.extension import build_contract_registry
from tests.conftest import Upstream, UpstreamTenant
from tests.faults import Fault, FaultProxy

CTX = OpContext(tenant="default", principal="system", request_id="faults")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry(tmp_path: Path) -> SchemaRegistry:
    return build_contract_registry(tmp_path)


@pytest_asyncio.fixture(loop_scope="function")
async def proxy(upstream: Upstream, upstream_tenant: UpstreamTenant) -> AsyncIterator[FaultProxy]:
    fp = FaultProxy(upstream.base_url, upstream_tenant.token)
    await fp.start()
    yield fp
    await fp.stop()


Build = Callable[..., "AsyncIterator[ScimUpstreamBackend]"]


class Harness:
    def __init__(self, proxy: FaultProxy, registry: SchemaRegistry) -> None:
        self.proxy = proxy
        self.registry = registry
        self.sleeps: list[float] = []
        self.clock = FakeClock()
        self.started: list[ScimUpstreamBackend] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def backend(
        self, *, oauth: OAuthClientCredentials | None = None, **kw: Any
    ) -> ScimUpstreamBackend:
        client = UpstreamClient(
            self.proxy.base + "/scim/v2",
            token="" if oauth else "unused-by-proxy",
            oauth=oauth,
            timeout=kw.pop("timeout", 30.0),
            policy=RetryPolicy(retries=kw.pop("retries", 3), base=0.01, max_delay=0.05),
            breaker=CircuitBreaker(kw.pop("threshold", 50), 30.0, clock=self.clock),
            sleep=self.sleep,
        )
        env = BackendEnv(
            options={"url": "x", "tenant": "default"}, registry=self.registry, base_dir=Path()
        )
        backend = ScimUpstreamBackend(env, client=client)
        await backend.start()
        self.started.append(backend)
        return backend


@pytest_asyncio.fixture(loop_scope="function")
async def harness(proxy: FaultProxy, registry: SchemaRegistry) -> AsyncIterator[Harness]:
    h = Harness(proxy, registry)
    yield h
    for backend in h.started:
        await backend.aclose()


def users(registry: SchemaRegistry) -> Any:
    return registry.resource_type("User")


def a_user(name: str) -> dict[str, Any]:
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}


async def test_capabilities_come_from_the_upstream_service_provider_config(
    harness: Harness,
) -> None:
    backend = await harness.backend()
    caps = backend.capabilities
    assert caps.sort and caps.etag and caps.native_patch and "co" in caps.filter_ops
    # scimd advertises RFC 9865 cursors: passed through (test_gateway_http).
    assert caps.max_results == 1000 and not caps.multi_tenant and caps.cursor


async def test_get_is_retried_after_429_honouring_retry_after(harness: Harness) -> None:
    backend = await harness.backend()
    u = await backend.create(CTX, users(harness.registry), a_user("retry429"))
    harness.proxy.faults = [Fault("status", 429, "2"), Fault("status", 503)]
    harness.proxy.seen.clear()
    got = await backend.get(CTX, users(harness.registry), u["id"])
    assert got["userName"] == "retry429"
    assert harness.proxy.seen["GET"] == 3
    assert harness.sleeps[0] == 2.0  # Retry-After, not the backoff
    assert 0 <= harness.sleeps[1] <= 0.02  # backoff bound base * 2**1, jittered


async def test_create_is_never_retried(harness: Harness) -> None:
    backend = await harness.backend()
    harness.proxy.faults = [Fault("status", 503)]
    harness.proxy.seen.clear()
    with pytest.raises(errors.ServiceUnavailable) as info:
        await backend.create(CTX, users(harness.registry), a_user("once"))
    assert harness.proxy.seen["POST"] == 1 and harness.sleeps == []
    assert info.value.headers["Retry-After"]


async def test_dropped_connection_retries_get_but_not_post(harness: Harness) -> None:
    backend = await harness.backend()
    u = await backend.create(CTX, users(harness.registry), a_user("dropped"))
    harness.proxy.faults = [Fault("drop")]
    assert (await backend.get(CTX, users(harness.registry), u["id"]))["id"] == u["id"]
    harness.proxy.faults = [Fault("drop")]
    harness.proxy.seen.clear()
    with pytest.raises(errors.ServiceUnavailable):
        await backend.create(CTX, users(harness.registry), a_user("dropped-post"))
    assert harness.proxy.seen["POST"] == 1


async def test_patch_is_retried_only_with_if_match(harness: Harness) -> None:
    backend = await harness.backend()
    rt = users(harness.registry)
    u = await backend.create(CTX, rt, a_user("patchy"))
    op = PatchOp("replace", parse_path("displayName", rt), "P")
    harness.proxy.faults = [Fault("status", 503)]
    with pytest.raises(errors.ServiceUnavailable):
        await backend.patch(CTX, rt, u["id"], [op], if_match=None)
    harness.proxy.faults = [Fault("status", 503)]
    harness.proxy.seen.clear()
    out = await backend.patch(CTX, rt, u["id"], [op], if_match=u["meta"]["version"])
    assert out["displayName"] == "P" and harness.proxy.seen["PATCH"] == 2


async def test_slow_upstream_times_out_as_503(harness: Harness) -> None:
    backend = await harness.backend(timeout=0.2, retries=0)
    harness.proxy.faults = [Fault("slow")]
    with pytest.raises(errors.ServiceUnavailable) as info:
        await backend.get(CTX, users(harness.registry), "some-id")
    assert "timed out" in info.value.detail


async def test_breaker_opens_answers_503_then_probes(harness: Harness) -> None:
    backend = await harness.backend(retries=0, threshold=2)
    rt = users(harness.registry)
    harness.proxy.always = Fault("status", 503)
    for _ in range(2):
        with pytest.raises(errors.ServiceUnavailable):
            await backend.get(CTX, rt, "x")
    harness.proxy.seen.clear()
    with pytest.raises(errors.ServiceUnavailable) as info:
        await backend.get(CTX, rt, "x")
    assert "circuit open" in info.value.detail
    assert info.value.headers["Retry-After"] == "30"
    assert harness.proxy.seen["GET"] == 0  # refused without calling the upstream
    harness.proxy.always = None
    harness.clock.now += 31  # half-open: one probe goes through and closes the breaker
    with pytest.raises(errors.NotFound):
        await backend.get(CTX, rt, "x")
    assert harness.proxy.seen["GET"] == 1
    assert backend.client.breaker.state == "closed"


async def test_errors_map_by_status_and_scim_type(harness: Harness) -> None:
    backend = await harness.backend()
    rt = users(harness.registry)
    u = await backend.create(CTX, rt, a_user("dup"))
    with pytest.raises(errors.Uniqueness):
        await backend.create(CTX, rt, a_user("DUP"))
    with pytest.raises(errors.PreconditionFailed):
        await backend.replace(CTX, rt, u["id"], a_user("dup2"), if_match='W/"999"')
    with pytest.raises(errors.NotFound):
        await backend.get(CTX, rt, "nope")
    with pytest.raises(errors.Forbidden):
        await backend.get(OpContext(tenant="other", principal="p", request_id="r"), rt, u["id"])


async def test_oauth_client_credentials_and_refresh_on_401(harness: Harness) -> None:
    oauth = OAuthClientCredentials(
        harness.proxy.base + "/oauth/token", "gateway", "s3cret", clock=harness.clock
    )
    backend = await harness.backend(oauth=oauth)
    rt = users(harness.registry)
    u = await backend.create(CTX, rt, a_user("oauth"))
    assert oauth.fetches == 1
    harness.proxy.rotate_token()  # the access token is revoked upstream
    assert (await backend.get(CTX, rt, u["id"]))["userName"] == "oauth"
    assert oauth.fetches == 2
    harness.clock.now += 4000  # expired: fetched again before the call
    await backend.get(CTX, rt, u["id"])
    assert oauth.fetches == 3


async def test_wrong_client_secret_is_503_not_a_client_error(harness: Harness) -> None:
    oauth = OAuthClientCredentials(harness.proxy.base + "/oauth/token", "gateway", "wrong")
    with pytest.raises(errors.ServiceUnavailable):
        await harness.backend(oauth=oauth)


def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412480.0) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    policy = RetryPolicy(retries=2, base=1.0, max_delay=3.0, max_retry_after=10, rand=lambda: 1.0)
    assert [policy.delay(0), policy.delay(1), policy.delay(2)] == [1.0, 2.0, None]
    assert policy.delay(0, 60.0) is None  # longer than we wait: give the client the 429


def state_of(breaker: CircuitBreaker) -> str:
    return breaker.state  # read through a call: mypy would narrow the property


def test_breaker_states() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, reset_after=10.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert state_of(breaker) == "closed"  # two failures: not yet
    breaker.failure()
    assert state_of(breaker) == "open" and not breaker.allow() and breaker.retry_after() == 10
    clock.now += 10
    assert state_of(breaker) == "half-open"
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failure()  # the probe failed: open again for a full period
    assert state_of(breaker) == "open" and breaker.retry_after() == 10
    clock.now += 10
    assert breaker.allow()
    clock.now += 10  # that probe never reported back: another may go
    assert breaker.allow()
    breaker.success()
    assert state_of(breaker) == "closed" and breaker.failures == 0
