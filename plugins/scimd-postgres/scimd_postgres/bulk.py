"""Rows of ``scimd import`` in PostgreSQL's COPY text format, built where the CPU is.

``RowEncoder`` turns one normalised resource into its ``scimd_resources`` row and its
``scimd_attr_values`` rows (``scimd.store.sql.extract_values``, exactly what ``create``
writes) as COPY text. It is a small picklable object: ``scimd.bulk_import`` runs it in
its worker processes, next to normalisation, so the importing process only filters,
numbers and streams bytes. The primary key is not known yet when a row is encoded: every
row starts with the placeholder byte ``\\x01`` (escaped wherever it occurs in data), which
``number()`` replaces by the key taken from the sequence.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from scimd.schema.model import AttributeDef, ResourceType
from scimd.store.sql import Relations, extract_values, path_key

__all__ = ["PK", "Encoded", "RowEncoder", "copy_text", "number", "stamp"]

PK = b"\x01"
"""Placeholder of the primary key at the start of every encoded row."""

_NULL = "\\N"


def copy_text(value: str) -> str:
    """``value`` as a field of COPY's text format (and ``\\x01`` escaped)."""
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\t" in value or "\n" in value or "\r" in value or "\x01" in value:
        value = (
            value.replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            .replace("\x01", "\\x01")
        )
    return value


def stamp() -> str:
    """``meta.created``/``lastModified`` of this moment (as ``create`` writes them)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Encoded:
    """One resource ready for COPY, or the reason it cannot be stored."""

    rid: str
    error: str | None
    # (path id, indexed text, 409 message) of each value of a unique attribute
    unique: tuple[tuple[int, str, str], ...]
    resource_row: bytes
    value_rows: bytes
    resource: bytes  # the normalised resource (JSON), for the one-by-one fallback


def number(encoded: Encoded, pk: int) -> tuple[bytes, bytes]:
    """The resource row and value rows of ``encoded`` with primary key ``pk``."""
    key = b"%d" % pk
    return encoded.resource_row.replace(PK, key, 1), encoded.value_rows.replace(PK, key)


def _uniqueness_message(defn: AttributeDef, value: Any) -> str:
    name = defn.path if defn.parent is not None else defn.name
    shown = value if isinstance(value, str) else orjson.dumps(value).decode()
    return f'{name} "{shown}" is already in use'


@dataclass(frozen=True, slots=True)
class RowEncoder:
    """Encodes resources of one tenant and resource type (see the module doc).

    :param paths: ``scimd_attr_paths`` key -> id (every attribute of the schemas)."""

    tenant: str
    rtype: str
    paths: dict[str, int]

    def __call__(self, rtype: ResourceType, resource: dict[str, Any]) -> Encoded:
        now = stamp()
        rel = Relations.of(rtype)
        rid = str(uuid.uuid4())
        data = dict(resource)
        for attr in (rel.members, rel.groups):
            if attr is not None:
                data.pop(attr.name, None)
        data.pop("id", None)
        data = {"id": rid, **data}
        data["meta"] = {
            "resourceType": rtype.name,
            "created": now,
            "lastModified": now,
            "version": 'W/"1"',
        }
        raw = orjson.dumps(resource)
        doc = orjson.dumps(data)
        if b"\\u0000" in doc:
            return Encoded(
                rid, "PostgreSQL cannot store the NUL character (U+0000)", (), b"", b"", raw
            )
        display = data.get("displayName")
        shown = copy_text(display) if isinstance(display, str) else _NULL
        folded = copy_text(display.casefold()) if isinstance(display, str) else _NULL
        head = f"\t{copy_text(self.tenant)}\t{copy_text(self.rtype)}\t"
        resource_row = (
            PK + f"{head}{rid}\t1\t{shown}\t{folded}\t".encode() + copy_text(doc.decode()).encode()
        )
        lines: list[str] = []
        unique: list[tuple[int, str, str]] = []
        seen: set[tuple[int, str]] = set()
        paths = self.paths
        for n, (defn, elem, v_text, v_num, original) in enumerate(extract_values(rtype, data, rel)):
            pid = paths[path_key(defn)]
            uniq = False
            if defn.uniqueness != "none" and v_text and (pid, v_text) not in seen:
                seen.add((pid, v_text))
                unique.append((pid, v_text, _uniqueness_message(defn, original)))
                uniq = True
            text = _NULL if v_text is None else copy_text(v_text)
            num = _NULL if v_num is None else str(int(v_num) if isinstance(v_num, bool) else v_num)
            lines.append(f"\x01\t{n}{head}{pid}\t{elem}\t{text}\t{num}\t{'t' if uniq else 'f'}\n")
        return Encoded(rid, None, tuple(unique), resource_row + b"\n", "".join(lines).encode(), raw)
