"""OIDC verification (JIT.md checklist): each attack is mounted and must be rejected."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from joserfc import jws, jwt
from joserfc.jwk import OctKey

from tests._http_helpers import AiohttpClient
from tests._jit_helpers import (
    JitApp,
    JwksServer,
    make_idp,
    make_jit_app,
    make_token,
    rsa_key,
)
from tests._jit_helpers import jit_settings as settings_for


@pytest.fixture
async def jit(aiohttp_client: AiohttpClient, tmp_path: Path) -> JitApp:
    return await make_jit_app(aiohttp_client, tmp_path, settings_for(tmp_path, (make_idp(),)))


@pytest.fixture
async def jwks() -> AsyncIterator[JwksServer]:
    server = JwksServer()
    await server.start()
    yield server
    await server.close()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_valid_token_creates_user(jit: JitApp) -> None:
    status, body, headers = await jit.login()
    assert status == 201, body
    assert headers["Content-Type"].startswith("application/json")
    assert body["outcome"] == "created"
    assert body["user"]["userName"] == "ann@example.com"
    assert body["identity"] == {"idp": "okta", "subject": "sub-1", "matched_by": "new"}


async def _rejected(jit: JitApp, token: str, reason: str, nonce: str = "n-1") -> None:
    status, body, headers = await jit.login(token, nonce=nonce)
    assert status == 422, body
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["reason"] == reason
    assert body["outcome"] == "rejected"
    # Nothing was provisioned.
    _s, users = await jit.scim.call("GET", "/Users")
    assert users["totalResults"] == 0


async def test_alg_none_is_rejected(jit: JitApp) -> None:
    head = _b64(orjson.dumps({"alg": "none", "kid": "k1"}))
    now = int(time.time())
    claims: dict[str, object] = {"iss": "https://idp.example.test", "aud": "client-123"}
    claims["sub"] = "x"
    claims |= {"nonce": "n-1", "iat": now, "exp": now + 60}
    await _rejected(jit, f"{head}.{_b64(orjson.dumps(claims))}.", "unsupported_algorithm")


async def test_hs256_keyed_with_the_rsa_public_key_is_rejected(jit: JitApp) -> None:
    # The classic confusion: HMAC "secret" = the IdP's public key PEM.
    pem = rsa_key().as_pem(private=False)
    now = int(time.time())
    claims: dict[str, object] = {"iss": "https://idp.example.test", "aud": "client-123"}
    claims["sub"] = "x"
    claims |= {"nonce": "n-1", "iat": now, "exp": now + 60}
    payload = orjson.dumps(claims)
    header = {"alg": "HS256", "kid": "k1"}
    registry = jws.JWSRegistry(algorithms=["HS256"])
    key = OctKey.import_key(_b64(pem))  # raw bytes of the PEM as the HMAC key
    token = jws.serialize_compact(header, payload, key, registry=registry)
    await _rejected(jit, token, "unsupported_algorithm")


async def test_wrong_key_is_rejected(jit: JitApp) -> None:
    await _rejected(jit, make_token(rsa_key("attacker"), header={"kid": "k1"}), "invalid_signature")


async def test_unknown_kid_with_pinned_keys_is_rejected(jit: JitApp) -> None:
    await _rejected(jit, make_token(rsa_key("k2")), "invalid_signature")


async def test_tampered_payload_is_rejected(jit: JitApp) -> None:
    head, _payload, sig = make_token().split(".")
    forged = _b64(orjson.dumps({"sub": "admin", "iss": "https://idp.example.test"}))
    await _rejected(jit, f"{head}.{forged}.{sig}", "invalid_signature")


async def test_jku_header_is_never_followed(jit: JitApp, jwks: JwksServer) -> None:
    url = str(jwks.server.make_url("/keys"))
    jwks.keys = [rsa_key("attacker")]
    token = make_token(rsa_key("attacker"), header={"kid": "attacker", "jku": url, "x5u": url})
    await _rejected(jit, token, "invalid_signature")
    assert jwks.fetches == 0


async def test_wrong_issuer(jit: JitApp) -> None:
    await _rejected(jit, make_token(iss="https://evil.example"), "invalid_issuer")


async def test_wrong_audience(jit: JitApp) -> None:
    await _rejected(jit, make_token(aud="other-client"), "invalid_audience")


async def test_several_audiences_need_azp(jit: JitApp) -> None:
    await _rejected(jit, make_token(aud=["client-123", "other"]), "invalid_audience")
    status, _b, _h = await jit.login(make_token(aud=["client-123", "other"], azp="client-123"))
    assert status == 201


async def test_expired(jit: JitApp) -> None:
    now = int(time.time())
    await _rejected(jit, make_token(iat=now - 900, exp=now - 600), "expired")


async def test_expired_within_skew_is_accepted(jit: JitApp) -> None:
    now = int(time.time())
    status, body, _h = await jit.login(make_token(iat=now - 200, exp=now - 60))
    assert status == 201, body


async def test_not_yet_valid(jit: JitApp) -> None:
    now = int(time.time())
    await _rejected(jit, make_token(nbf=now + 600), "not_yet_valid")


async def test_missing_exp(jit: JitApp) -> None:
    await _rejected(jit, make_token(drop=("exp",)), "expired")


async def test_iat_too_old(jit: JitApp) -> None:
    now = int(time.time())
    await _rejected(jit, make_token(iat=now - 3600, exp=now + 300), "expired")


async def test_wrong_nonce(jit: JitApp) -> None:
    await _rejected(jit, make_token(nonce="n-1"), "nonce_mismatch", nonce="other")


async def test_token_without_nonce_is_rejected(jit: JitApp) -> None:
    await _rejected(jit, make_token(drop=("nonce",)), "nonce_mismatch")


async def test_missing_nonce_from_caller_is_bad_request(jit: JitApp) -> None:
    status, body, _h = await jit.login(nonce=None)  # type: ignore[arg-type]
    assert (status, body["reason"]) == (400, "bad_request")


async def test_missing_sub(jit: JitApp) -> None:
    await _rejected(jit, make_token(drop=("sub",)), "invalid_signature")


async def test_replayed_jti(jit: JitApp) -> None:
    token = make_token()
    status, _b, _h = await jit.login(token)
    assert status == 201
    # Same token, new webhook-id (not an idempotent retry): a replay.
    status, body, _h = await jit.login(token)
    assert (status, body["reason"]) == (422, "assertion_replayed")


async def test_replayed_token_without_jti_is_caught_by_hash(jit: JitApp) -> None:
    token = make_token(drop=("jti",))
    assert (await jit.login(token))[0] == 201
    status, body, _h = await jit.login(token)
    assert (status, body["reason"]) == (422, "assertion_replayed")


async def test_rejections_are_audited_without_the_token(jit: JitApp) -> None:
    token = make_token(iss="https://evil.example")
    await jit.login(token)
    events = await jit.events("jit.assertion.rejected")
    assert len(events) == 1
    event = events[0]
    assert event.data["reason"] == "invalid_issuer"
    assert "evil.example" in event.data["detail"]  # detailed in the audit log only
    dumped = orjson.dumps([e.data for e in await jit.events("")]).decode()
    assert token not in dumped and token.split(".")[1] not in dumped


# -- keys fetched from jwks_uri -------------------------------------------------------


async def _jwks_app(
    aiohttp_client: AiohttpClient, tmp_path: Path, url: str, **kw: object
) -> JitApp:
    idp = make_idp(jwks=None, jwks_uri=url, **kw)
    return await make_jit_app(aiohttp_client, tmp_path, settings_for(tmp_path, (idp,)))


async def test_keys_are_fetched_once_and_cached(
    aiohttp_client: AiohttpClient, tmp_path: Path, jwks: JwksServer
) -> None:
    app = await _jwks_app(aiohttp_client, tmp_path, str(jwks.server.make_url("/keys")))
    assert (await app.login(make_token(sub="a")))[0] == 201
    assert (await app.login(make_token(sub="b", email="b@example.com")))[0] == 201
    assert jwks.fetches == 1


async def test_rotated_key_triggers_refetch(
    aiohttp_client: AiohttpClient, tmp_path: Path, jwks: JwksServer
) -> None:
    url = str(jwks.server.make_url("/keys"))
    app = await _jwks_app(aiohttp_client, tmp_path, url, jwks_refetch_cooldown=0.0)
    assert (await app.login(make_token(sub="a")))[0] == 201
    jwks.keys = [rsa_key("k1"), rsa_key("k2")]
    status, body, _h = await app.login(make_token(rsa_key("k2"), sub="b", email="b@example.com"))
    assert status == 201, body
    assert jwks.fetches == 2


async def test_unknown_kid_refetch_respects_cooldown(
    aiohttp_client: AiohttpClient, tmp_path: Path, jwks: JwksServer
) -> None:
    url = str(jwks.server.make_url("/keys"))
    app = await _jwks_app(aiohttp_client, tmp_path, url, jwks_refetch_cooldown=3600.0)
    assert (await app.login(make_token(sub="a")))[0] == 201
    for n in range(3):
        token = make_token(rsa_key("attacker"), header={"kid": f"junk-{n}"})
        status, body, _h = await app.login(token)
        assert (status, body["reason"]) == (422, "invalid_signature")
    assert jwks.fetches == 1  # unknown kids cannot make scimd hammer the IdP


async def test_keys_unavailable_fails_closed(
    aiohttp_client: AiohttpClient, tmp_path: Path, jwks: JwksServer
) -> None:
    jwks.status = 500
    app = await _jwks_app(aiohttp_client, tmp_path, str(jwks.server.make_url("/keys")))
    status, body, headers = await app.login()
    assert (status, body["reason"]) == (503, "idp_keys_unavailable")
    assert int(headers["Retry-After"]) > 0
    _s, users = await app.scim.call("GET", "/Users")
    assert users["totalResults"] == 0


async def test_unreachable_jwks_fails_closed(
    aiohttp_client: AiohttpClient, tmp_path: Path, jwks: JwksServer
) -> None:
    url = str(jwks.server.make_url("/keys"))
    await jwks.close()  # nothing listens there any more
    app = await _jwks_app(aiohttp_client, tmp_path, url)
    status, body, _h = await app.login()
    assert (status, body["reason"]) == (503, "idp_keys_unavailable")


async def test_unused_jwt_import_guard() -> None:
    # joserfc's jwt module is what the server uses; a token it signs must round-trip.
    token = make_token()
    assert jwt.decode(token, rsa_key(), algorithms=["RS256"]).claims["sub"] == "sub-1"
