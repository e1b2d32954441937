"""Email normalisation (JIT.md "Email normalisation").

NFC, trim, exactly one ``@``, no control characters or inner whitespace; the domain
lower-cased and IDNA-encoded (UTS #46), without a trailing dot; the local part lower-cased
unless configured otherwise. ``+tags`` and dots are never stripped. The original is kept
for display.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import idna

__all__ = ["EmailError", "NormalizedEmail", "domain_allowed", "normalize_email"]

_MAX_LENGTH = 320


class EmailError(ValueError):
    """Not an acceptable email address (the message says why)."""


@dataclass(frozen=True, slots=True)
class NormalizedEmail:
    original: str
    """As received (NFC, trimmed), for display."""
    address: str
    """``local@domain`` normalised: the comparison and uniqueness key."""
    local: str
    domain: str
    """IDNA (ASCII) form."""


def normalize_email(raw: object, *, lowercase_local: bool = True) -> NormalizedEmail:
    if not isinstance(raw, str):
        raise EmailError("the email is not a string")
    text = unicodedata.normalize("NFC", raw).strip()
    if not text or len(text) > _MAX_LENGTH:
        raise EmailError("the email is empty or too long")
    # printable text without " " has no Cc/Cf/Zl/Zp character and no whitespace (every
    # whitespace character but " " is unprintable): the per-character check only otherwise
    if not text.isprintable() or " " in text:
        for ch in text:
            if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") or ch.isspace():
                raise EmailError("the email contains control characters or whitespace")
    if text.count("@") != 1:
        raise EmailError("the email must contain exactly one @")
    local, _, domain = text.partition("@")
    if not local or not domain:
        raise EmailError("the email needs a local part and a domain")
    if domain.endswith(".") or domain.startswith(".") or ".." in domain:
        raise EmailError("the email domain is malformed")
    ascii_domain = _ascii_domain(domain)
    if lowercase_local:
        local = local.lower()
    return NormalizedEmail(
        original=text, address=f"{local}@{ascii_domain}", local=local, domain=ascii_domain
    )


@functools.lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str:
    """The IDNA (UTS #46) form of a domain, cached: a tenant's users share a few domains,
    and IDNA processing is the costliest step of normalising an address (a bulk import
    normalises every user's)."""
    try:
        return idna.encode(domain, uts46=True).decode("ascii").lower()
    except idna.IDNAError as exc:
        raise EmailError(f"the email domain is not a valid domain name: {exc}") from None


def domain_allowed(domain: str, allowed: Sequence[str], *, subdomains: bool = False) -> bool:
    """Exact match of the normalised domain (subdomains only when enabled)."""
    for entry in allowed:
        try:
            want = idna.encode(entry, uts46=True).decode("ascii").lower()
        except idna.IDNAError:
            continue
        if domain == want or (subdomains and domain.endswith("." + want)):
            return True
    return False
