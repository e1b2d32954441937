"""SAML test helpers: a throwaway RSA key and self-signed certificate (cryptography),
SAML 2.0 Responses built with lxml and signed in-process with signxml's ``XMLSigner``."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree  # type: ignore[import-untyped]
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner

from scimd.jit.config import JitIdp
from scimd.jit.saml import BEARER, PERSISTENT
from tests._jit_helpers import JitApp

__all__ = [
    "ACS",
    "IDP_ENTITY",
    "SP_ENTITY",
    "Sha1Signer",
    "Signer",
    "build_response",
    "encode",
    "make_saml_idp",
    "saml_login",
    "saml_response",
    "sign",
]

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
IDP_ENTITY = "https://saml-idp.example.test/metadata"
SP_ENTITY = "https://app.example.test/saml/metadata"
ACS = "https://app.example.test/saml/acs"
ENTRA_OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
_NSMAP = {"samlp": SAMLP, "saml": SAML}


class Signer:
    """An RSA key and a self-signed certificate for it (one per name, cached)."""

    _cache: dict[str, Signer] = {}

    def __init__(self, name: str) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .sign(self.key, hashes.SHA256())
        )
        self.key_pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @classmethod
    def get(cls, name: str = "idp") -> Signer:
        if name not in cls._cache:
            cls._cache[name] = cls(name)
        return cls._cache[name]


class Sha1Signer(XMLSigner):
    """signxml refuses SHA-1 by default; an attacker (or an old IdP) is not so polite."""

    def check_deprecated_methods(self) -> None:
        return None


def _iso(offset: float) -> str:
    t = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _el(parent: Any, ns: str, tag: str, text: str | None = None, **attrs: str) -> Any:
    node = etree.SubElement(parent, f"{{{ns}}}{tag}", nsmap=_NSMAP)
    for k, v in attrs.items():
        node.set(k, v)
    if text is not None:
        node.text = text
    return node


def build_response(
    *,
    in_response_to: str | None = "req-1",
    nameid: str | None = "persistent-ann-1",
    nameid_format: str = PERSISTENT,
    attributes: dict[str, list[str]] | None = None,
    issuer: str = IDP_ENTITY,
    audience: str = SP_ENTITY,
    recipient: str = ACS,
    destination: str | None = ACS,
    not_before: float = -60,
    not_on_or_after: float = 300,
    confirmation_not_on_or_after: float = 300,
    assertion_id: str | None = None,
    response_id: str | None = None,
) -> Any:
    """An unsigned ``samlp:Response`` with one Assertion (times are offsets from now)."""
    attrs = (
        {"email": ["Ann@Example.com"], "givenName": ["Ann"], "sn": ["Smith"]}
        if attributes is None
        else attributes
    )
    rid = response_id or "_r" + secrets.token_hex(10)
    aid = assertion_id or "_a" + secrets.token_hex(10)
    resp = etree.Element(f"{{{SAMLP}}}Response", nsmap=_NSMAP)
    resp.set("ID", rid)
    resp.set("Version", "2.0")
    resp.set("IssueInstant", _iso(0))
    if destination is not None:
        resp.set("Destination", destination)
    if in_response_to is not None:
        resp.set("InResponseTo", in_response_to)
    _el(resp, SAML, "Issuer", issuer)
    status = _el(resp, SAMLP, "Status")
    _el(status, SAMLP, "StatusCode", Value="urn:oasis:names:tc:SAML:2.0:status:Success")
    a = _el(resp, SAML, "Assertion", ID=aid, Version="2.0", IssueInstant=_iso(0))
    _el(a, SAML, "Issuer", issuer)
    subject = _el(a, SAML, "Subject")
    if nameid is not None:
        _el(
            subject,
            SAML,
            "NameID",
            nameid,
            Format=nameid_format,
        )
    sc = _el(subject, SAML, "SubjectConfirmation", Method=BEARER)
    scd_attrs = {"Recipient": recipient, "NotOnOrAfter": _iso(confirmation_not_on_or_after)}
    if in_response_to is not None:
        scd_attrs["InResponseTo"] = in_response_to
    _el(sc, SAML, "SubjectConfirmationData", **scd_attrs)
    cond = _el(
        a, SAML, "Conditions", NotBefore=_iso(not_before), NotOnOrAfter=_iso(not_on_or_after)
    )
    ar = _el(cond, SAML, "AudienceRestriction")
    _el(ar, SAML, "Audience", audience)
    authn = _el(a, SAML, "AuthnStatement", AuthnInstant=_iso(0), SessionIndex="_s1")
    ctx = _el(authn, SAML, "AuthnContext")
    _el(
        ctx,
        SAML,
        "AuthnContextClassRef",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
    )
    if attrs:
        stmt = _el(a, SAML, "AttributeStatement")
        for name, values in attrs.items():
            attr = _el(stmt, SAML, "Attribute", Name=name)
            for v in values:
                _el(attr, SAML, "AttributeValue", v)
    return resp


def sign(
    node: Any,
    signer: Signer | None = None,
    *,
    signature_algorithm: str = "rsa-sha256",
    digest_algorithm: str = "sha256",
    signer_class: type[XMLSigner] = XMLSigner,
) -> Any:
    """Enveloped signature over ``node`` (by its ID), placed after its Issuer (as IdPs do).
    Returns the signed copy."""
    signer = signer or Signer.get()
    issuer = node.find(f"{{{SAML}}}Issuer")
    placeholder = etree.Element(f"{{{DS}}}Signature", nsmap={"ds": DS})
    placeholder.set("Id", "placeholder")
    issuer.addnext(placeholder)
    xml_signer = signer_class(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=signature_algorithm,
        digest_algorithm=digest_algorithm,
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    signed = xml_signer.sign(
        node, key=signer.key_pem, cert=signer.cert_pem, reference_uri=node.get("ID")
    )
    for sig in signed.iter(f"{{{DS}}}Signature"):
        sig.attrib.pop("Id", None)
    return signed


def sign_assertion(resp: Any, signer: Signer | None = None, **kw: Any) -> Any:
    """Replace the Response's Assertion by a signed copy; returns the Response."""
    assertion = resp.find(f"{{{SAML}}}Assertion")
    signed = sign(assertion, signer, **kw)
    resp.replace(assertion, signed)
    return resp


