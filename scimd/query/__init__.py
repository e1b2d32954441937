"""Filters, paths, evaluation, planning, sorting and paging (RFC 7644 3.4.2, RFC 9865).

The public API: parse user input into the resolved AST (``parse_filter``, ``parse_path``,
``parse_attr_path``), evaluate it (``matches``, ``compile_filter`` — the reference
semantics), split it between backend and core (``plan``, ``explain``), order resources
(``sort_value``, ``sort_key``) and page (``CursorCodec``, ``query_fingerprint``,
``clamp_index``).

Names are imported lazily (PEP 562): ``scimd.backend`` imports ``scimd.query.ast`` while
``scimd.query.paging`` imports ``scimd.backend``, so this package must not import its
submodules eagerly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scimd.query.evaluate import (
        canonical_datetime,
        compile_filter,
        is_present,
        matches,
        parse_datetime,
    )
    from scimd.query.paging import CursorCodec, clamp_index, query_fingerprint
    from scimd.query.parse import (
        MAX_FILTER_LENGTH,
        MAX_NESTING,
        format_filter,
        parse_attr_path,
        parse_filter,
        parse_path,
    )
    from scimd.query.planner import Plan, explain, filterable_key, plan, supports
    from scimd.query.sort import SortKey, keyset_key, sort_key, sort_value

_EXPORTS = {
    "canonical_datetime": "evaluate",
    "compile_filter": "evaluate",
    "is_present": "evaluate",
    "matches": "evaluate",
    "parse_datetime": "evaluate",
    "CursorCodec": "paging",
    "clamp_index": "paging",
    "query_fingerprint": "paging",
    "MAX_FILTER_LENGTH": "parse",
    "MAX_NESTING": "parse",
    "format_filter": "parse",
    "parse_attr_path": "parse",
    "parse_filter": "parse",
    "parse_path": "parse",
    "Plan": "planner",
    "explain": "planner",
    "filterable_key": "planner",
    "plan": "planner",
    "supports": "planner",
    "SortKey": "sort",
    "keyset_key": "sort",
    "sort_key": "sort",
    "sort_value": "sort",
}

__all__ = [
    "MAX_FILTER_LENGTH",
    "MAX_NESTING",
    "CursorCodec",
    "Plan",
    "SortKey",
    "canonical_datetime",
    "clamp_index",
    "compile_filter",
    "explain",
    "filterable_key",
    "format_filter",
    "is_present",
    "keyset_key",
    "matches",
    "parse_attr_path",
    "parse_datetime",
    "parse_filter",
    "parse_path",
    "plan",
    "query_fingerprint",
    "sort_key",
    "sort_value",
    "supports",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scimd.query' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"scimd.query.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
