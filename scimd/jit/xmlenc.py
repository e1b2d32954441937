"""Decryption of a SAML ``EncryptedAssertion`` (XML Encryption 1.1) with ``cryptography``.

Only what SAML IdPs use, and only the safe part of it:

* key transport: RSA-OAEP (``xmlenc#rsa-oaep-mgf1p``, or ``xmlenc11#rsa-oaep`` with MGF1
  SHA-1 or SHA-256; OAEP digest SHA-1, SHA-256 or SHA-512) with the SP's private key.
  RSA PKCS#1 v1.5 (``xmlenc#rsa-1_5``) is refused (Bleichenbacher's padding oracle), as is
  any other algorithm: ``unsupported_algorithm``;
* content: AES-128/256-GCM (``xmlenc11#aes*-gcm``) or AES-128/256-CBC (``xmlenc#aes*-cbc``);
* the ``EncryptedKey`` inside ``EncryptedData/ds:KeyInfo`` or beside ``EncryptedData`` in
  the ``EncryptedAssertion``; ``CipherReference`` (fetching) is never followed.

Every failure to decrypt (wrong key, tampered ciphertext or GCM tag, bad padding) is the
same ``invalid_signature`` rejection for the caller; the detail goes to the audit log
only. The plaintext is returned as bytes and must then pass the very same parsing and
signature checks as a plain assertion (``scimd.jit.saml``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from scimd.jit.errors import JitError

__all__ = ["XENC", "XENC11", "decrypt_assertion", "load_decryption_keys"]

XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
_DS = "http://www.w3.org/2000/09/xmldsig#"

_CONTENT = {
    f"{XENC11}aes128-gcm": ("gcm", 16),
    f"{XENC11}aes256-gcm": ("gcm", 32),
    f"{XENC}aes128-cbc": ("cbc", 16),
    f"{XENC}aes256-cbc": ("cbc", 32),
}
_OAEP_MGF1P = f"{XENC}rsa-oaep-mgf1p"
_OAEP_11 = f"{XENC11}rsa-oaep"
_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    f"{_DS}sha1": hashes.SHA1,
    f"{XENC}sha256": hashes.SHA256,
    f"{XENC}sha512": hashes.SHA512,
}
_MGFS: dict[str, type[hashes.HashAlgorithm]] = {
    f"{XENC11}mgf1sha1": hashes.SHA1,
    f"{XENC11}mgf1sha256": hashes.SHA256,
}
_MAX_KEYS = 4


def _reject(reason: str, internal: str) -> JitError:
    return JitError(422, reason, "The identity assertion was rejected", internal=internal)


def load_decryption_keys(pems: Sequence[str]) -> tuple[rsa.RSAPrivateKey, ...]:
    """RSA private keys from PEM texts (unencrypted PKCS#8 or PKCS#1); ValueError naming
    the problem, never the key."""
    keys: list[rsa.RSAPrivateKey] = []
    for pem in pems:
        try:
            key = load_pem_private_key(pem.encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError("not an unencrypted PEM private key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the decryption key must be an RSA private key")
        if key.key_size < 2048:
            raise ValueError("the decryption key must have at least 2048 bits")
        keys.append(key)
    return tuple(keys)


def _b64(node: Any, what: str) -> bytes:
    if node is None:
        raise _reject("invalid_signature", f"no {what}")
    try:
        return base64.b64decode("".join("".join(node.itertext()).split()), validate=True)
    except (binascii.Error, ValueError):
        raise _reject("invalid_signature", f"{what} is not base64") from None


def _cipher_value(parent: Any, what: str) -> bytes:
    data = parent.find(f"{{{XENC}}}CipherData")
    if data is not None and data.find(f"{{{XENC}}}CipherReference") is not None:
        raise _reject("unsupported_algorithm", f"{what}: CipherReference is not supported")
    value = None if data is None else data.find(f"{{{XENC}}}CipherValue")
    return _b64(value, f"{what} CipherValue")


def _oaep(method: Any) -> padding.OAEP:
    alg = method.get("Algorithm", "") if method is not None else ""
    if alg not in (_OAEP_MGF1P, _OAEP_11):
        raise _reject("unsupported_algorithm", f"key transport {alg!r} (only RSA-OAEP)")
    digest_node = method.find(f"{{{_DS}}}DigestMethod")
    digest_alg = f"{_DS}sha1" if digest_node is None else digest_node.get("Algorithm", "")
    digest = _DIGESTS.get(digest_alg)
    if digest is None:
        raise _reject("unsupported_algorithm", f"OAEP digest {digest_alg!r}")
    mgf: type[hashes.HashAlgorithm] = hashes.SHA1
    if alg == _OAEP_11:
        mgf_node = method.find(f"{{{XENC11}}}MGF")
        mgf_alg = f"{XENC11}mgf1sha1" if mgf_node is None else mgf_node.get("Algorithm", "")
        found = _MGFS.get(mgf_alg)
        if found is None:
            raise _reject("unsupported_algorithm", f"OAEP mask generation {mgf_alg!r}")
        mgf = found
    params = method.find(f"{{{XENC}}}OAEPparams")
    label = _b64(params, "OAEPparams") if params is not None else None
    return padding.OAEP(mgf=padding.MGF1(mgf()), algorithm=digest(), label=label or None)


def _content_key(encrypted: Any, data: Any, keys: Sequence[rsa.RSAPrivateKey], size: int) -> bytes:
    found = list(data.iterfind(f"{{{_DS}}}KeyInfo/{{{XENC}}}EncryptedKey"))
    found += list(encrypted.iterfind(f"{{{XENC}}}EncryptedKey"))
    if not found:
        raise _reject("invalid_signature", "no EncryptedKey for the assertion")
    if len(found) > _MAX_KEYS:
        raise _reject("invalid_signature", f"more than {_MAX_KEYS} EncryptedKeys")
    # Check every algorithm first: an RSA 1.5 key next to an OAEP one is refused outright.
    wrapped = [(_oaep(ek.find(f"{{{XENC}}}EncryptionMethod")), ek) for ek in found]
    for pad, ek in wrapped:
        ciphertext = _cipher_value(ek, "EncryptedKey")
        for key in keys:
            try:
                cek = key.decrypt(ciphertext, pad)
            except ValueError:
                continue
            if len(cek) != size:
                raise _reject("invalid_signature", "the content key has the wrong size")
            return cek
    raise _reject("invalid_signature", "the content key is not encrypted for our key")


def decrypt_assertion(encrypted: Any, keys: Sequence[rsa.RSAPrivateKey]) -> bytes:
    """The plaintext of a ``saml:EncryptedAssertion`` element; raises ``JitError``."""
    datas = encrypted.findall(f"{{{XENC}}}EncryptedData")
    if len(datas) != 1:
        raise _reject("invalid_signature", f"expected one EncryptedData, found {len(datas)}")
    data = datas[0]
    kind = data.get("Type")
    if kind is not None and kind != f"{XENC}Element":
        raise _reject("invalid_signature", f"EncryptedData Type {kind!r}")
    method = data.find(f"{{{XENC}}}EncryptionMethod")
    alg = "" if method is None else method.get("Algorithm", "")
    if alg not in _CONTENT:
        raise _reject("unsupported_algorithm", f"content encryption {alg!r}")
    mode, size = _CONTENT[alg]
    cek = _content_key(encrypted, data, keys, size)
    blob = _cipher_value(data, "EncryptedData")
    if mode == "gcm":
        if len(blob) < 12 + 16:
            raise _reject("invalid_signature", "GCM ciphertext too short")
        try:
            return AESGCM(cek).decrypt(blob[:12], blob[12:], None)
        except InvalidTag:
            raise _reject("invalid_signature", "GCM authentication tag mismatch") from None
    if len(blob) < 32 or len(blob) % 16:
        raise _reject("invalid_signature", "CBC ciphertext of a wrong length")
    decryptor = Cipher(algorithms.AES(cek), modes.CBC(blob[:16])).decryptor()
    plain = decryptor.update(blob[16:]) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= 16:
        raise _reject("invalid_signature", "CBC padding is invalid")
    return plain[:-pad]
