"""SAML 2.0 verify mode (JIT.md checklist, SAML part): each attack is mounted in-process
(assertions built with lxml, signed with signxml's XMLSigner and a throwaway RSA key and
self-signed certificate) and must be rejected without provisioning anything."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from lxml import etree  # type: ignore[import-untyped]

from scimd.jit.config import parse_idps
from scimd.jit.errors import JitError
from scimd.jit.saml import _parser, verify_saml_response
from tests._http_helpers import AiohttpClient
from tests._jit_helpers import JitApp, make_jit_app
from tests._jit_helpers import jit_settings as settings_for
from tests._saml_helpers import (
    ACS,
    ENTRA_OID,
    IDP_ENTITY,
    SP_ENTITY,
    Sha1Signer,
    Signer,
    build_response,
    encode,
    make_saml_idp,
    saml_login,
    saml_response,
    sign,
    sign_assertion,
)

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
DS = "http://www.w3.org/2000/09/xmldsig#"


async def app_with(aiohttp_client: AiohttpClient, tmp_path: Path, **idp: Any) -> JitApp:
    settings = settings_for(tmp_path, (make_saml_idp(**idp),))
    return await make_jit_app(aiohttp_client, tmp_path, settings)


@pytest.fixture
async def jit(aiohttp_client: AiohttpClient, tmp_path: Path) -> JitApp:
    return await app_with(aiohttp_client, tmp_path)


async def _no_users(jit: JitApp) -> None:
    _s, users = await jit.scim.call("GET", "/Users")
    assert users["totalResults"] == 0


async def _rejected(
    jit: JitApp, response: str, reason: str, *, in_response_to: str | None = "req-1"
) -> None:
    status, body, headers = await saml_login(jit, response, in_response_to=in_response_to)
    assert status == 422, body
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["reason"] == reason
    assert body["outcome"] == "rejected"
    assert body["detail"] == "The identity assertion was rejected"  # generic to the caller
    await _no_users(jit)


async def _bad_request(jit: JitApp, response: str, status: int = 400) -> dict[str, Any]:
    got, body, _h = await saml_login(jit, response)
    assert got == status, body
    assert body["reason"] == "bad_request"
    await _no_users(jit)
    return dict(body)


# ---------------------------------------------------------------------------- happy paths


async def test_valid_login_creates_user_then_second_login_is_unchanged(jit: JitApp) -> None:
    status, body, _h = await saml_login(jit, saml_response())
    assert status == 201, body
    assert body["outcome"] == "created"
    user = body["user"]
    assert user["userName"] == "ann@example.com"
    assert user["name"] == {"givenName": "Ann", "familyName": "Smith"}
    assert user["externalId"] == "persistent-ann-1"  # SCIM correlation: externalId = sub
    assert body["identity"] == {"idp": "saml", "subject": "persistent-ann-1", "matched_by": "new"}
    # A second login (a new assertion) with the same persistent NameID: the same user.
    status, again, _h = await saml_login(jit, saml_response())
    assert status == 200, again
    assert again["outcome"] == "unchanged"
    assert again["identity"]["matched_by"] == "link"
    assert again["user"]["id"] == user["id"]
    events = await jit.events("jit.login.accepted")
    assert [e.data["protocol"] for e in events] == ["saml2", "saml2"]
    assert all(e.data["token"].startswith("saml:_a") for e in events)


async def test_second_login_updates_jit_owned_attributes(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    jit = await app_with(aiohttp_client, tmp_path, ownership={"default": "jit"})
    status, _b, _h = await saml_login(jit, saml_response())
    assert status == 201
    attrs = {"email": ["ann@example.com"], "givenName": ["Anne"], "sn": ["Smith"]}
    status, body, _h = await saml_login(jit, saml_response(attributes=attrs))
    assert status == 200, body
    assert body["outcome"] == "updated"
    assert body["changes"]["attributes"] == ["name.givenName"]
    assert body["user"]["name"]["givenName"] == "Anne"


@pytest.mark.parametrize("sign_what", ["assertion", "response", "both"])
async def test_assertion_or_response_signature_is_accepted(jit: JitApp, sign_what: str) -> None:
    status, body, _h = await saml_login(jit, saml_response(sign_what=sign_what))
    assert status == 201, body


async def test_entra_objectidentifier_attribute_as_subject(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    email_claim = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
    jit = await app_with(
        aiohttp_client,
        tmp_path,
        subject_source=ENTRA_OID,
        email_attribute=email_claim,
        attributes={
            "userName": "email",
            "displayName": "http://schemas.microsoft.com/identity/claims/displayname",
        },
    )
    oid = "9f1c2e4a-1b2c-4d5e-8f90-a1b2c3d4e5f6"
    attrs = {
        ENTRA_OID: [oid],
        email_claim: ["Ann@Contoso.example"],
        "http://schemas.microsoft.com/identity/claims/displayname": ["Ann Smith"],
    }
    # Entra's default NameID is the (mutable) email: not the subject here.
    response = saml_response(
        attributes=attrs,
        nameid="ann@contoso.example",
        nameid_format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    )
    status, body, _h = await saml_login(jit, response)
    assert status == 201, body
    assert body["identity"]["subject"] == oid
    assert body["user"]["externalId"] == oid
    assert body["user"]["userName"] == "ann@contoso.example"
    assert body["user"]["displayName"] == "Ann Smith"
    # The same oid with a changed email is the same person.
    attrs[email_claim] = ["ann.smith@contoso.example"]
    status, body, _h = await saml_login(jit, saml_response(attributes=attrs))
    assert status == 200, body
    assert body["identity"]["matched_by"] == "link"
    # A missing or multi-valued subject attribute is refused.
    attrs[ENTRA_OID] = [oid, "other"]
    status, rej, _h = await saml_login(jit, saml_response(attributes=attrs))
    assert (status, rej["reason"]) == (422, "invalid_signature")


async def test_idp_initiated_only_when_allowed(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    jit = await app_with(aiohttp_client, tmp_path, allow_idp_initiated=True)
    unsolicited = saml_response(in_response_to=None)
    status, body, _h = await saml_login(jit, unsolicited, in_response_to=None)
    assert status == 201, body
    # An SP-initiated response replayed as if it were IdP-initiated is refused.
    status, body, _h = await saml_login(jit, saml_response(), in_response_to=None)
    assert (status, body["reason"]) == (422, "in_response_to_mismatch")


async def test_idp_initiated_is_off_by_default(jit: JitApp) -> None:
    unsolicited = saml_response(in_response_to=None)
    status, body, _h = await saml_login(jit, unsolicited, in_response_to=None)
    assert (status, body["reason"]) == (400, "bad_request")
    assert "in_response_to" in body["detail"]
    await _rejected(jit, unsolicited, "in_response_to_mismatch", in_response_to="req-1")


async def test_times_within_clock_skew_are_accepted(jit: JitApp) -> None:
    # Default skew 120 s: 60 s past NotOnOrAfter and 60 s before NotBefore still pass.
    response = saml_response(not_before=60, not_on_or_after=-60, confirmation_not_on_or_after=-60)
    status, body, _h = await saml_login(jit, response)
    assert status == 201, body


# ---------------------------------------------------------------------------- signature


async def test_signed_by_another_key_is_rejected(jit: JitApp) -> None:
    # The attacker's own certificate travels in KeyInfo: it must not be trusted.
    await _rejected(jit, saml_response(signer=Signer.get("attacker")), "invalid_signature")


async def test_unsigned_response_is_rejected(jit: JitApp) -> None:
    await _rejected(jit, saml_response(sign_what="none"), "invalid_signature")


async def test_empty_signature_is_rejected(jit: JitApp) -> None:
    resp = build_response()
    assertion = resp.find(f"{{{SAML}}}Assertion")
    assertion.find(f"{{{SAML}}}Issuer").addnext(etree.Element(f"{{{DS}}}Signature"))
    await _rejected(jit, encode(resp), "invalid_signature")


async def test_tampered_signed_assertion_is_rejected(jit: JitApp) -> None:
    resp = sign_assertion(build_response())
    nameid = resp.find(f".//{{{SAML}}}NameID")
    nameid.text = "admin"
    await _rejected(jit, encode(resp), "invalid_signature")


def _forged_assertion(signed: Any) -> Any:
    forged = copy.deepcopy(signed)
    forged.set("ID", "_forged")
    for sig in forged.findall(f"{{{DS}}}Signature"):
        forged.remove(sig)
    forged.find(f".//{{{SAML}}}NameID").text = "admin-subject"
    for value in forged.iter(f"{{{SAML}}}AttributeValue"):
        if value.text == "Ann@Example.com":
            value.text = "admin@example.com"
    return forged


@pytest.mark.parametrize("place", ["before", "after", "extensions", "nested"])
async def test_signature_wrapping_is_rejected(jit: JitApp, place: str) -> None:
    """XSW: a forged unsigned assertion beside (or around) the signed one."""
    resp = sign_assertion(build_response())
    signed = resp.find(f"{{{SAML}}}Assertion")
    forged = _forged_assertion(signed)
    if place == "before":
        signed.addprevious(forged)
    elif place == "after":
        signed.addnext(forged)
    elif place == "extensions":
        # The signed assertion hidden in Extensions, the forged one where readers look.
        resp.replace(signed, forged)
        ext = etree.Element(f"{{{SAMLP}}}Extensions")
        ext.append(signed)
        resp.find(f"{{{SAML}}}Issuer").addnext(ext)
    else:
        resp.replace(signed, forged)
        forged.append(signed)
    await _rejected(jit, encode(resp), "invalid_signature")
    events = await jit.events("jit.assertion.rejected")
    assert "Assertion" in events[-1].data["detail"]


async def test_signed_response_wrapping_a_forged_assertion_is_rejected(jit: JitApp) -> None:
    # Response-level signature; the attacker swaps the assertion: the digest breaks.
    resp = sign(build_response())
    signed = resp.find(f"{{{SAML}}}Assertion")
    resp.replace(signed, _forged_assertion(signed))
    await _rejected(jit, encode(resp), "invalid_signature")


async def test_two_signed_assertions_are_rejected(jit: JitApp) -> None:
    resp = sign_assertion(build_response())
    other = sign_assertion(build_response(nameid="someone-else")).find(f"{{{SAML}}}Assertion")
    resp.append(other)
    await _rejected(jit, encode(resp), "invalid_signature")


async def test_duplicate_ids_are_rejected(jit: JitApp) -> None:
    resp = sign_assertion(build_response())
    aid = resp.find(f"{{{SAML}}}Assertion").get("ID")
    ext = etree.Element(f"{{{SAMLP}}}Extensions")
    ext.set("ID", aid)
    resp.find(f"{{{SAML}}}Issuer").addnext(ext)
    await _rejected(jit, encode(resp), "invalid_signature")
    events = await jit.events("jit.assertion.rejected")
    assert "duplicate ID" in events[-1].data["detail"]


@pytest.mark.parametrize(
    ("signature_algorithm", "digest_algorithm"),
    [("rsa-sha1", "sha1"), ("rsa-sha256", "sha1"), ("rsa-sha1", "sha256")],
)
async def test_sha1_is_unsupported(
    jit: JitApp, signature_algorithm: str, digest_algorithm: str
) -> None:
    resp = sign_assertion(
        build_response(),
        signature_algorithm=signature_algorithm,
        digest_algorithm=digest_algorithm,
        signer_class=Sha1Signer,
    )
    await _rejected(jit, encode(resp), "unsupported_algorithm")


async def test_comment_in_nameid_does_not_truncate_the_subject(jit: JitApp) -> None:
    """The 2018 comment-truncation attack: a comment splits the NameID text node; the
    signature (comments excluded from c14n) still holds, so the full text must be read."""
    resp = sign_assertion(build_response(nameid="victim.attacker-controlled"))
    nameid = resp.find(f".//{{{SAML}}}NameID")
    nameid.text = "victim"
    comment = etree.Comment("")
    comment.tail = ".attacker-controlled"
    nameid.append(comment)
    status, body, _h = await saml_login(jit, encode(resp))
    assert status == 201, body
    assert body["identity"]["subject"] == "victim.attacker-controlled"


# ---------------------------------------------------------------------------- conditions


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"issuer": "https://evil.example/metadata"}, "invalid_issuer"),
        ({"audience": "https://other-sp.example/metadata"}, "invalid_audience"),
        ({"recipient": "https://evil.example/acs"}, "invalid_audience"),
        ({"destination": "https://evil.example/acs"}, "invalid_audience"),
        ({"not_on_or_after": -300}, "expired"),
        ({"confirmation_not_on_or_after": -300}, "expired"),
        ({"not_before": 600}, "not_yet_valid"),
        ({"in_response_to": "req-other"}, "in_response_to_mismatch"),
    ],
)
@pytest.mark.parametrize("sign_what", ["assertion", "response"])
async def test_wrong_claims_are_rejected(
    jit: JitApp, kw: dict[str, Any], reason: str, sign_what: str
) -> None:
    await _rejected(jit, saml_response(sign_what=sign_what, **kw), reason)


async def test_caller_in_response_to_must_match(jit: JitApp) -> None:
    await _rejected(jit, saml_response(), "in_response_to_mismatch", in_response_to="req-2")


async def test_transient_nameid_is_not_a_subject(jit: JitApp) -> None:
    fmt = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
    await _rejected(jit, saml_response(nameid_format=fmt), "invalid_signature")


async def test_replayed_assertion_is_rejected(jit: JitApp) -> None:
    response = saml_response()
    status, _b, _h = await saml_login(jit, response)
    assert status == 201
    # A fresh webhook-id (not an idempotent retry): the assertion ID was already used.
    status, body, _h = await saml_login(jit, response)
    assert (status, body["reason"]) == (422, "assertion_replayed")
    events = await jit.events("jit.assertion.rejected")
    assert events[-1].data["reason"] == "assertion_replayed"


async def test_audit_has_details_but_never_the_assertion(jit: JitApp) -> None:
    response = saml_response(audience="https://other-sp.example/metadata")
    await _rejected(jit, response, "invalid_audience")
    (event,) = await jit.events("jit.assertion.rejected")
    assert event.data["protocol"] == "saml2" and event.data["idp"] == "saml"
    assert "other-sp.example" in event.data["detail"]
    assert event.data["token"].startswith("sha256:")  # correlates, reveals nothing
    dumped = orjson.dumps([e.data for e in await jit.events("")]).decode()
    assert response[:40] not in dumped
    assert "X509Certificate" not in dumped and "SignatureValue" not in dumped


# ---------------------------------------------------------------------------- parsing


def _b64(xml: bytes) -> str:
    return base64.b64encode(xml).decode()


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&lol9;</samlp:Response>
"""


