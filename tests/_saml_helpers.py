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


__all__ += ["ENTRA_OID", "sign_assertion"]