def encode(node: Any) -> str:
    return base64.b64encode(etree.tostring(node)).decode()


def saml_response(*, sign_what: str = "assertion", signer: Signer | None = None, **kw: Any) -> str:
    """A base64 Response: ``sign_what`` is ``assertion``, ``response``, ``both`` or ``none``."""
    resp = build_response(**kw)
    if sign_what in ("assertion", "both"):
        sign_assertion(resp, signer)
    if sign_what in ("response", "both"):
        resp = sign(resp, signer)
    return encode(resp)


def make_saml_idp(**kw: Any) -> JitIdp:
    base: dict[str, Any] = {
        "id": "saml",
        "protocol": "saml2",
        "idp_entity_id": IDP_ENTITY,
        "sp_entity_id": SP_ENTITY,
        "acs_urls": (ACS,),
        "signing_certs": (Signer.get().cert_pem,),
        "trust_email": True,
        "attributes": {
            "userName": "email",
            "name.givenName": "givenName",
            "name.familyName": "sn",
        },
    }
    base.update(kw)
    return JitIdp(**base)


async def saml_login(
    jit: JitApp,
    response: str,
    *,
    in_response_to: str | None = "req-1",
    idp: str = "saml",
    **kw: Any,
) -> tuple[int, Any, dict[str, str]]:
    body: dict[str, Any] = {"idp": idp, "protocol": "saml2", "saml_response": response}
    if in_response_to is not None:
        body["in_response_to"] = in_response_to
    return await jit.post(body, **kw)


XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"


def encrypt_assertion(
    resp: Any,
    recipient: Signer | None = None,
    *,
    content: str = f"{XENC11}aes256-gcm",
    transport: str = f"{XENC}rsa-oaep-mgf1p",
    oaep_digest: str | None = None,
    mgf: str | None = None,
    key_inside: bool = True,
) -> Any:
    """Replace the Response's (possibly signed) Assertion by an ``EncryptedAssertion``
    for ``recipient``'s public key (XML Encryption 1.1, as SAML IdPs do). ``transport``
    ``xmlenc#rsa-1_5`` uses PKCS#1 v1.5 (what an attacker or an old IdP sends)."""
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    recipient = recipient or Signer.get("sp")
    assertion = resp.find(f"{{{SAML}}}Assertion")
    plain = etree.tostring(assertion)
    size = 16 if "128" in content else 32
    cek = secrets.token_bytes(size)
    if content.endswith("gcm"):
        iv = secrets.token_bytes(12)
        blob = iv + AESGCM(cek).encrypt(iv, plain, None)
    else:
        iv = secrets.token_bytes(16)
        pad = 16 - len(plain) % 16
        padded = plain + secrets.token_bytes(pad - 1) + bytes([pad])
        enc = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
        blob = iv + enc.update(padded) + enc.finalize()
    hashes_by_uri: dict[str | None, hashes.HashAlgorithm] = {
        None: hashes.SHA1(),
        f"{DS}sha1": hashes.SHA1(),
        f"{XENC}sha256": hashes.SHA256(),
        f"{XENC11}mgf1sha1": hashes.SHA1(),
        f"{XENC11}mgf1sha256": hashes.SHA256(),
    }
    public = recipient.key.public_key()
    if transport.endswith("rsa-1_5"):
        wrapped = public.encrypt(cek, padding.PKCS1v15())
    else:
        pad_alg = padding.OAEP(
            mgf=padding.MGF1(hashes_by_uri[mgf]),
            algorithm=hashes_by_uri[oaep_digest],
            label=None,
        )
        wrapped = public.encrypt(cek, pad_alg)
    encrypted = etree.Element(f"{{{SAML}}}EncryptedAssertion", nsmap=_NSMAP)
    data = etree.SubElement(
        encrypted, f"{{{XENC}}}EncryptedData", nsmap={"xenc": XENC}, Type=f"{XENC}Element"
    )
    etree.SubElement(data, f"{{{XENC}}}EncryptionMethod", Algorithm=content)
    holder = etree.SubElement(data, f"{{{DS}}}KeyInfo", nsmap={"ds": DS}) if key_inside else None
    cipher = etree.SubElement(data, f"{{{XENC}}}CipherData")
    etree.SubElement(cipher, f"{{{XENC}}}CipherValue").text = base64.b64encode(blob).decode()
    ek = etree.SubElement(holder if holder is not None else encrypted, f"{{{XENC}}}EncryptedKey")
    method = etree.SubElement(ek, f"{{{XENC}}}EncryptionMethod", Algorithm=transport)
    if oaep_digest is not None:
        etree.SubElement(method, f"{{{DS}}}DigestMethod", Algorithm=oaep_digest)
    if mgf is not None:
        etree.SubElement(method, f"{{{XENC11}}}MGF", Algorithm=mgf)
    ek_cipher = etree.SubElement(ek, f"{{{XENC}}}CipherData")
    etree.SubElement(ek_cipher, f"{{{XENC}}}CipherValue").text = base64.b64encode(wrapped).decode()
    resp.replace(assertion, encrypted)
    return resp


__all__ += ["ENTRA_OID", "XENC", "XENC11", "encrypt_assertion", "sign_assertion"]
