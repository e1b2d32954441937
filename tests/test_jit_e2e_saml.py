"""SAML 2.0 end to end (issue 7 item 7): a real SimpleSAMLphp IdP on 127.0.0.1 signs the
response of an SP-initiated login (AuthnRequest by HTTP-Redirect, its UserPass login form,
the auto-POST form), and the application hands that ``SAMLResponse`` to
``POST /jit/v1/logins`` unchanged.

Needs the Debian packages ``simplesamlphp php-cli php-xml php-mbstring php-curl`` (installed
by ``.ci/run``); without them these tests fail, they never skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from scimd.jit.config import JitIdp
from tests._http_helpers import AiohttpClient
from tests._jit_helpers import JitApp, jit_settings, make_jit_app
from tests._simplesaml_helpers import SimpleSamlIdp, throwaway_certificate_pem

SP_ENTITY_ID = "https://app.example.test/saml/metadata"
ACS_URL = "https://app.example.test/saml/acs"


@pytest.fixture
async def simplesaml(tmp_path: Path) -> AsyncIterator[SimpleSamlIdp]:
    (tmp_path / "ssp").mkdir()
    idp = SimpleSamlIdp(tmp_path / "ssp", SP_ENTITY_ID, ACS_URL)
    await idp.start()
    try:
        yield idp
    finally:
        await idp.close()


def saml_idp(simplesaml: SimpleSamlIdp, **kw: Any) -> JitIdp:
    base: dict[str, Any] = {
        "id": "ssp",
        "protocol": "saml2",
        "idp_entity_id": simplesaml.entity_id,
        "sp_entity_id": SP_ENTITY_ID,
        "acs_urls": (ACS_URL,),
        "signing_certs": (simplesaml.certificate_pem,),
        "email_attribute": "email",
        "trust_email": True,
        "attributes": {
            "userName": "email",
            "name.givenName": "givenName",
            "name.familyName": "sn",
        },
    }
    base.update(kw)
    return JitIdp(**base)


@pytest.fixture
async def jit(aiohttp_client: AiohttpClient, tmp_path: Path, simplesaml: SimpleSamlIdp) -> JitApp:
    settings = jit_settings(tmp_path, (saml_idp(simplesaml),))
    return await make_jit_app(aiohttp_client, tmp_path, settings)


async def post(jit: JitApp, response: str, in_response_to: str | None) -> tuple[int, Any]:
    body: dict[str, Any] = {"idp": "ssp", "protocol": "saml2", "saml_response": response}
    if in_response_to is not None:
        body["in_response_to"] = in_response_to
    status, data, _h = await jit.post(body)
    return status, data


async def test_sp_initiated_login_creates_then_finds_the_user(
    jit: JitApp, simplesaml: SimpleSamlIdp
) -> None:
    login = await simplesaml.login("ann")
    assert login.acs_url == ACS_URL
    status, body = await post(jit, login.saml_response, login.request_id)
    assert status == 201, (body, simplesaml.log())
    assert body["outcome"] == "created"
    user = body["user"]
    assert user["userName"] == "ann.smith@example.com"
    assert user["name"] == {"givenName": "Ann", "familyName": "Smith"}
    subject = body["identity"]["subject"]
    assert subject and "ann" not in subject  # a persistent (opaque) NameID
    # A second login of the same person: found by its link, nothing new.
    again = await simplesaml.login("ann")
    status, body = await post(jit, again.saml_response, again.request_id)
    assert (status, body["outcome"], body["identity"]["matched_by"]) == (200, "unchanged", "link")
    assert body["identity"]["subject"] == subject
    _s, users = await jit.scim.call("GET", "/Users")
    assert users["totalResults"] == 1
    accepted = [e for e in await jit.events() if e.type == "jit.login.accepted"]
    assert len(accepted) == 2 and all(e.data["protocol"] == "saml2" for e in accepted)


async def test_replayed_response_is_rejected(jit: JitApp, simplesaml: SimpleSamlIdp) -> None:
    login = await simplesaml.login("ann")
    assert (await post(jit, login.saml_response, login.request_id))[0] == 201
    status, body = await post(jit, login.saml_response, login.request_id)
    assert (status, body["reason"]) == (422, "assertion_replayed")


async def test_response_to_another_request_is_rejected(
    jit: JitApp, simplesaml: SimpleSamlIdp
) -> None:
    login = await simplesaml.login("ann")
    status, body = await post(jit, login.saml_response, "_another-request")
    assert (status, body["reason"]) == (422, "in_response_to_mismatch")
    status, body = await post(jit, login.saml_response, None)
    assert status == 400 and body["reason"] == "bad_request"


async def test_other_pinned_certificate_rejects_the_signature(
    aiohttp_client: AiohttpClient, tmp_path: Path, simplesaml: SimpleSamlIdp
) -> None:
    (tmp_path / "other").mkdir()
    idp = saml_idp(simplesaml, signing_certs=(throwaway_certificate_pem(tmp_path / "other"),))
    app = await make_jit_app(aiohttp_client, tmp_path, jit_settings(tmp_path, (idp,)))
    login = await simplesaml.login("ann")
    status, body = await post(app, login.saml_response, login.request_id)
    assert (status, body["reason"]) == (422, "invalid_signature")
