"""Parse SCIM filters (RFC 7644 3.4.2.2), PATCH paths (3.5.2) and attribute paths into
the resolved ``scimd.query.ast`` tree.

Pipeline: our own tokenizer -> scim2-filter-parser's LALR grammar (``SCIMParser``) ->
conversion into ``scimd.query.ast`` with resolution against a ``ResourceType``.

Why our own tokenizer: the library's ``SCIMLexer`` only knows one-digit numbers
(``NUMBER = r"[0-9]"``), no decimals or negatives, and no escaped quotes inside strings.
The tokenizer below produces the library's token types (so its grammar is reused as is),
with JSON strings (escapes decoded) and JSON numbers, and remembers each token's offset
for error messages.

Why the conversion re-associates ``and``/``or``: the library's precedence table is
``("left", OR, AND)`` (one level), so ``a or b and c`` comes out as ``(a or b) and c``,
which violates RFC 7644 3.4.2.2 ("and" binds tighter than "or"). With equal precedence and
left associativity, an unparenthesised chain is always a left spine of ``LogExpr`` nodes
whose right operands are primaries, while a parenthesised group is a ``Filter`` wrapping a
``Filter``. The conversion flattens each unparenthesised chain into its operands and
operators and rebuilds it with the RFC's precedence. ``not`` needs no fix: RFC 7644 only
allows ``not (...)`` with parentheses, which is a primary.

Decisions (every backend follows them; ``scimd.query.evaluate`` is the reference):

* Chains of one operator (``a or b or c``) become balanced binary trees (``and``/``or`` are
  associative; balancing bounds the tree depth for long ``id eq .. or id eq ..`` lists).
  Two or three operands give the left-associative shape (``Or(Or(a, b), c)``).
* ``x eq null`` becomes ``not (x pr)`` and ``x ne null`` becomes ``x pr``; other
  operators with ``null`` are invalidFilter. Compilers never see a ``None`` value.
* An unqualified multi-valued complex attribute in a comparison (``emails co "x"``)
  addresses its ``value`` sub-attribute (RFC 7644 3.4.2.2): ``emails.value co "x"``.
  ``emails pr`` stays on ``emails`` (presence of any non-empty element).
* co/sw/ew are defined only on string-like types (string, reference). On boolean,
  integer, decimal, binary and dateTime they are invalidFilter: dateTime values are
  compared as instants (``"2011-05-13T04:42:34Z"`` equals ``"2011-05-13T06:42:34+02:00"``),
  where substring matching has no meaning; base64 substrings neither.
* gt/ge/lt/le on boolean, binary (RFC 7644 table 3) and complex are invalidFilter.
* Value types must match the attribute: strings for string/reference/binary/dateTime
  (dateTime must be an xsd:dateTime), ``true``/``false`` for boolean (the strings
  ``"true"``/``"false"`` are tolerated as a counted quirk), integers for integer, numbers for
  decimal.
* A filter naming a ``returned: never`` attribute (``password``) is 400 invalidFilter:
  scimd does not let a filter probe values it never returns. (We answer invalidFilter
  rather than ``sensitive``: the problem is the attribute, not personal data in the URI,
  and every client handles invalidFilter.) The detail never repeats the value.
* An unqualified name that is neither a common nor a core attribute is looked up in the
  resource type's extensions (Entra sends ``manager eq "..."``); it resolves when exactly
  one extension defines it (counted as a quirk), otherwise it is unknown.
* Attribute names in canonical case; ``uri`` is the schema URN (``None`` for the common
  attributes id/externalId/meta/schemas); ``extension`` tells whether the value lives under
  ``resource[uri]``.

Limits: a filter longer than ``MAX_FILTER_LENGTH`` characters or nested deeper than
``MAX_NESTING`` parentheses/brackets is invalidFilter (never a RecursionError).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from scim2_filter_parser import ast as lib_ast
from scim2_filter_parser.parser import SCIMParser, SCIMParserError

from scimd import quirks
from scimd.errors import BadRequest, InvalidFilter, InvalidPath, InvalidValue
from scimd.query.ast import (
    And,
    AttrPath,
    CompareOp,
    Comparison,
    Filter,
    Not,
    Or,
    PatchPath,
    Present,
    Value,
    ValuePath,
)
from scimd.query.evaluate import parse_datetime
from scimd.schema.model import COMMON_SCHEMA, AttributeDef, ResourceType, SchemaDef

__all__ = [
    "MAX_FILTER_LENGTH",
    "MAX_NESTING",
    "format_filter",
    "parse_attr_path",
    "parse_filter",
    "parse_path",
]

MAX_FILTER_LENGTH = 10_000
"""Longest filter (characters) scimd parses."""
MAX_NESTING = 32
"""Deepest nesting of parentheses and brackets scimd parses."""
MAX_PATH_LENGTH = 2_000
"""Longest PATCH path / attribute path."""

# --------------------------------------------------------------------------- tokenizer

_WS = re.compile(r"[ \t\r\n]+")
# JSON string: no raw quote or backslash except as escapes. Control characters are
# tolerated (URL-decoding can produce them); json.loads(strict=False) decodes them.
_STRING = re.compile(r'"(?:[^"\\]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')
_STRING_START = re.compile(r'"(?:[^"\\]|\\.)*')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_.$-])")
# ``[URI ":"] ATTRNAME`` where URI is a URN/URI: scheme, then a run of name characters,
# colons and dots; the last colon separates the URI from the attribute name.
_URI_ATTR = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9:._$-]*[A-Za-z0-9_$-]")
_NAME = re.compile(r"[A-Za-z$_][A-Za-z0-9_$-]*")
_ATTRNAME = re.compile(r"[A-Za-z$_][A-Za-z0-9_$-]*\Z")
_SUBATTR = re.compile(r"\.([A-Za-z$_][A-Za-z0-9_$-]*)")

_KEYWORDS = {
    "eq": "EQ",
    "ne": "NE",
    "co": "CO",
    "sw": "SW",
    "ew": "EW",
    "gt": "GT",
    "ge": "GE",
    "lt": "LT",
    "le": "LE",
    "pr": "PR",
    "and": "AND",
    "or": "OR",
    "not": "NOT",
    "true": "TRUE",
    "false": "FALSE",
    "null": "NULL",
}
# One decoder for every string literal (json.loads with options builds a new one each call).
_JSON_STRING = json.JSONDecoder(strict=False)
_PUNCT = {"(": "LPAREN", ")": "RPAREN", "[": "LBRACKET", "]": "RBRACKET"}
_DESCRIBE = {
    "LPAREN": "'('",
    "RPAREN": "')'",
    "LBRACKET": "'['",
    "RBRACKET": "']'",
    "COMP_VALUE": "a string value",
    "NUMBER": "a number",
    "TRUE": "true",
    "FALSE": "false",
    "NULL": "null",
    "SUBATTR": "a sub-attribute",
    "SCHEMA_URI": "a schema URI",
    "ATTRNAME": "attribute name",
}


class _Name(str):
    """An attribute name token value that remembers its offset (for error details)."""

    __slots__ = ("offset",)
    offset: int


@dataclass(frozen=True, slots=True)
class _Lit:
    """A comparison value token: the decoded JSON value and its offset."""

    value: Value
    index: int


def _name(text: str, index: int) -> _Name:
    n = _Name(text)
    n.offset = index
    return n


class Token:
    """A token as sly's parser consumes it (same attributes as ``sly.lex.Token``)."""

    __slots__ = ("end", "index", "lineno", "type", "value")
    type: str
    value: Any
    lineno: int
    index: int
    end: int

    def __repr__(self) -> str:
        return f"Token({self.type}, {self.value!r}, {self.index})"


