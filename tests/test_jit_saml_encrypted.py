"""Encrypted SAML assertions (``EncryptedAssertion``, XML Encryption 1.1): RSA-OAEP key
transport of an AES-GCM/CBC content key with the SP's ``decryption_key``; the decrypted
assertion goes through exactly the same signature verification and checks. Each attack is
mounted in-process and must be rejected without provisioning anything."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest
from lxml import etree  # type: ignore[import-untyped]

from scimd.jit.config import parse_idps
from tests._http_helpers import AiohttpClient
from tests._jit_helpers import JitApp, make_jit_app
from tests._jit_helpers import jit_settings as settings_for
from tests._saml_helpers import (
    ACS,
    IDP_ENTITY,
    SP_ENTITY,
    XENC,
    XENC11,
    Signer,
    build_response,
    encode,
    encrypt_assertion,
    make_saml_idp,
    saml_login,
    sign,
    sign_assertion,
)

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SP = Signer.get("sp")


async def app_with(aiohttp_client: AiohttpClient, tmp_path: Path, **idp: Any) -> JitApp:
    idp.setdefault("decryption_keys", (SP.key_pem.decode(),))
    settings = settings_for(tmp_path, (make_saml_idp(**idp),))
    return await make_jit_app(aiohttp_client, tmp_path, settings)


@pytest.fixture
async def jit(aiohttp_client: AiohttpClient, tmp_path: Path) -> JitApp:
    return await app_with(aiohttp_client, tmp_path)


def encrypted(sign_what: str = "assertion", **enc: Any) -> Any:
    """A Response whose (signed) assertion is encrypted, optionally then signed whole."""
    resp = build_response()
    if sign_what in ("assertion", "both"):
        sign_assertion(resp)
    encrypt_assertion(resp, **enc)
    if sign_what in ("response", "both"):
        resp = sign(resp)
    return resp


async def rejected(jit: JitApp, resp: Any, reason: str) -> None:
    status, body, _h = await saml_login(jit, encode(resp))
    assert (status, body["reason"]) == (422, reason), body
    assert body["detail"] == "The identity assertion was rejected"
    users = await jit.scim.call("GET", "/Users")
    assert users[1]["totalResults"] == 0


# ---------------------------------------------------------------------- accepted


@pytest.mark.parametrize("sign_what", ["assertion", "response", "both"])
async def test_encrypted_signed_login_creates_the_user(jit: JitApp, sign_what: str) -> None:
    status, body, _h = await saml_login(jit, encode(encrypted(sign_what)))
    assert status == 201, body
    assert body["user"]["userName"] == "ann@example.com"
    assert body["identity"]["subject"] == "persistent-ann-1"


@pytest.mark.parametrize(
    "enc",
    [
        {"content": f"{XENC11}aes128-gcm"},
        {"content": f"{XENC}aes128-cbc"},
        {"content": f"{XENC}aes256-cbc"},
        {"transport": f"{XENC11}rsa-oaep", "mgf": f"{XENC11}mgf1sha256"},
        {"transport": f"{XENC11}rsa-oaep", "oaep_digest": f"{XENC}sha256"},
        {"transport": f"{XENC11}rsa-oaep"},  # MGF1 SHA-1 by default
        {"key_inside": False},  # EncryptedKey beside EncryptedData
    ],
)
async def test_supported_algorithms(jit: JitApp, enc: dict[str, Any]) -> None:
    status, body, _h = await saml_login(jit, encode(encrypted(**enc)))
    assert status == 201, body


async def test_replayed_encrypted_assertion_is_refused(jit: JitApp) -> None:
    raw = encode(encrypted())
    assert (await saml_login(jit, raw))[0] == 201
    status, body, _h = await saml_login(jit, raw)
    assert (status, body["reason"]) == (422, "assertion_replayed")


# ---------------------------------------------------------------------- attacks


async def test_encrypted_for_another_key_is_refused(jit: JitApp) -> None:
    await rejected(jit, encrypted(recipient=Signer.get("someone-else")), "invalid_signature")


async def test_tampered_gcm_ciphertext_is_refused(jit: JitApp) -> None:
    resp = encrypted()
    value = resp.find(f".//{{{XENC}}}EncryptedData/{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    blob = bytearray(base64.b64decode(value.text))
    blob[20] ^= 0x01  # one bit of the ciphertext: the GCM tag no longer matches
    value.text = base64.b64encode(bytes(blob)).decode()
    await rejected(jit, resp, "invalid_signature")


async def test_tampered_gcm_tag_is_refused(jit: JitApp) -> None:
    resp = encrypted()
    value = resp.find(f".//{{{XENC}}}EncryptedData/{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    blob = bytearray(base64.b64decode(value.text))
    blob[-1] ^= 0x80
    value.text = base64.b64encode(bytes(blob)).decode()
    await rejected(jit, resp, "invalid_signature")


@pytest.mark.parametrize("byte", [0, 5, 17, -17, -1])
async def test_tampered_cbc_ciphertext_always_gets_the_same_answer(jit: JitApp, byte: int) -> None:
    """CBC has no integrity: a flipped bit may break the padding, or leave valid padding
    over bytes that are no longer XML, or XML that is no longer the signed assertion.
    Each must be the same 422 invalid_signature — a different answer for "not XML" is the
    oracle of the XML Encryption CBC attack (Jager and Somorovsky, 2011)."""
    resp = encrypted(content=f"{XENC}aes256-cbc")
    value = resp.find(f".//{{{XENC}}}EncryptedData/{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    blob = bytearray(base64.b64decode(value.text))
    blob[byte] ^= 0x41
    value.text = base64.b64encode(bytes(blob)).decode()
    await rejected(jit, resp, "invalid_signature")


async def test_rsa_1_5_key_transport_is_refused(jit: JitApp) -> None:
    await rejected(jit, encrypted(transport=f"{XENC}rsa-1_5"), "unsupported_algorithm")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (f"{{{XENC}}}EncryptedData/{{{XENC}}}EncryptionMethod", f"{XENC}tripledes-cbc"),
        (f"{{{XENC}}}EncryptedData/{{{XENC}}}EncryptionMethod", f"{XENC11}aes192-gcm"),
    ],
)
async def test_other_content_algorithms_are_refused(jit: JitApp, path: str, value: str) -> None:
    resp = encrypted()
    resp.find(f".//{path}").set("Algorithm", value)
    await rejected(jit, resp, "unsupported_algorithm")


async def test_oaep_with_md5_digest_is_refused(jit: JitApp) -> None:
    resp = encrypted(oaep_digest=f"{XENC}sha256")
    resp.find(f".//{{{XENC}}}EncryptedKey//{{http://www.w3.org/2000/09/xmldsig#}}DigestMethod").set(
        "Algorithm", "http://www.w3.org/2001/04/xmldsig-more#md5"
    )
    await rejected(jit, resp, "unsupported_algorithm")


async def test_encrypted_assertion_next_to_a_plain_one_is_refused(jit: JitApp) -> None:
    # A signed plain assertion beside an encrypted one: neither may be chosen.
    resp = encrypted()
    forged = sign_assertion(build_response()).find(f"{{{SAML}}}Assertion")
    resp.append(forged)
    await rejected(jit, resp, "invalid_signature")
    # Nor two encrypted assertions.
    resp = encrypted()
    other = encrypted().find(f"{{{SAML}}}EncryptedAssertion")
    resp.append(other)
    await rejected(jit, resp, "invalid_signature")


async def test_encrypted_unsigned_assertion_in_unsigned_response_is_refused(
    jit: JitApp,
) -> None:
    # Encryption is no authentication: anyone can encrypt for the SP's public key.
    await rejected(jit, encrypted("none"), "invalid_signature")


async def test_unsigned_inner_assertion_is_accepted_only_under_a_response_signature(
    jit: JitApp,
) -> None:
    # The Response signature covers the ciphertext: swapping in another ciphertext (of
    # an unsigned, forged assertion) breaks it.
    good = encrypted("response")
    forged = build_response(nameid="persistent-mallory")
    encrypt_assertion(forged)
    good.replace(
        good.find(f"{{{SAML}}}EncryptedAssertion"),
        copy.deepcopy(forged.find(f"{{{SAML}}}EncryptedAssertion")),
    )
    await rejected(jit, good, "invalid_signature")


async def test_inner_signature_by_an_unpinned_key_is_refused(jit: JitApp) -> None:
    resp = build_response()
    sign_assertion(resp, Signer.get("attacker"))
    encrypt_assertion(resp)
    await rejected(jit, resp, "invalid_signature")


async def test_decrypted_checks_still_apply(jit: JitApp) -> None:
    resp = build_response(audience="https://other-sp.example/")
    sign_assertion(resp)
    encrypt_assertion(resp)
    await rejected(jit, resp, "invalid_audience")


async def test_dtd_inside_the_encrypted_assertion_is_refused(jit: JitApp) -> None:
    resp = build_response()
    sign_assertion(resp)
    assertion = resp.find(f"{{{SAML}}}Assertion")
    text = b'<!DOCTYPE a [<!ENTITY x "y">]>' + etree.tostring(assertion)
    # Encrypted by hand (a document no IdP produces) in place of a normal encryption.
    resp2 = build_response()
    encrypt_assertion(resp2)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    cek, iv = b"k" * 32, b"i" * 12
    blob = iv + AESGCM(cek).encrypt(iv, text, None)
    wrapped = SP.key.public_key().encrypt(
        cek, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    )
    key_value = resp2.find(f".//{{{XENC}}}EncryptedKey/{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    key_value.text = base64.b64encode(wrapped).decode()
    data = f"{{{XENC}}}EncryptedData/{{{XENC}}}CipherData/{{{XENC}}}CipherValue"
    resp2.find(f".//{data}").text = base64.b64encode(blob).decode()
    # Refused like any other decrypted data that is not a plain Assertion (one answer for
    # every failure behind the encryption, see the CBC test above).
    await rejected(jit, resp2, "invalid_signature")


# ---------------------------------------------------------------------- configuration


def _cfg(**extra: Any) -> dict[str, Any]:
    return {
        "id": "s",
        "protocol": "saml2",
        "idp_entity_id": IDP_ENTITY,
        "sp_entity_id": SP_ENTITY,
        "acs_urls": [ACS],
        "signing_certs": Signer.get().cert_pem,
        **extra,
    }


def test_decryption_key_comes_from_a_secret_reference(tmp_path: Path) -> None:
    key_file = tmp_path / "sp.key"
    key_file.write_bytes(SP.key_pem)

    def deref(ref: Any) -> str:
        return Path(ref["$file"]).read_text()

    (idp,), issues = parse_idps([_cfg(decryption_key={"$file": str(key_file)})], tmp_path, deref)
    assert issues == []
    assert idp.decryption_keys == (SP.key_pem.decode(),)
    assert "PRIVATE" not in repr(idp)  # never shown
    # A literal key in the file is refused, without echoing it.
    _i, issues = parse_idps([_cfg(decryption_key=SP.key_pem.decode())], tmp_path, deref)
    assert [k for k, _r in issues] == ["jit.idp[0].decryption_key"]
    assert all("PRIVATE" not in reason for _k, reason in issues)
    # Not a private key.
    cert = tmp_path / "cert.pem"
    cert.write_text(Signer.get().cert_pem)
    _i, issues = parse_idps([_cfg(decryption_key={"$file": str(cert)})], tmp_path, deref)
    assert any("private key" in reason for _k, reason in issues)
