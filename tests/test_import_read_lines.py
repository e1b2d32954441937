"""``scimd import`` hands JSON lines that cannot be a Group to its worker processes
unparsed (``read_lines(raw=True)``), so that each line is parsed once, in a worker, instead
of parsed here and pickled there. A line the importer would treat as a Group is never
passed on raw, however its JSON spells the Group URN; line numbers and per-line errors are
the same either way (a line that is not UTF-8 is one bad line, not the end of the load)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from scimd.bulk_import import _is_group, _prepare_with, parse_line, read_lines
from scimd.schema.loader import builtin_registry

GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"


def _spelt(text: str, escaped: list[bool]) -> str:
    """``text`` as a JSON string with the characters chosen by ``escaped`` as ``\\u``
    escapes (four hex digits each)."""
    return "".join(
        f"\\u{ord(ch):04x}" if esc else json.dumps(ch)[1:-1]
        for ch, esc in zip(text, escaped + [False] * len(text), strict=False)
    )


@settings(max_examples=200, deadline=None)
@given(
    escaped=st.lists(st.booleans(), max_size=len(GROUP_URN)),
    urn=st.sampled_from([GROUP_URN, USER_URN, GROUP_URN.upper(), GROUP_URN + " "]),
)
def test_a_group_is_never_passed_on_raw(
    tmp_path_factory: Any, escaped: list[bool], urn: str
) -> None:
    path = tmp_path_factory.mktemp("lines") / "one.jsonl"
    path.write_bytes(b'{"schemas": ["' + _spelt(urn, escaped).encode() + b'"], "x": 1}\n')
    ((number, body),) = list(read_lines(path, raw=True))
    assert number == 1
    parsed = parse_line(body) if isinstance(body, bytes) else body
    assert parsed == {"schemas": [urn], "x": 1}
    if _is_group(parsed):
        assert not isinstance(body, bytes)
    assert isinstance(body, bytes) == (not any(escaped) and "Group" not in urn)


def test_line_numbers_and_errors_are_the_same_raw_or_parsed_here(tmp_path: Path) -> None:
    user = orjson.dumps({"schemas": [USER_URN], "userName": "a"})
    group = orjson.dumps({"schemas": [GROUP_URN], "displayName": "g"})
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        user + b"\r\n"  # 1
        b"\n"  # 2: blank
        b"{not json\r"  # 3 (an old Mac line end)
        + user
        + b"\n"  # 4
        + group
        + b"\n"  # 5
        b"   \n"  # 6: blank
        b'{"userName": "\xff\xfe"}\n'  # 7: not UTF-8
         + user  # 8: no final newline
    )
    raw = list(read_lines(path, raw=True))
    parsed = list(read_lines(path))
    assert [n for n, _ in raw] == [n for n, _ in parsed] == [1, 3, 4, 5, 7, 8]
    for (_, r), (_, p) in zip(raw, parsed, strict=True):
        got = parse_line(r) if isinstance(r, bytes) else r
        if isinstance(p, Exception):
            assert isinstance(got, ValueError) and str(got) == str(p)
            assert str(p).startswith("not JSON")
        else:
            assert got == p
    assert [type(body).__name__ for _, body in raw] == [
        "bytes",
        "bytes",
        "bytes",
        "dict",  # the Group is parsed here
        "bytes",
        "bytes",
    ]


def test_workers_parse_raw_lines_and_report_bad_ones() -> None:
    registry = builtin_registry()
    state = {"registry": registry, "unknown": "error", "encoder": None, "unique_email": True}
    good = orjson.dumps({"schemas": [USER_URN], "userName": "Alice"})
    out = _prepare_with(state, [(1, good), (2, b"{oops"), (3, b'{"userName": 5}')])
    assert out[0].error is None and out[0].resource is not None
    assert out[0].resource["userName"] == "Alice" and out[0].user_name == "alice"
    assert out[1].error is not None and out[1].error.startswith("not JSON")
    assert out[2].error is not None and "userName" in out[2].error
