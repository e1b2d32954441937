"""JIT hook rate limits (``jit.rate_limit`` / ``jit.rate_burst``): token buckets per caller
and per IdP, driven by an injected clock (no sleeps); over the limit: 429 problem+json with
``Retry-After``, audited, and never stored as an idempotent response."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scimd.config import load_config
from scimd.jit.config import JitCaller
from scimd.jit.http import JIT_SERVICE
from scimd.jit.ratelimit import RateLimiter
from tests._http_helpers import AiohttpClient
from tests._jit_helpers import SECRET, JitApp, jit_settings, make_idp, make_jit_app, make_token


def tok(sub: str) -> str:
    return make_token(sub=sub, email=f"{sub}@example.com")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_burst_then_refill() -> None:
    clock = Clock()
    rl = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [rl.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = rl.take("a")
    assert wait == pytest.approx(0.5)  # one token every 1/rate seconds
    assert rl.take("b") == 0.0  # buckets are per key
    clock.now += 0.5
    assert rl.take("a") == 0.0
    assert rl.take("a") > 0
    clock.now += 100  # refills up to the burst, not beyond
    assert [rl.take("a") for _ in range(4)][:3] == [0.0, 0.0, 0.0]
    assert rl.take("a") > 0


def test_denied_requests_do_not_consume() -> None:
    clock = Clock()
    rl = RateLimiter(rate=1.0, burst=1, clock=clock)
    assert rl.take("a") == 0.0
    for _ in range(10):
        assert rl.take("a") > 0
    clock.now += 1.0
    assert rl.take("a") == 0.0


def test_retry_after_is_whole_seconds() -> None:
    assert RateLimiter.retry_after(0.01) == "1"
    assert RateLimiter.retry_after(1.0) == "1"
    assert RateLimiter.retry_after(2.2) == "3"


def test_zero_rate_disables() -> None:
    rl = RateLimiter(rate=0.0, burst=1, clock=Clock())
    assert all(rl.take("a") == 0.0 for _ in range(100))


def test_defaults_and_config(tmp_path: Path) -> None:
    s = load_config(None, environ={}).settings
    assert (s.jit.rate_limit, s.jit.rate_burst) == (20.0, 40)
    env = {"SCIMD_JIT_RATE_LIMIT": "0.5", "SCIMD_JIT_RATE_BURST": "3"}
    s = load_config(None, environ=env).settings
    assert (s.jit.rate_limit, s.jit.rate_burst) == (0.5, 3)


async def _app(aiohttp_client: AiohttpClient, tmp_path: Path, **jit: Any) -> tuple[JitApp, Clock]:
    callers = (
        JitCaller(id="gw", auth="hmac", secret=SECRET, allowed_idps=("okta", "other")),
        JitCaller(
            id="gw2",
            auth="hmac",
            secret="whsec_c2Vjb25kLWNhbGxlci1zZWNyZXQtMzItYnl0ZXM=",
            allowed_idps=("okta", "other"),
        ),
    )
    s = jit_settings(tmp_path, (make_idp(), make_idp(id="other")), callers=callers, **jit)
    app = await make_jit_app(aiohttp_client, tmp_path, s)
    clock = Clock()
    app.scim.app[JIT_SERVICE].limiter.clock = clock
    return app, clock


async def test_over_the_caller_limit_is_429_with_retry_after(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    jit, clock = await _app(aiohttp_client, tmp_path, rate_limit=0.25, rate_burst=2)
    assert (await jit.login(tok("s1")))[0] == 201
    assert (await jit.login(tok("s2")))[0] == 201
    status, body, headers = await jit.login(tok("s3"), msg_id="msg_limited")
    assert status == 429
    assert headers["Content-Type"].startswith("application/problem+json")
    assert (body["reason"], body["outcome"]) == ("rate_limited", "retry")
    assert headers["Retry-After"] == "4"  # 1 token at 0.25/s
    denied = [e for e in await jit.events() if e.type == "jit.login.denied"]
    assert [e.data["reason"] for e in denied] == ["rate_limited"]
    assert denied[0].actor == "jit:gw"
    # After Retry-After the same message goes through (the 429 was not stored).
    clock.now += 4
    status, body, headers = await jit.login(tok("s3"), msg_id="msg_limited")
    assert status == 201 and "Idempotent-Replayed" not in headers
    _s, users = await jit.scim.call("GET", "/Users")
    assert users["totalResults"] == 3


async def test_limits_are_per_caller_and_per_idp(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    jit, _clock = await _app(aiohttp_client, tmp_path, rate_limit=1.0, rate_burst=1)
    other_secret = "whsec_c2Vjb25kLWNhbGxlci1zZWNyZXQtMzItYnl0ZXM="
    assert (await jit.login(tok("a")))[0] == 201
    # Same caller, other IdP: the caller's bucket is empty.
    status, body, _h = await jit.login(tok("b"), body={"idp": "other"})
    assert (status, body["reason"]) == (429, "rate_limited")
    # Other caller, same IdP: the IdP's bucket is empty.
    status, body, _h = await jit.login(tok("c"), secret=other_secret)
    assert (status, body["reason"]) == (429, "rate_limited")
    # Other caller, other IdP: both buckets have a token.
    status, _b, _h = await jit.login(tok("d"), secret=other_secret, body={"idp": "other"})
    assert status == 201


async def test_unauthenticated_requests_do_not_drain_a_callers_bucket(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    jit, _clock = await _app(aiohttp_client, tmp_path, rate_limit=1.0, rate_burst=1)
    for _ in range(5):
        assert (await jit.login(secret="whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="))[0] == 401
    assert (await jit.login())[0] == 201


async def test_zero_rate_limit_never_429(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    jit, _clock = await _app(aiohttp_client, tmp_path, rate_limit=0.0, rate_burst=1)
    statuses = [(await jit.login(tok(f"z{i}")))[0] for i in range(5)]
    assert statuses == [201] * 5


def test_refund_gives_back_one_token_up_to_the_burst() -> None:
    rl = RateLimiter(rate=1.0, burst=2, clock=Clock())
    assert rl.take("a") == 0.0 and rl.take("a") == 0.0 and rl.take("a") > 0
    rl.refund("a")
    assert rl.take("a") == 0.0 and rl.take("a") > 0
    rl.refund("a")
    rl.refund("a")
    rl.refund("a")
    assert [rl.take("a") == 0.0 for _ in range(3)] == [True, True, False]


# --------------------------------------------------------------------------------------
# Buckets shared through the state store: N workers (processes on one state file) together
# allow the configured rate, not N times it (the store side: scimd.testing.state's
# RateLimitContract, run by every state store).


async def test_two_workers_on_one_state_store_share_the_callers_limit(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    """Two applications on one state file stand for ``server.workers = 2``."""
    first, clock = await _app(aiohttp_client, tmp_path, rate_limit=0.25, rate_burst=2)
    second, _ = await _app(aiohttp_client, tmp_path, rate_limit=0.25, rate_burst=2)
    second.scim.app[JIT_SERVICE].limiter.clock = clock
    assert (await first.login(tok("w1")))[0] == 201
    assert (await second.login(tok("w2")))[0] == 201
    status, body, headers = await first.login(tok("w3"))
    assert (status, body["reason"]) == (429, "rate_limited")
    status, body, headers = await second.login(tok("w4"))
    assert (status, body["reason"]) == (429, "rate_limited")
    assert headers["Retry-After"] == "4"
    clock.now += 4
    assert (await second.login(tok("w4")))[0] == 201
