"""scimd.ldif's OIDs live under one UUID-derived arc (ITU-T X.667: ``2.25.<the UUID as a
decimal integer>``), usable without registration, and slapd accepts the schema."""

from __future__ import annotations

import re
import uuid

import ldap  # type: ignore[import-untyped]
from scimd_ldap.testing import ROOT_DN, ROOT_PASSWORD, SCIMD_SCHEMA, SlapdServer

ARC_UUID = uuid.UUID("396c0211-5fa8-4924-8a92-fc6d9ca04c8d")
ARC = f"2.25.{ARC_UUID.int}"


def test_every_oid_is_under_the_uuid_arc() -> None:
    text = SCIMD_SCHEMA.read_text()
    oids = re.findall(r"olc(?:AttributeTypes|ObjectClasses): \( ([0-9.]+) ", text)
    assert oids == [f"{ARC}.1.1", f"{ARC}.1.2", f"{ARC}.1.3", f"{ARC}.2.1"]
    assert "99999" not in text
    assert ARC_UUID.int < 2**128 and ARC_UUID.version == 4


def test_slapd_serves_the_schema_under_that_arc(slapd_server: SlapdServer) -> None:
    conn = ldap.initialize(slapd_server.url)
    conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
    try:
        ((_, attrs),) = conn.search_s(
            "cn=Subschema", ldap.SCOPE_BASE, "(objectClass=*)", ["attributeTypes", "objectClasses"]
        )
    finally:
        conn.unbind_s()
    served = b"\n".join(attrs["attributeTypes"] + attrs["objectClasses"]).decode()
    for name, oid in (("scimdAttr", "1.1"), ("scimdVersion", "1.2"), ("scimdResource", "2.1")):
        assert f"( {ARC}.{oid} NAME '{name}'" in served
