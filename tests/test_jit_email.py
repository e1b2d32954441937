"""Email normalisation (JIT.md "Email normalisation")."""

from __future__ import annotations

import pytest

from scimd.jit.email import EmailError, domain_allowed, normalize_email


def test_nfc_trim_and_lowercase() -> None:
    e = normalize_email("  Ann.Smith+Tag@Example.COM ")
    assert e.address == "ann.smith+tag@example.com"  # +tags and dots are kept
    assert e.original == "Ann.Smith+Tag@Example.COM"  # kept for display
    assert e.domain == "example.com"


def test_nfc_composes() -> None:
    decomposed = "Jose\u0301@example.com"
    assert normalize_email(decomposed).address == "jos\u00e9@example.com"


def test_idna_domain() -> None:
    e = normalize_email("ann@B\u00fccher.Example")
    assert e.domain == "xn--bcher-kva.example"
    assert e.address == "ann@xn--bcher-kva.example"


def test_local_part_case_kept_when_configured() -> None:
    assert normalize_email("Ann@EXAMPLE.com", lowercase_local=False).address == "Ann@example.com"


@pytest.mark.parametrize(
    "bad",
    [
        "a@b@example.com",
        "no-at-sign",
        "@example.com",
        "ann@",
        "ann\x00@example.com",
        "ann\u200b@example.com",
        "an n@example.com",
        "ann@example..com",
        "ann@.example.com",
        "ann@example.com.",
        "",
        None,
        42,
        "a" * 400 + "@example.com",
    ],
)
def test_rejected(bad: object) -> None:
    with pytest.raises(EmailError):
        normalize_email(bad)


def test_domain_allow_list_exact_unless_subdomains() -> None:
    assert domain_allowed("example.com", ["Example.com"])
    assert not domain_allowed("eng.example.com", ["example.com"])
    assert domain_allowed("eng.example.com", ["example.com"], subdomains=True)
    assert not domain_allowed("badexample.com", ["example.com"], subdomains=True)
    assert domain_allowed("xn--bcher-kva.example", ["b\u00fccher.example"])
