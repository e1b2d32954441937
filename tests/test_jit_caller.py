"""Caller authentication (Standard Webhooks HMAC, bearer) and idempotent retries."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from scimd.jit.caller import authenticate, sign
from scimd.jit.config import JitCaller
from scimd.jit.errors import JitError
from tests._http_helpers import AiohttpClient
from tests._jit_helpers import (
    BEARER,
    SECRET,
    JitApp,
    make_idp,
    make_jit_app,
    make_token,
)
from tests._jit_helpers import jit_settings as settings_for

CALLER = JitCaller(id="gw", auth="hmac", secret=SECRET, allowed_idps=("okta",))


def _headers(body: bytes, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, "msg_1", ts, body),
    }


def test_valid_signature() -> None:
    got = authenticate(_headers(b"{}"), b"{}", [CALLER], time.time())
    assert got.caller.id == "gw" and got.idempotency_key == "msg_1"


def test_several_signatures_one_valid_secret_rotation() -> None:
    h = _headers(b"{}")
    old = sign("whsec_b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZA==", "msg_1", h["webhook-timestamp"], b"{}")
    h["webhook-signature"] = f"{old} {h['webhook-signature']}"
    assert authenticate(h, b"{}", [CALLER], time.time()).caller.id == "gw"


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda h, b: (h, b + b" "), "tampered body"),
        (lambda h, b: ({**h, "webhook-id": "msg_2"}, b), "tampered id"),
        (lambda h, b: (_headers(b, ts=int(time.time()) - 301), b), "stale timestamp"),
        (lambda h, b: (_headers(b, ts=int(time.time()) + 301), b), "future timestamp"),
        (lambda h, b: (_headers(b, secret="wrong-secret-wrong-secret"), b), "wrong secret"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "no sig"),
        (lambda h, b: ({**h, "webhook-signature": "v2,AAAA"}, b), "unknown version"),
    ],
)
def test_bad_signatures_are_401(mutate: object, why: str) -> None:
    headers, body = mutate(_headers(b"{}"), b"{}")  # type: ignore[operator]
    with pytest.raises(JitError) as info:
        authenticate(headers, body, [CALLER], time.time())
    assert (info.value.status, info.value.reason) == (401, "unauthenticated"), why


def test_bearer_caller() -> None:
    bearer = JitCaller(id="dev", auth="bearer", secret=BEARER, allowed_idps=("okta",))
    got = authenticate({"Authorization": f"Bearer {BEARER}"}, b"", [CALLER, bearer], 0)
    assert got.caller.id == "dev"
    with pytest.raises(JitError):
        authenticate({"Authorization": "Bearer nope"}, b"", [CALLER, bearer], 0)
    with pytest.raises(JitError):  # an hmac caller's secret is not a bearer token
        authenticate({"Authorization": f"Bearer {SECRET}"}, b"", [CALLER, bearer], 0)


@pytest.fixture
async def jit(aiohttp_client: AiohttpClient, tmp_path: Path) -> JitApp:
    idps = (make_idp(), make_idp(id="other"))
    callers = (CALLER,)
    s = settings_for(tmp_path, idps, callers=callers)
    return await make_jit_app(aiohttp_client, tmp_path, s)


async def test_http_unauthenticated_is_401_problem_and_audited(jit: JitApp) -> None:
    status, body, headers = await jit.login(secret="whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==")
    assert status == 401
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["reason"] == "unauthenticated"
    assert [e.type for e in await jit.events()] == ["jit.caller.unauthenticated"]


async def test_http_stale_timestamp_is_401(jit: JitApp) -> None:
    status, _b, _h = await jit.login(timestamp=int(time.time()) - 3600)
    assert status == 401


async def test_scim_bearer_token_does_not_authenticate_the_hook(jit: JitApp) -> None:
    body = orjson.dumps({"idp": "okta", "protocol": "oidc", "id_token": make_token()})
    resp = await jit.client.post(
        "/jit/v1/logins",
        data=body,
        headers={"Authorization": f"Bearer {jit.scim.token}", "Content-Type": "application/json"},
    )
    assert resp.status == 401


async def test_caller_limited_to_its_idps(jit: JitApp) -> None:
    status, body, _h = await jit.login(body={"idp": "other"})
    assert (status, body["reason"]) == (403, "caller_not_allowed_for_idp")
    status, body, _h = await jit.login(body={"idp": "nonexistent"})
    assert (status, body["reason"]) == (403, "caller_not_allowed_for_idp")


async def test_idempotent_retry_returns_stored_response(jit: JitApp) -> None:
    token = make_token()
    first = await jit.login(token, msg_id="msg_retry")
    again = await jit.login(token, msg_id="msg_retry")
    assert first[0] == again[0] == 201
    assert first[1] == again[1]
    assert again[2].get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first[2]
    _s, users = await jit.scim.call("GET", "/Users")
    assert users["totalResults"] == 1


async def test_same_webhook_id_other_body_is_409(jit: JitApp) -> None:
    assert (await jit.login(make_token(), msg_id="msg_x"))[0] == 201
    status, body, _h = await jit.login(make_token(sub="other"), msg_id="msg_x")
    assert (status, body["reason"]) == (409, "idempotency_key_reused")


async def test_concurrent_retries_of_one_message_give_one_user(jit: JitApp) -> None:
    token = make_token()
    results = await asyncio.gather(*(jit.login(token, msg_id="msg_c") for _ in range(5)))
    assert {r[0] for r in results} == {201}
    assert sum(r[2].get("Idempotent-Replayed") == "true" for r in results) == 4


async def test_jit_disabled(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    s = settings_for(tmp_path, (make_idp(),), enabled=False)
    app = await make_jit_app(aiohttp_client, tmp_path, s)
    status, body, _h = await app.login()
    assert (status, body["reason"]) == (403, "jit_disabled")


async def test_oversize_body_is_rejected(jit: JitApp) -> None:
    status, body, _h = await jit.post(b'{"x":"' + b"a" * 300_000 + b'"}')
    assert status == 413 and body["outcome"] == "rejected"


async def test_bad_json_is_400(jit: JitApp) -> None:
    status, body, _h = await jit.post(b"{nope")
    assert (status, body["reason"]) == (400, "bad_request")