def _offset(name: object) -> int | None:
    return name.offset if isinstance(name, _Name) else None


def _tok(type_: str, value: Any, index: int, end: int) -> Token:
    t = Token()
    t.type = type_
    t.value = value
    t.lineno = 1
    t.index = index
    t.end = end
    return t


def _snippet(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _tokenize(text: str, err: type[BadRequest]) -> list[Token]:
    """Split ``text`` into the token types of scim2-filter-parser's grammar."""
    out: list[Token] = []
    depth = 0
    pos = 0
    n = len(text)
    while pos < n:
        ch = text[pos]
        m = _WS.match(text, pos)
        if m:
            pos = m.end()
            continue
        if ch in _PUNCT:
            kind = _PUNCT[ch]
            if kind in ("LPAREN", "LBRACKET"):
                depth += 1
                if depth > MAX_NESTING:
                    raise err(f"filter nested deeper than {MAX_NESTING} levels at offset {pos}")
            else:
                depth -= 1
            out.append(_tok(kind, ch, pos, pos + 1))
            pos += 1
            continue
        if ch == '"':
            m = _STRING.match(text, pos)
            if not m:
                bad = _STRING_START.match(text, pos)
                end = bad.end() if bad else pos + 1
                if end >= n:
                    raise err(f"unterminated string starting at offset {pos}")
                raise err(f"invalid escape sequence in string starting at offset {pos}")
            raw = m.group()
            try:
                decoded = _JSON_STRING.decode(raw)
                decoded.encode("utf-8")
            except (ValueError, UnicodeEncodeError):
                raise err(f"invalid string starting at offset {pos}") from None
            out.append(_tok("COMP_VALUE", _Lit(decoded, pos), pos, m.end()))
            pos = m.end()
            continue
        if ch == "-" or ch.isdigit():
            m = _NUMBER.match(text, pos)
            if not m:
                raise err(f"invalid number at offset {pos}")
            raw = m.group()
            num: int | float
            if any(c in raw for c in ".eE"):
                num = float(raw)
                if num != num or num in (float("inf"), float("-inf")):
                    raise err(f"number out of range at offset {pos}")
            else:
                if len(raw) > 30:
                    raise err(f"number out of range at offset {pos}")
                num = int(raw)
            out.append(_tok("NUMBER", _Lit(num, pos), pos, m.end()))
            pos = m.end()
            continue
        if ch == ".":
            m = _SUBATTR.match(text, pos)
            if not m:
                raise err(f"expected a sub-attribute name after '.' at offset {pos}")
            if not out or out[-1].end != pos or out[-1].type not in ("ATTRNAME", "RBRACKET"):
                raise err(f"unexpected '.' at offset {pos}")
            out.append(_tok("SUBATTR", _name(m.group(1), pos + 1), pos, m.end()))
            pos = m.end()
            continue
        m = _URI_ATTR.match(text, pos)
        if m:
            run = m.group()
            cut = run.rfind(":")
            uri, rest = run[:cut], run[cut + 1 :]
            name, _, sub = rest.partition(".")
            if not _ATTRNAME.match(name) or (sub and not _ATTRNAME.match(sub)):
                raise err(f"invalid attribute path {_snippet(run)!r} at offset {pos}")
            name_at = pos + cut + 1
            out.append(_tok("SCHEMA_URI", uri, pos, name_at))
            out.append(_tok("ATTRNAME", _name(name, name_at), name_at, name_at + len(name)))
            if sub:
                sub_at = name_at + len(name) + 1
                out.append(_tok("SUBATTR", _name(sub, sub_at), sub_at - 1, m.end()))
            pos = m.end()
            continue
        m = _NAME.match(text, pos)
        if m:
            word = m.group()
            kind = _KEYWORDS.get(word.lower(), "ATTRNAME")
            value: Any
            if kind == "TRUE":
                value = _Lit(True, pos)
            elif kind == "FALSE":
                value = _Lit(False, pos)
            elif kind == "NULL":
                value = _Lit(None, pos)
            elif kind == "ATTRNAME":
                value = _name(word, pos)
            else:
                value = word
            out.append(_tok(kind, value, pos, m.end()))
            pos = m.end()
            continue
        raise err(f"unexpected character {ch!r} at offset {pos}")
    for prev, nxt in itertools.pairwise(out):
        # ``emails.type[...]``: the grammar would fold it into the same tree as
        # ``emails[...].type``; reject it here where the two still differ.
        if prev.type == "SUBATTR" and nxt.type == "LBRACKET":
            raise err(
                f"'[' cannot follow the sub-attribute {str(prev.value)!r} at offset {nxt.index}"
            )
    return out


def _run_parser(
    tokens: list[Token], err: type[BadRequest], what: str, *, synthetic: Token | None = None
) -> Any:
    """Run the library's LALR parser; turn its failures into ``err`` with the offset.
    ``synthetic`` is a token we appended ourselves: an error there means "ends early"."""
    real = [t for t in tokens if t is not synthetic]

    def on_error(tok: Token | None) -> NoReturn:
        if tok is not None and tok is synthetic:
            opened = sum(t.type in ("LPAREN", "LBRACKET") for t in real)
            closed = sum(t.type in ("RPAREN", "RBRACKET") for t in real)
            if opened > closed:
                raise err(f"{what} ends unexpectedly")
            raise err(
                "not an attribute path (expected attr, attr.sub, attr[filter] or "
                "attr[filter].sub, optionally URN-qualified)"
            )
        if tok is None:
            if real and real[-1].type in ("ATTRNAME", "SUBATTR") and synthetic is None:
                raise err(
                    f"{what} ends unexpectedly after {str(tokens[-1].value)!r}: "
                    "an operator (and a value) must follow an attribute"
                )
            raise err(f"{what} ends unexpectedly")
        value = tok.value
        shown = _DESCRIBE.get(tok.type, repr(str(value)))
        if tok.type in ("ATTRNAME", "SCHEMA_URI"):
            shown = f"{_DESCRIBE[tok.type]} {str(value)!r}"
        elif isinstance(value, _Lit):
            shown = f"{_DESCRIBE[tok.type]} {json.dumps(value.value)[:40]}"
        elif tok.type not in _DESCRIBE:
            shown = f"{str(value)!r}"
        pos = next((i for i, t in enumerate(tokens) if t is tok), -1)
        prev = tokens[pos - 1].type if pos > 0 else None
        if tok.type == "ATTRNAME" and prev in ("ATTRNAME", "SUBATTR", "RBRACKET"):
            raise err(
                f"unknown operator {str(tok.value)!r} at offset {tok.index} of the {what} "
                "(operators: eq ne co sw ew gt ge lt le pr)"
            )
        if prev == "NOT" and tok.type != "LPAREN":
            raise err(f"'not' must be followed by '(' (offset {tok.index} of the {what})")
        raise err(f"unexpected {shown} at offset {tok.index} of the {what}")

    parser = SCIMParser()  # per call: sly parsers keep their state on the instance
    parser.error = on_error
    try:
        return parser.parse(iter(tokens))
    except SCIMParserError:
        # The grammar action for ``valuePath.sub`` followed by another sub raises this.
        raise err(f"invalid {what}") from None


# --------------------------------------------------------------------------- resolution


def _quirk(name: str) -> None:
    """Count a tolerated deviation; names not (yet) registered in ``scimd.quirks`` are
    skipped rather than turning a tolerated request into an error."""
    if name in quirks.QUIRKS:
        quirks.record(name)


@dataclass(slots=True)
class _Ctx:
    rtype: ResourceType
    err: type[BadRequest]
    what: str  # "filter", "path", ...


def _schema_of(rtype: ResourceType, defn: AttributeDef) -> tuple[str | None, bool]:
    """(uri, extension) for a top-level attribute definition."""
    if defn.schema == COMMON_SCHEMA:
        return None, False
    if defn.schema.lower() == rtype.schema.id.lower():
        return rtype.schema.id, False
    return defn.schema, True


def _find_top(
    ctx: _Ctx, uri: str | None, name: str, at: int | None
) -> tuple[AttributeDef, str | None, bool]:
    where = f" at offset {at}" if at is not None else ""
    rtype = ctx.rtype
    if uri is not None:
        schema: SchemaDef | None = rtype.schema_for_uri(uri)
        if schema is None:
            raise ctx.err(f"unknown schema {uri!r} for {rtype.name} in the {ctx.what}{where}")
        defn = schema.attr(name)
        if defn is None:
            raise ctx.err(f"unknown attribute '{uri}:{name}' in the {ctx.what}{where}")
        return defn, schema.id, schema is not rtype.schema
    found = rtype.lookup(None, name)
    if found is not None:
        u, ext = _schema_of(rtype, found)
        return found, u, ext
    hits = [(s, s.attr(name)) for s, _ in rtype.extensions.values() if s.attr(name)]
    if len(hits) == 1:
        s, d = hits[0]
        assert d is not None
        _quirk("filter_unqualified_extension_attribute")
        return d, s.id, True
    raise ctx.err(f"unknown attribute {name!r} for {rtype.name} in the {ctx.what}{where}")


def _resolve(
    ctx: _Ctx,
    uri: str | None,
    name: str,
    sub: str | None,
    *,
    at: int | None = None,
    default_value_sub: bool = False,
) -> AttrPath:
    """Resolve ``[uri:]name[.sub]`` to a canonical ``AttrPath`` with ``defn`` set."""
    defn, curi, ext = _find_top(ctx, uri, name, at)
    where = f" at offset {at}" if at is not None else ""
    if sub is not None:
        if not defn.is_complex:
            raise ctx.err(f"attribute {defn.name!r} has no sub-attribute {sub!r}{where}")
        sdef = defn.sub(sub)
        if sdef is None:
            raise ctx.err(f"unknown attribute '{defn.name}.{sub}' in the {ctx.what}{where}")
        return AttrPath(curi, defn.name, sdef.name, defn=sdef, extension=ext)
    if default_value_sub and defn.is_complex:
        # RFC 7644 3.4.2.2 for multi-valued attributes (``emails co "x"``); scimd applies
        # it to singular ones too, because Entra filters ``manager eq "<id>"``.
        vdef = defn.sub("value")
        if vdef is not None:
            return AttrPath(curi, defn.name, vdef.name, defn=vdef, extension=ext)
    return AttrPath(curi, defn.name, None, defn=defn, extension=ext)


def _resolve_inner(ctx: _Ctx, outer: AttrPath, lib_path: Any) -> AttrPath:
    """Resolve a name inside ``outer[...]``: a sub-attribute of ``outer``."""
    name = lib_path.attr_name
    if not isinstance(name, str):
        raise ctx.err(f"nested attribute filters inside '{outer.attr}[...]' are not supported")
    at = _offset(name)
    where = f" at offset {at}" if at is not None else ""
    if lib_path.uri is not None or lib_path.sub_attr is not None:
        raise ctx.err(
            f"inside '{outer.attr}[...]' name a sub-attribute of {outer.attr!r} only{where}"
        )
    assert outer.defn is not None
    sdef = outer.defn.sub(name)
    if sdef is None:
        raise ctx.err(f"unknown attribute '{outer.attr}.{name}' in the {ctx.what}{where}")
    return AttrPath(
        outer.uri,
        outer.attr,
        sdef.name,
        defn=sdef,
        in_value_path=True,
        extension=outer.extension,
    )


# --------------------------------------------------------------------------- type checks

_STRINGISH = frozenset({"string", "reference"})
_ORDERED_FORBIDDEN = frozenset({"boolean", "binary", "complex"})
_ORDERING = frozenset({"gt", "ge", "lt", "le"})
_SUBSTRING = frozenset({"co", "sw", "ew"})


def _check_sensitive(ctx: _Ctx, path: AttrPath) -> None:
    d: AttributeDef | None = path.defn
    while d is not None:
        if d.returned == "never":
            raise ctx.err(f"attribute {str(path.dotted())!r} cannot be used in a filter")
        d = d.parent


def _comparison(ctx: _Ctx, path: AttrPath, op: str, lit: _Lit) -> Filter:
    defn = path.defn
    assert defn is not None
    value = lit.value
    where = f" at offset {lit.index}"
    label = path.dotted()
    _check_sensitive(ctx, path)
    if value is None:
        if op == "eq":
            return Not(Present(path))
        if op == "ne":
            return Present(path)
        raise ctx.err(f"'{op}' cannot compare with null (use eq, ne or pr){where}")
    t = defn.type
    if t == "complex":
        example = defn.sub_order[0].name if defn.sub_order else "value"
        raise ctx.err(
            f"{label!r} is complex: compare one of its sub-attributes, e.g. '{label}.{example}'"
        )
    if op in _ORDERING and t in _ORDERED_FORBIDDEN:
        raise ctx.err(f"'{op}' is not defined for {t} attribute {label!r} (RFC 7644 3.4.2.2)")
    if op in _SUBSTRING and t not in _STRINGISH:
        raise ctx.err(f"'{op}' is only defined for string attributes; {label!r} is {t}")
    ok: bool
    if t in ("string", "reference", "binary"):
        ok = isinstance(value, str)
    elif t == "dateTime":
        ok = isinstance(value, str)
        if ok and parse_datetime(str(value)) is None:
            raise ctx.err(f"{label!r} is a dateTime; {json.dumps(value)[:60]} is not{where}")
    elif t == "boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            _quirk("boolean_as_string")
            value = value.lower() == "true"
        ok = isinstance(value, bool)
    elif t == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t == "decimal":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:  # pragma: no cover - AttrType is closed
        ok = False
    if not ok:
        shown = "a string" if isinstance(value, str) else json.dumps(value)
        raise ctx.err(f"{label!r} is {_article(t)} {t}; the filter compares it with {shown}{where}")
    return Comparison(path, _as_op(op), value)


def _article(t: str) -> str:
    return "an" if t[0] in "aeiou" else "a"


def _as_op(op: str) -> CompareOp:
    low = op.lower()
    if low not in ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"):
        raise InvalidFilter(f"unknown operator {op!r}")  # pragma: no cover - grammar
    return low  # type: ignore[return-value]


# --------------------------------------------------------------------------- conversion


def _balanced(items: list[Filter], cls: type[And] | type[Or]) -> Filter:
    if len(items) == 1:
        return items[0]
    if len(items) <= 3:  # left-associative for the common short chains
        node = cls(items[0], items[1])
        for it in items[2:]:
            node = cls(node, it)
        return node
    mid = (len(items) + 1) // 2
    return cls(_balanced(items[:mid], cls), _balanced(items[mid:], cls))


class _Converter:
    def __init__(self, ctx: _Ctx) -> None:
        self.ctx = ctx

    def filter(self, node: Any, outer: AttrPath | None) -> Filter:
        """Convert a library ``Filter`` node (or anything in filter position)."""
        if isinstance(node, lib_ast.Filter):
            if node.namespace is not None:  # a valuePath
                return self.value_path(node, outer)
            expr = node.expr
            if isinstance(expr, lib_ast.LogExpr):
                converted = self.chain(node, outer)
            else:
                converted = self.filter(expr, outer)
            return Not(converted) if node.negated else converted
        if isinstance(node, lib_ast.AttrExpr):
            return self.attr_expr(node, outer)
        if isinstance(node, lib_ast.LogExpr):  # pragma: no cover - always wrapped
            return self.chain(lib_ast.Filter(node, False, None), outer)
        raise self.ctx.err(f"invalid {self.ctx.what}")  # pragma: no cover

    def chain(self, node: Any, outer: AttrPath | None) -> Filter:
        """Flatten an unparenthesised and/or chain (left spine) and rebuild it with
        "and" binding tighter than "or"."""
        operands: list[Any] = []
        ops: list[str] = []
        cur = node
        while (
            isinstance(cur, lib_ast.Filter)
            and cur.namespace is None
            and not cur.negated
            and isinstance(cur.expr, lib_ast.LogExpr)
        ):
            log = cur.expr
            operands.append(log.expr2)
            ops.append(str(log.op).lower())
            cur = log.expr1
        operands.append(cur)
        operands.reverse()
        ops.reverse()
        groups: list[list[Filter]] = [[self.filter(operands[0], outer)]]
        for op, operand in zip(ops, operands[1:], strict=True):
            converted = self.filter(operand, outer)
            if op == "and":
                groups[-1].append(converted)
            else:
                groups.append([converted])
        return _balanced([_balanced(g, And) for g in groups], Or)

    def value_path(self, node: Any, outer: AttrPath | None) -> Filter:
        ns = node.namespace
        if outer is not None:
            raise self.ctx.err("nested attribute filters ('a[b[...]]') are not supported")
        if ns.sub_attr is not None:
            raise self.ctx.err(
                f"'{ns.attr_name}[...].{ns.sub_attr.value}' needs an operator and a value"
            )
        path = self.outer_path(ns)
        return ValuePath(path, self.filter(node.expr, path))

    def outer_path(self, ns: Any) -> AttrPath:
        """The attribute before ``[``: must be complex, without a sub-attribute."""
        name = ns.attr_name
        if not isinstance(name, str):
            raise self.ctx.err("nested attribute filters ('a[b[...]]') are not supported")
        at = _offset(name)
        path = _resolve(self.ctx, ns.uri, name, None, at=at)
        assert path.defn is not None
        if not path.defn.is_complex:
            raise self.ctx.err(
                f"'{path.attr}[...]' needs a complex attribute; {path.attr!r} is {path.defn.type}"
            )
        return path

    def attr_expr(self, node: Any, outer: AttrPath | None) -> Filter:
        op = str(node.value).lower()
        lib_path = node.attr_path
        lit: _Lit | None = node.comp_value.value if node.comp_value is not None else None
        name = lib_path.attr_name
        if isinstance(name, lib_ast.Filter):
            # ``emails[type eq "work"].value op x`` (the parser moved ``.value`` into the
            # namespace): normalise to ``emails[type eq "work" and value op x]``.
            if outer is not None:
                raise self.ctx.err("nested attribute filters ('a[b[...]]') are not supported")
            ns = name.namespace
            sub = ns.sub_attr
            if sub is None:
                raise self.ctx.err(
                    f"'{ns.attr_name}[...]' cannot be compared; name a sub-attribute after ']'"
                )
            if lib_path.sub_attr is not None:  # pragma: no cover - grammar forbids
                raise self.ctx.err("invalid attribute path")
            path = self.outer_path(lib_ast.AttrPath(ns.attr_name, None, ns.uri))
            inner = self.filter(name.expr, path)
            leaf_path = _resolve_inner(self.ctx, path, lib_ast.AttrPath(sub.value, None, None))
            leaf = self.leaf(leaf_path, op, lit)
            return ValuePath(path, And(inner, leaf))
        if outer is not None:
            path = _resolve_inner(self.ctx, outer, lib_path)
        else:
            sub = lib_path.sub_attr.value if lib_path.sub_attr is not None else None
            path = _resolve(
                self.ctx,
                lib_path.uri,
                name,
                sub,
                at=_offset(name),
                default_value_sub=op != "pr",
            )
        return self.leaf(path, op, lit)

    def leaf(self, path: AttrPath, op: str, lit: _Lit | None) -> Filter:
        if op == "pr":
            _check_sensitive(self.ctx, path)
            return Present(path)
        assert lit is not None
        return _comparison(self.ctx, path, op, lit)


_COMPARE_TYPES = frozenset({"EQ", "NE", "CO", "SW", "EW", "GT", "GE", "LT", "LE"})
_LITERAL_TYPES = frozenset({"COMP_VALUE", "NUMBER", "TRUE", "FALSE", "NULL"})


def _simple_attr_path(tokens: list[Token], i: int) -> tuple[Any, int] | None:
    """``[SCHEMA_URI] ATTRNAME [SUBATTR]`` at ``tokens[i]`` as the library's AttrPath."""
    uri = None
    if i < len(tokens) and tokens[i].type == "SCHEMA_URI":
        uri = tokens[i].value
        i += 1
    if i >= len(tokens) or tokens[i].type != "ATTRNAME":
        return None
    name = tokens[i].value
    i += 1
    sub = None
    if i < len(tokens) and tokens[i].type == "SUBATTR":
        sub = lib_ast.SubAttr(tokens[i].value)
        i += 1
    return lib_ast.AttrPath(name, sub, uri), i


def _simple_attr_expr(tokens: list[Token], i: int) -> tuple[Any, int] | None:
    """``attrPath op value`` or ``attrPath pr`` at ``tokens[i]`` as the library's AttrExpr."""
    found = _simple_attr_path(tokens, i)
    if found is None or found[1] >= len(tokens):
        return None
    path, i = found
    op = tokens[i]
    if op.type == "PR":
        return lib_ast.AttrExpr(op.value, path, None), i + 1
    if op.type not in _COMPARE_TYPES or i + 1 >= len(tokens):
        return None
    lit = tokens[i + 1]
    if lit.type not in _LITERAL_TYPES:
        return None
    return lib_ast.AttrExpr(op.value, path, lib_ast.CompValue(lit.value)), i + 2


def _fast_tree(tokens: list[Token]) -> Any | None:
    """The library's tree for the two shapes identity providers send on almost every
    request, built without running the LALR parser (which costs more than the rest of a
    lookup): ``attrPath op value`` / ``attrPath pr`` and
    ``attr[attrPath op value].sub op value``. Anything else returns None and goes through
    the full parser. The tree is exactly what the grammar would build, so the conversion
    and every check after it are shared (tests/test_query_fast_path.py holds them equal).
    """
    simple = _simple_attr_expr(tokens, 0)
    if simple is not None:
        expr, end = simple
        return lib_ast.Filter(expr, False, None) if end == len(tokens) else None
    # attr "[" attrPath op value "]" SUBATTR op value
    if len(tokens) < 8 or tokens[0].type != "ATTRNAME" or tokens[1].type != "LBRACKET":
        return None
    inner = _simple_attr_expr(tokens, 2)
    if inner is None:
        return None
    expr, i = inner
    if i + 4 != len(tokens) or tokens[i].type != "RBRACKET" or tokens[i + 1].type != "SUBATTR":
        return None
    op, lit = tokens[i + 2], tokens[i + 3]
    if op.type not in _COMPARE_TYPES or lit.type not in _LITERAL_TYPES:
        return None
    value_path = lib_ast.Filter(
        lib_ast.Filter(expr, False, None),
        False,
        lib_ast.AttrPath(tokens[0].value, lib_ast.SubAttr(tokens[i + 1].value), None),
    )
    outer = lib_ast.AttrPath(value_path, None, None)
    return lib_ast.Filter(
        lib_ast.AttrExpr(op.value, outer, lib_ast.CompValue(lit.value)), False, None
    )


def _check_text(text: object, limit: int, err: type[BadRequest], what: str) -> str:
    if not isinstance(text, str):
        raise err(f"the {what} must be a string")
    if len(text) > limit:
        raise err(f"the {what} is longer than {limit} characters")
    if not text.strip():
        raise err(f"the {what} is empty")
    return text


def parse_filter(text: str, rtype: ResourceType) -> Filter:
    """Parse and resolve an RFC 7644 3.4.2.2 filter against ``rtype``.

    Raises ``InvalidFilter`` (400 invalidFilter) with a detail naming what is wrong and
    where (offset in ``text``, 0-based) for malformed filters, unknown attributes, type
    mismatches and unsupported constructs. Never raises anything else.
    """
    ctx = _Ctx(rtype, InvalidFilter, "filter")
    text = _check_text(text, MAX_FILTER_LENGTH, InvalidFilter, "filter")
    try:
        tokens = _tokenize(text, InvalidFilter)
        tree = _fast_tree(tokens)
        if tree is None:
            tree = _run_parser(tokens, InvalidFilter, "filter")
        if tree is None:  # pragma: no cover - empty input is rejected above
            raise InvalidFilter("the filter is empty")
        return _Converter(ctx).filter(tree, None)
    except (InvalidFilter, InvalidValue):
        raise
    except RecursionError:  # pragma: no cover - bounded by MAX_NESTING
        raise InvalidFilter("the filter is nested too deeply") from None
    except Exception as exc:  # user input must never produce a 500
        raise InvalidFilter(f"invalid filter ({type(exc).__name__})") from None


def parse_path(text: str, rtype: ResourceType) -> PatchPath:
    """Parse a PATCH ``path`` (RFC 7644 3.5.2: ``attrPath / valuePath [subAttr]``).

    * ``members`` -> ``PatchPath(AttrPath(core, "members"))``
    * ``name.givenName`` -> ``PatchPath(AttrPath(core, "name", "givenName"))``
    * ``emails[type eq "work"].value`` -> ``PatchPath(AttrPath(core, "emails"), <filter>,
      "value")`` where ``<filter>`` is resolved like a filter inside ``emails[...]``.
    * ``urn:...:enterprise:2.0:User:manager`` -> extension attribute (``extension=True``).
    * A whole schema extension (``urn:...:enterprise:2.0:User``) ->
      ``PatchPath(AttrPath(<urn>, "", extension=True, defn=None))``: ``attr == ""`` means
      "the extension object itself". The core schema URN alone is InvalidPath.

    Unlike filters, a multi-valued complex attribute is not widened to ``.value`` and
    ``returned: never`` attributes (``password``) are valid targets. Every problem,
    including unknown attributes and errors inside ``[...]``, is ``InvalidPath``.
    """
    text = _check_text(text, MAX_PATH_LENGTH, InvalidPath, "path")
    stripped = text.strip()
    for schema, _required in rtype.extensions.values():
        if stripped.lower() == schema.id.lower():
            return PatchPath(AttrPath(schema.id, "", None, extension=True))
    if stripped.lower() == rtype.schema.id.lower():
        raise InvalidPath(
            f"path {stripped!r} names the core schema; name an attribute (e.g. 'userName')"
        )
    ctx = _Ctx(rtype, InvalidPath, "path")
    try:
        tokens = _tokenize(stripped, InvalidPath)
        # ``PATH pr`` is a filter in the library grammar; parse that and take the path.
        end = len(stripped)
        sentinel = _tok("PR", "pr", end, end)
        tokens.append(sentinel)
        tree = _run_parser(tokens, InvalidPath, "path", synthetic=sentinel)
        expr = tree.expr if isinstance(tree, lib_ast.Filter) else None
        if not isinstance(expr, lib_ast.AttrExpr) or tree.negated or tree.namespace is not None:
            raise InvalidPath(f"{_snippet(stripped)!r} is not an attribute path")
        lib_path = expr.attr_path
        name = lib_path.attr_name
        conv = _Converter(ctx)
        if isinstance(name, lib_ast.Filter):
            ns = name.namespace
            outer = conv.outer_path(lib_ast.AttrPath(ns.attr_name, None, ns.uri))
            flt = conv.filter(name.expr, outer)
            sub: str | None = None
            if ns.sub_attr is not None:
                assert outer.defn is not None
                sdef = outer.defn.sub(ns.sub_attr.value)
                if sdef is None:
                    raise InvalidPath(f"unknown attribute '{outer.attr}.{ns.sub_attr.value}'")
                sub = sdef.name
            return PatchPath(outer, flt, sub)
        sub_name = lib_path.sub_attr.value if lib_path.sub_attr is not None else None
        path = _resolve(ctx, lib_path.uri, name, sub_name, at=_offset(name))
        return PatchPath(path)
    except InvalidPath:
        raise
    except InvalidFilter as exc:  # pragma: no cover - ctx.err is InvalidPath throughout
        raise InvalidPath(exc.detail) from None
    except RecursionError:  # pragma: no cover - bounded by MAX_NESTING
        raise InvalidPath("the path is nested too deeply") from None
    except Exception as exc:
        raise InvalidPath(f"invalid path ({type(exc).__name__})") from None


def parse_attr_path(
    text: str,
    rtype: ResourceType,
    *,
    error: type[BadRequest] = InvalidValue,
    what: str = "sortBy",
    allow_complex: bool = False,
) -> AttrPath:
    """Parse ``[uri:]attr[.sub]`` (``sortBy``, attribute lists) against ``rtype``.

    RFC 7644 3.4.2.3 leaves an unknown ``sortBy`` attribute to the service provider;
    scimd answers 400 ``invalidValue`` (``error``) naming the attribute, rather than
    silently ignoring the sort, so that a client never pages through an order it did not
    ask for. A multi-valued complex attribute without a sub-attribute addresses its
    ``value`` (``emails`` -> ``emails.value``, which sorts by the primary email). Other
    complex attributes need a sub-attribute unless ``allow_complex``.
    """
    text = _check_text(text, MAX_PATH_LENGTH, error, what)
    ctx = _Ctx(rtype, error, what)
    try:
        tokens = _tokenize(text.strip(), error)
        kinds = [t.type for t in tokens]
        uri: str | None = None
        if kinds and kinds[0] == "SCHEMA_URI":
            uri = str(tokens[0].value)
            tokens, kinds = tokens[1:], kinds[1:]
        if kinds not in (["ATTRNAME"], ["ATTRNAME", "SUBATTR"]):
            raise error(f"{_snippet(text)!r} is not an attribute path")
        sub = str(tokens[1].value) if len(tokens) == 2 else None
        path = _resolve(ctx, uri, str(tokens[0].value), sub, default_value_sub=not allow_complex)
        assert path.defn is not None
        if path.defn.is_complex and not allow_complex:
            raise error(f"{what}: {path.attr!r} is complex; name one of its sub-attributes")
        return path
    except BadRequest:
        raise
    except Exception as exc:  # pragma: no cover - defensive
        raise error(f"invalid {what} ({type(exc).__name__})") from None


# --------------------------------------------------------------------------- formatting


def _fmt_value(v: Value) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return json.dumps(v)
    return json.dumps(v, ensure_ascii=False)


def _fmt_path(p: AttrPath) -> str:
    if p.in_value_path:
        return p.sub or p.attr
    # Core and common attributes resolve unqualified; extensions need their URN.
    return str(p) if p.extension else p.dotted()


def format_filter(f: Filter) -> str:
    """Render an AST as filter text that ``parse_filter`` reads back into the same tree
    (used for logs, ``explain`` and round-trip tests)."""
    if isinstance(f, Comparison):
        return f"{_fmt_path(f.path)} {f.op} {_fmt_value(f.value)}"
    if isinstance(f, Present):
        return f"{_fmt_path(f.path)} pr"
    if isinstance(f, Not):
        return f"not ({format_filter(f.expr)})"
    if isinstance(f, ValuePath):
        return f"{_fmt_path(f.path)}[{format_filter(f.filter)}]"
    if isinstance(f, And):
        return f"{_fmt_child(f.left, And)} and {_fmt_child(f.right, And)}"
    return f"{_fmt_child(f.left, Or)} or {_fmt_child(f.right, Or)}"


def _fmt_child(f: Filter, parent: type[And] | type[Or]) -> str:
    text = format_filter(f)
    # An ``and`` under an ``or`` needs no parentheses (precedence); every other binary
    # child does, so the reparsed tree has exactly this shape.
    if isinstance(f, And | Or) and not (parent is Or and isinstance(f, And)):
        return f"({text})"
    return text
