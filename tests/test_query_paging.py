"""RFC 9865 cursors and RFC 7644 3.4.2.4 index paging parameters."""

from __future__ import annotations

import re

import pytest

from scimd.backend import Keyset
from scimd.errors import ExpiredCursor, InvalidCursor, InvalidValue
from scimd.query.paging import MAX_CURSOR_LENGTH, CursorCodec, clamp_index, query_fingerprint

SECRET = b"0123456789abcdef-test-secret"
NOW = 1_700_000_000.0


def fp(**over: str | None) -> str:
    args: dict[str, str | None] = {
        "tenant": "default",
        "resource_type": "User",
        "filter_text": 'userName sw "b"',
        "sort_by": "userName",
        "sort_order": "ascending",
    }
    args.update(over)
    return query_fingerprint(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "keyset",
    [
        Keyset("bjensen@example.com", "2819c223"),
        Keyset(None, "id-1", "prev"),
        Keyset(42, "id-2"),
        Keyset(2.5, "id-3"),
        Keyset(True, "id-4"),
        Keyset('élève ☃ "quoted"', "ünï-cödé"),
        Keyset("2011-05-13T04:42:34.000000Z", "x" * 200),
    ],
)
def test_round_trip(keyset: Keyset) -> None:
    codec = CursorCodec(SECRET, ttl=60)
    token = codec.encode(keyset, fp(), now=NOW)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)  # URL-safe, no padding
    assert codec.decode(token, fp(), now=NOW + 59) == keyset


def test_tampering_is_invalid_cursor() -> None:
    codec = CursorCodec(SECRET, ttl=60)
    token = codec.encode(Keyset("a", "id"), fp(), now=NOW)
    for i in range(len(token)):
        swapped = "A" if token[i] != "A" else "B"
        bad = token[:i] + swapped + token[i + 1 :]
        try:
            result = codec.decode(bad, fp(), now=NOW)
        except InvalidCursor as exc:
            assert exc.to_body()["scimType"] == "invalidCursor"
            continue
        # Changing the last base64 char may only flip unused padding bits.
        assert i == len(token) - 1 and result == Keyset("a", "id")


def test_other_secret_is_invalid() -> None:
    token = CursorCodec(SECRET, ttl=60).encode(Keyset("a", "id"), fp(), now=NOW)
    with pytest.raises(InvalidCursor):
        CursorCodec(b"another-secret-of-enough-length", ttl=60).decode(token, fp(), now=NOW)


@pytest.mark.parametrize(
    "other",
    [
        {"tenant": "acme"},
        {"resource_type": "Group"},
        {"filter_text": 'userName sw "c"'},
        {"filter_text": None},
        {"sort_by": "displayName"},
        {"sort_order": "descending"},
    ],
)
def test_cursor_of_another_query_is_invalid(other: dict[str, str | None]) -> None:
    codec = CursorCodec(SECRET, ttl=60)
    token = codec.encode(Keyset("a", "id"), fp(), now=NOW)
    with pytest.raises(InvalidCursor, match="different query"):
        codec.decode(token, fp(**other), now=NOW)


def test_fingerprint_normalisation() -> None:
    assert fp(resource_type="user", sort_by="USERNAME", sort_order="Ascending") == fp()
    assert fp(sort_order=None) == fp()
    # without sortBy the order is irrelevant
    assert fp(sort_by=None, sort_order="descending") == fp(sort_by=None, sort_order=None)
    assert fp(filter_text=' userName sw "b" ') == fp()


def test_expired() -> None:
    codec = CursorCodec(SECRET, ttl=60)
    token = codec.encode(Keyset("a", "id"), fp(), now=NOW)
    assert codec.decode(token, fp(), now=NOW + 60) == Keyset("a", "id")
    with pytest.raises(ExpiredCursor) as info:
        codec.decode(token, fp(), now=NOW + 61)
    assert info.value.to_body()["scimType"] == "expiredCursor"


def test_issued_in_the_future_is_invalid() -> None:
    codec = CursorCodec(SECRET, ttl=60)
    token = codec.encode(Keyset("a", "id"), fp(), now=NOW + 3600)
    with pytest.raises(InvalidCursor):
        codec.decode(token, fp(), now=NOW)


@pytest.mark.parametrize(
    "junk", ["", "!!!", "a", "====", "AAAA", "é", "x" * (MAX_CURSOR_LENGTH + 1), "a.b"]
)
def test_malformed(junk: str) -> None:
    with pytest.raises(InvalidCursor):
        CursorCodec(SECRET, ttl=60).decode(junk, fp(), now=NOW)


def test_codec_arguments() -> None:
    with pytest.raises(ValueError):
        CursorCodec(b"short", ttl=60)
    with pytest.raises(ValueError):
        CursorCodec(SECRET, ttl=0)


# --------------------------------------------------------------- index paging


@pytest.mark.parametrize(
    ("start", "count", "expected"),
    [
        (None, None, (1, 100)),
        ("1", "10", (1, 10)),
        (5, 20, (5, 20)),
        ("0", "10", (1, 10)),  # startIndex < 1 is interpreted as 1
        ("-7", "10", (1, 10)),
        ("3", "-1", (3, 0)),  # negative count is 0
        ("1", "0", (1, 0)),  # count=0: only totalResults
        ("1", "5000", (1, 1000)),  # capped at maxResults
        (" 2 ", "+3", (2, 3)),
        ("", "", (1, 100)),  # empty is absent
    ],
)
def test_clamp_index(
    start: str | int | None, count: str | int | None, expected: tuple[int, int]
) -> None:
    assert clamp_index(start, count, default_count=100, max_count=1000) == expected


def test_default_count_above_max_is_capped() -> None:
    assert clamp_index(None, None, default_count=5000, max_count=1000) == (1, 1000)


@pytest.mark.parametrize(
    ("start", "count"),
    [("abc", None), (None, "1.5"), ("1e3", None), (None, "ten"), ("9" * 50, None), (None, "--1")],
)
def test_clamp_index_rejects_non_integers(start: str | None, count: str | None) -> None:
    with pytest.raises(InvalidValue) as info:
        clamp_index(start, count, default_count=100, max_count=1000)
    assert info.value.status == 400
    assert info.value.to_body()["scimType"] == "invalidValue"
