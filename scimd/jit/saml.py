"""SAML 2.0 ``Response`` verification (JIT.md "Verification checklist", SAML part).

* Size-capped (``max_response_bytes``), UTF-8 only, any DOCTYPE or ENTITY declaration is
  refused before parsing; lxml then parses with ``resolve_entities=False``,
  ``no_network=True``, ``load_dtd=False``: nothing is ever resolved or fetched.
* Structure before crypto: exactly one ``saml:Assertion`` anywhere in the document, or
  exactly one ``EncryptedAssertion`` (a child of the Response, with no plain Assertion
  beside it; see "Encrypted assertions" below), no duplicate ``ID``/``Id``/``id``
  values, every ``ds:Signature`` a child of the Response or of the Assertion, with a
  non-empty ``SignedInfo``; signature and digest algorithms from an allow-list (SHA-1 and
  anything else is ``unsupported_algorithm``).
* The signature is checked by signxml against the pinned ``signing_certs`` only (any
  certificate in ``KeyInfo`` is ignored), and **only the node signxml returns**
  (``VerifyResult.signed_xml``, re-parsed from its canonical form) is read: the signed
  Response (with its Assertion) or the signed Assertion. A forged assertion beside the
  signed one is refused by the one-Assertion rule and would never be read anyway.
* Checks on the signed node: ``Issuer`` = ``idp_entity_id``; ``Conditions`` NotBefore /
  NotOnOrAfter with ``jit.clock_skew``; every ``AudienceRestriction`` names
  ``sp_entity_id``; a bearer ``SubjectConfirmationData`` whose ``Recipient`` is one of
  ``acs_urls``, ``NotOnOrAfter`` in the future and ``InResponseTo`` equal to the caller's
  ``in_response_to`` (an IdP-initiated response, without it, only with
  ``allow_idp_initiated``); the Response ``Destination`` / ``InResponseTo`` / ``Status``.
* Subject: a persistent ``NameID`` (``subject_source = "nameid"``) or one configured
  single-valued attribute (e.g. Entra's objectidentifier claim). Attributes become claims
  by their ``Name``; ``email`` comes from ``email_attribute``.

Encrypted assertions (``scimd.jit.xmlenc``: RSA-OAEP key transport of an AES-GCM/CBC key,
with the IdP's ``decryption_key``): a signature on the Response is verified first, over the
encrypted form, and the EncryptedAssertion is taken from the signed node; the decrypted
Assertion then passes the same parsing guards, and its own signature (if any) is verified
on the decrypted document; at least one of the two must be signed. Everything after that
is the same checks as for a plain assertion.

The assertion ID is returned as the replay key (one-time use until NotOnOrAfter + skew,
recorded by the service in the same replay cache as OIDC ``jti``s).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from lxml import etree  # type: ignore[import-untyped]
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidInput, InvalidSignature, SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier

from scimd.jit.config import JitIdp
from scimd.jit.errors import JitError
from scimd.jit.xmlenc import decrypt_assertion, load_decryption_keys

__all__ = [
    "BEARER",
    "PERSISTENT",
    "VerifiedAssertion",
    "load_signing_certs",
    "verify_saml_response",
]

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
_ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
_XML_ID = "{http://www.w3.org/XML/1998/namespace}id"

_RESPONSE = f"{{{SAMLP}}}Response"
_ASSERTION = f"{{{SAML}}}Assertion"
_SIGNATURE = f"{{{DS}}}Signature"
_ENCRYPTED = f"{{{SAML}}}EncryptedAssertion"

SIGNATURE_METHODS = frozenset(
    {
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512,
    }
)
DIGEST_ALGORITHMS = frozenset(
    {DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}
)
_TRANSFORMS = frozenset(
    {
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        "http://www.w3.org/2006/12/xml-c14n11",
    }
)
_SIGNATURE_CONFIG = SignatureConfiguration(
    require_x509=True,
    expect_references=1,
    signature_methods=SIGNATURE_METHODS,
    digest_algorithms=DIGEST_ALGORITHMS,
)
_DECL = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)
_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?$")
_MAX_SUBJECT = 255


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    claims: dict[str, Any]
    """Attributes by Name (one value: a string, several: a list), ``sub`` and ``email``."""
    subject: str
    assertion_id: str
    replay_key: str
    """``saml:<assertion ID>``: one-time use until ``expires``."""
    expires: float
    """Unix time until which the replay key is remembered (NotOnOrAfter + skew)."""
    response_sha256: str


def _reject(reason: str, internal: str) -> JitError:
    # Generic to the caller; the exact reason goes to the audit log.
    return JitError(422, reason, "The identity assertion was rejected", internal=internal)


def response_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=64)
def load_signing_certs(pem: str) -> tuple[x509.Certificate, ...]:
    """PEM text (one or several certificates) -> certificates; ``ValueError`` if invalid."""
    if "PRIVATE KEY" in pem:
        raise ValueError("signing_certs must hold certificates only, not a private key")
    try:
        certs = tuple(x509.load_pem_x509_certificates(pem.encode("ascii")))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"not PEM certificates: {exc}") from None
    if not certs:
        raise ValueError("no certificate found")
    return certs


def _parser() -> Any:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


def _decode(saml_response: Any, limit: int) -> bytes:
    if not isinstance(saml_response, str) or not saml_response:
        raise JitError(400, "bad_request", "saml_response must be a non-empty base64 string")
    if len(saml_response) > (limit + 2) // 3 * 4 + limit // 64 * 2 + 64:
        raise JitError(413, "bad_request", f"The SAML response exceeds {limit} bytes")
    try:
        data = base64.b64decode("".join(saml_response.split()), validate=True)
    except (binascii.Error, ValueError):
        raise JitError(400, "bad_request", "saml_response is not valid base64") from None
    if len(data) > limit:
        raise JitError(413, "bad_request", f"The SAML response exceeds {limit} bytes")
    return data


def _parse(data: bytes) -> Any:
    # UTF-8 (or ASCII) only, so the byte scan below sees every declaration.
    if data.startswith((b"\xfe\xff", b"\xff\xfe", b"\x00", b"\x4c\x6f\xa7\x94")) or b"\x00" in data:
        raise JitError(400, "bad_request", "The SAML response must be UTF-8 XML")
    head = data[:200].lower()
    if b"encoding=" in head and not re.search(rb"encoding=[\"'](utf-8|us-ascii)[\"']", head):
        raise JitError(400, "bad_request", "The SAML response must be UTF-8 XML")
    if _DECL.search(data):
        raise JitError(400, "bad_request", "DTDs and entity declarations are not allowed")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError:
        raise JitError(400, "bad_request", "The SAML response is not well-formed XML") from None
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise JitError(400, "bad_request", "DTDs and entity declarations are not allowed")
    if any(True for _ in root.iter(etree.Entity)):
        raise JitError(400, "bad_request", "DTDs and entity declarations are not allowed")
    return root


def _text(node: Any) -> str:
    return "".join(node.itertext()).strip()


def _instant(value: str | None, what: str) -> float | None:
    if value is None:
        return None
    m = _DATETIME.match(value.strip())
    if m is None:
        raise _reject("invalid_signature", f"{what} {value!r} is not an xs:dateTime")
    frac = ((m.group(2) or "") + "000000")[:6]
    tz = m.group(3) or "Z"
    tz = "+00:00" if tz == "Z" else tz
    try:
        return datetime.fromisoformat(f"{m.group(1)}.{frac}{tz}").timestamp()
    except ValueError:
        raise _reject("invalid_signature", f"{what} {value!r} is not a valid time") from None


def _structure(root: Any) -> Any:
    """Checks that need no key: returns the one Assertion of the document."""
    assertions = list(root.iter(_ASSERTION))
    if len(assertions) != 1:
        raise _reject("invalid_signature", f"expected one Assertion, found {len(assertions)}")
    assertion = assertions[0]
    _unique_ids(root)
    if not _signatures(root, (root, assertion)):
        raise _reject("invalid_signature", "the response is not signed")
    return assertion


def _unique_ids(root: Any) -> None:
    seen: set[str] = set()
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        for name, value in el.attrib.items():
            if name in ("ID", "Id", "id", _XML_ID):
                if value in seen:
                    raise _reject("invalid_signature", f"duplicate ID {value!r}")
                seen.add(value)


def _signatures(root: Any, parents: tuple[Any, ...]) -> int:
    """Every ``ds:Signature`` under ``root`` is a child of one of ``parents``, not empty,
    with allowed algorithms only; returns how many there are."""
    signatures = list(root.iter(_SIGNATURE))
    for sig in signatures:
        parent = sig.getparent()
        if not any(parent is p for p in parents):
            raise _reject("invalid_signature", "a Signature outside the Response/Assertion")
        info = sig.find(f"{{{DS}}}SignedInfo")
        value = sig.find(f"{{{DS}}}SignatureValue")
        if info is None or value is None or not _text(value):
            raise _reject("invalid_signature", "empty ds:Signature")
        for method in sig.iter(f"{{{DS}}}SignatureMethod"):
            alg = method.get("Algorithm", "")
            if alg not in {m.value for m in SIGNATURE_METHODS}:
                raise _reject("unsupported_algorithm", f"signature method {alg!r}")
        for method in sig.iter(f"{{{DS}}}DigestMethod"):
            alg = method.get("Algorithm", "")
            if alg not in {d.value for d in DIGEST_ALGORITHMS}:
                raise _reject("unsupported_algorithm", f"digest method {alg!r}")
        for tag in ("Transform", "CanonicalizationMethod"):
            for method in sig.iter(f"{{{DS}}}{tag}"):
                alg = method.get("Algorithm", "")
                if alg not in _TRANSFORMS:
                    raise _reject("unsupported_algorithm", f"{tag} {alg!r}")
    return len(signatures)


def _encrypted(root: Any) -> Any:
    """The document's one ``EncryptedAssertion`` (a child of the Response, alone: no plain
    Assertion beside it), or None."""
    found = list(root.iter(_ENCRYPTED))
    if not found:
        return None
    if len(found) > 1 or any(True for _ in root.iter(_ASSERTION)):
        raise _reject("invalid_signature", "an EncryptedAssertion beside another assertion")
    if found[0].getparent() is not root:
        raise _reject("invalid_signature", "the EncryptedAssertion is not in the Response")
    return found[0]


@functools.lru_cache(maxsize=16)
def _decryption_keys(pems: tuple[str, ...]) -> tuple[RSAPrivateKey, ...]:
    return load_decryption_keys(pems)


def _open_encrypted(
    root: Any, data: bytes, certs: Sequence[x509.Certificate], idp: JitIdp
) -> tuple[Any, Any, bool]:
    """Verify the Response signature (if any) over the encrypted form, decrypt the
    assertion from the signed node, and verify the assertion's own signature (if any):
    returns (assertion, response, response signed). One of the two must be signed."""
    if not idp.decryption_keys:
        raise JitError(
            400,
            "bad_request",
            "Encrypted SAML assertions need this IdP's decryption_key (the SP private key)",
        )
    _unique_ids(root)
    resp, resp_signed = root, False
    encrypted = _encrypted(root)
    if _signatures(root, (root,)):
        signed = _verify_signature(data, certs)
        found = signed.findall(_ENCRYPTED) if signed.tag == _RESPONSE else []
        if len(found) != 1:
            raise _reject("invalid_signature", "the signed Response holds no EncryptedAssertion")
        encrypted, resp, resp_signed = found[0], signed, True
    try:
        keys = _decryption_keys(idp.decryption_keys)
    except ValueError as exc:  # pragma: no cover - validated by the configuration
        raise _reject("invalid_signature", f"decryption key unusable: {exc}") from None
    plain = decrypt_assertion(encrypted, keys)
    try:
        inner = _parse(plain)
    except JitError as exc:
        # The same answer as a bad padding or a wrong key: telling "the plaintext is not
        # XML" apart would be the oracle of the XML Encryption CBC attack (Jager and
        # Somorovsky, 2011) against an assertion whose Response is not signed.
        raise _reject("invalid_signature", f"decrypted data: {exc.detail}") from None
    if inner.tag != _ASSERTION:
        raise _reject("invalid_signature", "the decrypted data is not an Assertion")
    if sum(1 for _ in inner.iter(_ASSERTION, _ENCRYPTED)) != 1:
        raise _reject("invalid_signature", "the decrypted Assertion holds another assertion")
    _unique_ids(inner)
    if _signatures(inner, (inner,)):
        signed_inner = _verify_signature(plain, certs)
        if signed_inner.tag != _ASSERTION or signed_inner.get("ID") != inner.get("ID"):
            raise _reject("invalid_signature", "the signature does not cover the Assertion")
        return signed_inner, resp, resp_signed
    if not resp_signed:
        raise _reject("invalid_signature", "neither the response nor the assertion is signed")
    return inner, resp, resp_signed


def _verify_signature(data: bytes, certs: Sequence[x509.Certificate]) -> Any:
    """signxml against the pinned certificates only: the signed node, re-parsed."""
    failure = "no pinned certificate"
    for cert in certs:
        try:
            result = XMLVerifier().verify(
                data, x509_cert=cert, parser=_parser(), expect_config=_SIGNATURE_CONFIG
            )
        except InvalidSignature as exc:  # also InvalidDigest, InvalidCertificate
            failure = f"signature check failed: {exc}"
            continue
        except (InvalidInput, SignXMLException, ValueError, etree.LxmlError) as exc:
            if "forbidden by configuration" in str(exc):
                raise _reject("unsupported_algorithm", str(exc)) from None
            raise _reject("invalid_signature", f"unverifiable signature: {exc}") from None
        except Exception as exc:  # never a 500 on hostile input
            raise _reject("invalid_signature", f"unverifiable signature: {exc!r}") from None
        if isinstance(result, list) or result.signed_xml is None:
            raise _reject("invalid_signature", "the signed data is not XML")
        return result.signed_xml
    raise _reject("invalid_signature", failure)


def _issuer_ok(node: Any, idp: JitIdp) -> bool:
    issuer = node.find(f"{{{SAML}}}Issuer")
    if issuer is None:
        return False
    fmt = issuer.get("Format")
    return (fmt is None or fmt == _ENTITY) and _text(issuer) == idp.idp_entity_id


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _response_checks(resp: Any, signed: bool, in_response_to: str | None, idp: JitIdp) -> None:
    status = resp.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
    if status is None or status.get("Value") != _SUCCESS:
        code = None if status is None else status.get("Value")
        raise JitError(400, "bad_request", f"The SAML response is not a success ({code})")
    if resp.find(f"{{{SAML}}}Issuer") is not None and not _issuer_ok(resp, idp):
        raise _reject("invalid_issuer", "Response Issuer differs from idp_entity_id")
    destination = resp.get("Destination")
    if destination is not None and destination not in idp.acs_urls:
        raise _reject("invalid_audience", f"Destination {destination!r} not in acs_urls")
    if signed and destination is None:
        raise _reject("invalid_audience", "a signed Response must carry Destination")
    irt = resp.get("InResponseTo")
    if irt is not None and (in_response_to is None or not _same(irt, in_response_to)):
        raise _reject("in_response_to_mismatch", "Response InResponseTo differs")


def _conditions(assertion: Any, idp: JitIdp, skew: float, now: float) -> float | None:
    cond = assertion.find(f"{{{SAML}}}Conditions")
    if cond is None:
        raise _reject("invalid_audience", "no Conditions (AudienceRestriction is required)")
    nb = _instant(cond.get("NotBefore"), "Conditions NotBefore")
    if nb is not None and now + skew < nb:
        raise _reject("not_yet_valid", f"Conditions NotBefore {cond.get('NotBefore')}")
    noa = _instant(cond.get("NotOnOrAfter"), "Conditions NotOnOrAfter")
    if noa is not None and now - skew >= noa:
        raise _reject("expired", f"Conditions NotOnOrAfter {cond.get('NotOnOrAfter')}")
    restrictions = cond.findall(f"{{{SAML}}}AudienceRestriction")
    if not restrictions:
        raise _reject("invalid_audience", "no AudienceRestriction")
    for restriction in restrictions:
        audiences = [_text(a) for a in restriction.findall(f"{{{SAML}}}Audience")]
        if idp.sp_entity_id not in audiences:
            raise _reject("invalid_audience", f"Audience {audiences!r} lacks sp_entity_id")
    return noa


def _confirmation(
    subject: Any, in_response_to: str | None, idp: JitIdp, skew: float, now: float
) -> float:
    """A bearer SubjectConfirmation that holds; returns its NotOnOrAfter."""
    first: JitError | None = None
    for sc in subject.findall(f"{{{SAML}}}SubjectConfirmation"):
        if sc.get("Method") != BEARER:
            continue
        try:
            return _bearer(sc, in_response_to, idp, skew, now)
        except JitError as err:
            first = first or err
    raise first or _reject("invalid_audience", "no bearer SubjectConfirmation")


def _bearer(sc: Any, in_response_to: str | None, idp: JitIdp, skew: float, now: float) -> float:
    data = sc.find(f"{{{SAML}}}SubjectConfirmationData")
    if data is None:
        raise _reject("invalid_audience", "bearer confirmation without SubjectConfirmationData")
    recipient = data.get("Recipient")
    if recipient not in idp.acs_urls:
        raise _reject("invalid_audience", f"Recipient {recipient!r} not in acs_urls")
    noa = _instant(data.get("NotOnOrAfter"), "SubjectConfirmationData NotOnOrAfter")
    if noa is None:
        raise _reject("expired", "bearer confirmation without NotOnOrAfter")
    if now - skew >= noa:
        raise _reject("expired", f"SubjectConfirmationData NotOnOrAfter {data.get('NotOnOrAfter')}")
    nb = _instant(data.get("NotBefore"), "SubjectConfirmationData NotBefore")
    if nb is not None and now + skew < nb:
        raise _reject("not_yet_valid", "SubjectConfirmationData NotBefore")
    irt = data.get("InResponseTo")
    if in_response_to is None:
        if irt is not None:
            raise _reject(
                "in_response_to_mismatch", "an SP-initiated response without in_response_to"
            )
    elif irt is None or not _same(irt, in_response_to):
        raise _reject("in_response_to_mismatch", "InResponseTo differs from the caller's")
    return noa


def _attributes(assertion: Any) -> dict[str, Any]:
    out: dict[str, list[str]] = {}
    for stmt in assertion.findall(f"{{{SAML}}}AttributeStatement"):
        for attr in stmt.findall(f"{{{SAML}}}Attribute"):
            name = attr.get("Name")
            if not name:
                continue
            values = [_text(v) for v in attr.findall(f"{{{SAML}}}AttributeValue")]
            out.setdefault(name, []).extend(v for v in values if v)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items() if v}


def _subject_value(subject: Any, attributes: dict[str, Any], idp: JitIdp) -> str:
    if idp.subject_source == "nameid":
        nameid = subject.find(f"{{{SAML}}}NameID")
        if nameid is None:
            raise _reject("invalid_signature", "no NameID in the Subject")
        fmt = nameid.get("Format")
        if fmt != PERSISTENT:
            raise _reject("invalid_signature", f"NameID Format {fmt!r} is not persistent")
        qualifier = nameid.get("NameQualifier")
        if qualifier is not None and qualifier != idp.idp_entity_id:
            raise _reject("invalid_issuer", f"NameQualifier {qualifier!r}")
        sp_qualifier = nameid.get("SPNameQualifier")
        if sp_qualifier is not None and sp_qualifier != idp.sp_entity_id:
            raise _reject("invalid_audience", f"SPNameQualifier {sp_qualifier!r}")
        value = _text(nameid)
    else:
        raw = attributes.get(idp.subject_source)
        if not isinstance(raw, str):
            raise _reject(
                "invalid_signature",
                f"subject attribute {idp.subject_source!r} missing or multi-valued",
            )
        value = raw
    if not value or len(value) > _MAX_SUBJECT:
        raise _reject("invalid_signature", "empty or oversized subject")
    return value


def _open_plain(root: Any, data: bytes, certs: Sequence[x509.Certificate]) -> tuple[Any, Any, bool]:
    """The signed node of a plain (unencrypted) response: (assertion, response, response
    signed); only what the signature covers is returned."""
    doc_assertion = _structure(root)
    signed = _verify_signature(data, certs)
    # From here on, only the signed node (and what it contains) is read.
    if signed.tag == _RESPONSE:
        found = signed.findall(_ASSERTION)
        if len(found) != 1:
            raise _reject("invalid_signature", "the signed Response holds no single Assertion")
        assertion, resp, resp_signed = found[0], signed, True
    elif signed.tag == _ASSERTION:
        assertion, resp, resp_signed = signed, root, False
    else:
        raise _reject("invalid_signature", f"the signature covers {signed.tag}, not the login")
    assertion_id = assertion.get("ID")
    if not assertion_id or assertion_id != doc_assertion.get("ID"):
        raise _reject("invalid_signature", "the signed Assertion is not the document's")
    return assertion, resp, resp_signed


def verify_saml_response(
    saml_response: Any,
    in_response_to: Any,
    idp: JitIdp,
    *,
    clock_skew: float,
    now: float | None = None,
) -> VerifiedAssertion:
    """Verify a base64 ``samlp:Response`` for ``idp``; raises ``JitError`` on any failure."""
    if in_response_to is not None and (not isinstance(in_response_to, str) or not in_response_to):
        raise JitError(400, "bad_request", "in_response_to must be a non-empty string")
    if in_response_to is None and not idp.allow_idp_initiated:
        raise JitError(
            400,
            "bad_request",
            "in_response_to is required: the ID of the AuthnRequest (IdP-initiated logins "
            "are not allowed for this IdP)",
        )
    data = _decode(saml_response, idp.max_response_bytes)
    digest = response_hash(data)
    root = _parse(data)
    if root.tag != _RESPONSE:
        raise JitError(400, "bad_request", "saml_response is not a samlp:Response")
    try:
        certs = load_signing_certs("".join(idp.signing_certs))
    except ValueError as exc:  # pragma: no cover - validated by the configuration
        raise _reject("invalid_signature", f"pinned certificates unusable: {exc}") from None
    if _encrypted(root) is not None:
        assertion, resp, resp_signed = _open_encrypted(root, data, certs, idp)
        assertion_id = assertion.get("ID")
        if not assertion_id:
            raise _reject("invalid_signature", "the Assertion has no ID")
    else:
        assertion, resp, resp_signed = _open_plain(root, data, certs)
        assertion_id = assertion.get("ID")
    if assertion.get("Version") != "2.0":
        raise _reject("invalid_signature", "Assertion Version is not 2.0")
    t = time.time() if now is None else now
    _response_checks(resp, resp_signed, in_response_to, idp)
    if not _issuer_ok(assertion, idp):
        raise _reject("invalid_issuer", "Assertion Issuer differs from idp_entity_id")
    cond_noa = _conditions(assertion, idp, clock_skew, t)
    subject = assertion.find(f"{{{SAML}}}Subject")
    if subject is None:
        raise _reject("invalid_signature", "no Subject")
    conf_noa = _confirmation(subject, in_response_to, idp, clock_skew, t)
    for authn in assertion.findall(f"{{{SAML}}}AuthnStatement"):
        session_end = _instant(authn.get("SessionNotOnOrAfter"), "SessionNotOnOrAfter")
        if session_end is not None and t - clock_skew >= session_end:
            raise _reject("expired", "AuthnStatement SessionNotOnOrAfter is past")
    attributes = _attributes(assertion)
    sub = _subject_value(subject, attributes, idp)
    claims = {k: v for k, v in attributes.items() if k not in ("sub", "email", "email_verified")}
    email = attributes.get(idp.email_attribute)
    if isinstance(email, list):
        email = email[0]
    if isinstance(email, str) and email:
        claims["email"] = email
    claims["sub"] = sub
    expires = max(conf_noa, cond_noa if cond_noa is not None else conf_noa) + clock_skew
    return VerifiedAssertion(
        claims=claims,
        subject=sub,
        assertion_id=assertion_id,
        replay_key=f"saml:{assertion_id}",
        expires=expires,
        response_sha256=digest,
    )