def _xxe(secret_file: Path) -> bytes:
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM "file://'
        + str(secret_file).encode()
        + b'">]>\n<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">'
        b"&xxe;</samlp:Response>"
    )


async def test_billion_laughs_is_refused(jit: JitApp) -> None:
    body = await _bad_request(jit, _b64(BILLION_LAUGHS))
    assert "DTD" in body["detail"]


async def test_xxe_to_a_file_is_refused(jit: JitApp, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    body = await _bad_request(jit, _b64(_xxe(secret)))
    assert "TOP-SECRET" not in orjson.dumps(body).decode()


async def test_doctype_hidden_in_utf16_is_refused(jit: JitApp) -> None:
    xml = BILLION_LAUGHS.replace(
        b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>'
    )
    await _bad_request(jit, _b64(xml.decode().encode("utf-16")))


def test_parser_never_resolves_entities_even_past_the_prescan(tmp_path: Path) -> None:
    """Defence in depth: were the DOCTYPE scan bypassed, lxml still resolves nothing."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    root = etree.fromstring(_xxe(secret), parser=_parser())
    assert "TOP-SECRET" not in etree.tostring(root).decode()
    try:
        laughs = etree.fromstring(BILLION_LAUGHS, parser=_parser())
    except etree.XMLSyntaxError as exc:  # libxml2's amplification guard: also fine
        assert "amplification" in str(exc)
    else:
        assert len(etree.tostring(laughs)) < 10_000


async def test_oversize_response_is_refused(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    jit = await app_with(aiohttp_client, tmp_path, max_response_bytes=4096)
    big = {"email": ["ann@example.com"], "junk": ["x" * 5000]}
    await _bad_request(jit, saml_response(attributes=big), status=413)
    status, body, _h = await saml_login(jit, saml_response())
    assert status == 201, body


@pytest.mark.parametrize(
    "raw",
    [
        "not base64 at all!",
        _b64(b"<samlp:Response"),  # not well-formed
        _b64(b"<foo/>"),  # not a Response
    ],
)
async def test_garbage_is_a_400_never_a_500(jit: JitApp, raw: str) -> None:
    await _bad_request(jit, raw)


async def test_encrypted_assertion_without_decryption_key_is_refused_clearly(
    jit: JitApp,
) -> None:
    resp = build_response()
    assertion = resp.find(f"{{{SAML}}}Assertion")
    encrypted = etree.Element(f"{{{SAML}}}EncryptedAssertion")
    etree.SubElement(encrypted, "{http://www.w3.org/2001/04/xmlenc#}EncryptedData")
    resp.replace(assertion, encrypted)
    body = await _bad_request(jit, encode(resp))
    assert "decryption_key" in body["detail"]


async def test_wrong_protocol_fields(jit: JitApp) -> None:
    status, body, _h = await jit.post({"idp": "saml", "protocol": "oidc", "id_token": "x"})
    assert (status, body["reason"]) == (400, "bad_request")
    status, body, _h = await jit.post({"idp": "saml", "protocol": "saml2", "in_response_to": "r"})
    assert (status, body["reason"]) == (400, "bad_request")
    status, body, _h = await saml_login(jit, saml_response(), in_response_to="")
    assert (status, body["reason"]) == (400, "bad_request")


# ---------------------------------------------------------------------------- unit + config


def test_verify_reads_only_the_signed_node() -> None:
    idp = make_saml_idp()
    resp = sign_assertion(build_response())
    # Unsigned Response-level text the attacker controls is never a claim.
    resp.find(f"{{{SAML}}}Issuer").text = IDP_ENTITY
    verified = verify_saml_response(encode(resp), "req-1", idp, clock_skew=120)
    assert verified.subject == "persistent-ann-1"
    assert verified.claims["email"] == "Ann@Example.com"
    assert verified.replay_key.startswith("saml:_a")
    with pytest.raises(JitError) as info:
        verify_saml_response(encode(resp), "req-1", make_saml_idp(sp_entity_id="x"), clock_skew=0)
    assert info.value.reason == "invalid_audience"


def test_certificate_rollover_accepts_any_pinned_certificate() -> None:
    rotated = Signer.get("rotated")
    idp = make_saml_idp(signing_certs=(Signer.get().cert_pem, rotated.cert_pem))
    for signer in (Signer.get(), rotated):
        verified = verify_saml_response(saml_response(signer=signer), "req-1", idp, clock_skew=120)
        assert verified.subject == "persistent-ann-1"
    with pytest.raises(JitError) as info:
        verify_saml_response(
            saml_response(signer=Signer.get("attacker")), "req-1", idp, clock_skew=120
        )
    assert info.value.reason == "invalid_signature"


def _cfg(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "entra",
        "protocol": "saml2",
        "idp_entity_id": IDP_ENTITY,
        "sp_entity_id": SP_ENTITY,
        "acs_urls": [ACS],
        "signing_certs": Signer.get().cert_pem,
    }
    base.update(extra)
    return base


def test_config_saml_idp_loads(tmp_path: Path) -> None:
    (idp,), issues = parse_idps(
        [_cfg(subject_source=ENTRA_OID, allow_idp_initiated=True, max_response_bytes=65536)],
        tmp_path,
    )
    assert issues == []
    assert idp.protocol == "saml2" and idp.acs_urls == (ACS,)
    assert idp.subject_source == ENTRA_OID and idp.allow_idp_initiated is True
    assert idp.max_response_bytes == 65536
    pem = tmp_path / "idp.pem"
    pem.write_text(Signer.get().cert_pem + Signer.get("rotated").cert_pem)
    cfg = _cfg(signing_certs_file="idp.pem")
    del cfg["signing_certs"]
    (idp,), issues = parse_idps([cfg], tmp_path)
    assert issues == [] and "BEGIN CERTIFICATE" in idp.signing_certs[0]
    assert idp.max_response_bytes == 128 * 1024 and idp.subject_source == "nameid"


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({"idp_entity_id": None}, "jit.idp[0].idp_entity_id", "required"),
        ({"acs_urls": None}, "jit.idp[0].acs_urls", "required"),
        ({"signing_certs": None}, "jit.idp[0].signing_certs", "required"),
        ({"signing_certs": "not a pem"}, "jit.idp[0].signing_certs", "not PEM"),
        ({"signing_certs_file": "missing.pem"}, "jit.idp[0].signing_certs", "not both"),
        ({"max_response_bytes": 10**7}, "jit.idp[0].max_response_bytes", "1024"),
        ({"issuer": "https://x"}, "jit.idp[0].issuer", "only for protocol"),
        ({"acs_urls": ["ftp://x"]}, "jit.idp[0].acs_urls", "http"),
    ],
)
def test_config_saml_errors(tmp_path: Path, change: dict[str, Any], key: str, reason: str) -> None:
    cfg = _cfg()
    for k, v in change.items():
        if v is None:
            cfg.pop(k)
        else:
            cfg[k] = v
    _idps, issues = parse_idps([cfg], tmp_path)
    assert any(k == key and reason in r for k, r in issues), issues


def test_config_refuses_a_private_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key_pem = (
        Signer.get()
        .key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    _idps, issues = parse_idps([_cfg(signing_certs=[Signer.get().cert_pem, key_pem])], tmp_path)
    assert any("private key" in r for _k, r in issues), issues
