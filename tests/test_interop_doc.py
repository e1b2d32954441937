"""Meta-tests: every registered quirk is documented in docs/interop.md and exercised by a test
that reads its counter.

* docs/interop.md has exactly one table row per name in ``scimd.quirks.QUIRKS`` (and no row
  for an unregistered name), and the test its row names exists.
* That named test reads the quirk's counter (``counts_quirk("name")`` or
  ``quirks.snapshot()...["name"]`` / ``.get("name"``), so removing the tolerance, or no longer
  counting it, fails a test.
* Every quirk name recorded anywhere in ``scimd/`` is registered (a literal passed to
  ``record``/``_quirk``), so the table cannot silently miss one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from scimd import quirks

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "interop.md"
TESTS = ROOT / "tests"

_ROW = re.compile(r"^\|\s*`(?P<name>[a-z0-9_]+)`\s*\|(?P<rest>.*)\|\s*$")
_TEST_REF = re.compile(r"`(?P<file>tests/test_[a-z0-9_]+\.py)::(?P<func>test_[a-z0-9_]+)`")


def _rows() -> dict[str, list[str]]:
    """Quirk name -> the cells of its row in the "Tolerated deviations" table."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Tolerated deviations", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match:
            name = match["name"]
            assert name not in rows, f"{name} has two rows in docs/interop.md"
            rows[name] = [c.strip() for c in match["rest"].split("|")]
    return rows


def _function_source(path: Path, func: str) -> str | None:
    source = path.read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == func:
            return ast.get_source_segment(source, node)
    return None


def _reads_counter(source: str, name: str) -> bool:
    q = re.escape(name)
    return bool(
        re.search(rf'counts_quirk\(\s*"{q}"\s*\)', source)
        or (re.search(rf'(?:\.get\(|\[)\s*"{q}"', source) and "snapshot()" in source)
    )


def test_every_quirk_has_exactly_one_row() -> None:
    rows = _rows()
    assert set(rows) == set(quirks.QUIRKS), (
        f"missing rows: {sorted(set(quirks.QUIRKS) - set(rows))}; "
        f"rows for unregistered quirks: {sorted(set(rows) - set(quirks.QUIRKS))}"
    )


@pytest.mark.parametrize("name", sorted(quirks.QUIRKS))
def test_row_is_complete_and_its_test_reads_the_counter(name: str) -> None:
    cells = _rows()[name]
    assert len(cells) == 4, f"{name}: expected sends | clients | does | test, got {cells}"
    sends, clients, does, test_cell = cells
    assert sends and clients and does, f"{name}: empty cell in docs/interop.md"
    refs = list(_TEST_REF.finditer(test_cell))
    assert refs, f"{name}: no `tests/test_x.py::test_y` in its row"
    for ref in refs:
        path = ROOT / ref["file"]
        assert path.is_file(), f"{name}: {ref['file']} does not exist"
        source = _function_source(path, ref["func"])
        assert source is not None, f"{name}: {ref['file']} has no {ref['func']}"
        assert _reads_counter(source, name), (
            f"{name}: {ref['file']}::{ref['func']} does not assert on the quirk's counter"
        )


@pytest.mark.parametrize("name", sorted(quirks.QUIRKS))
def test_every_quirk_is_exercised_over_http(name: str) -> None:
    """Besides unit tests, each quirk is counted in a test against the running app."""
    http_tests = [
        p for p in TESTS.glob("test_*.py") if p.name.startswith(("test_http_", "test_idp_"))
    ]
    assert any(_reads_counter(p.read_text(encoding="utf-8"), name) for p in http_tests), (
        f"no HTTP test asserts on the counter of quirk {name}"
    )


def _literal_names(expr: ast.expr) -> set[str]:
    """``"a"`` -> {a}; ``"a" if c else "b"`` -> {a, b}; a variable -> nothing."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        return _literal_names(expr.body) | _literal_names(expr.orelse)
    return set()


def test_every_recorded_name_is_registered() -> None:
    """Literal names passed to quirks.record / _quirk / _quirk_once in scimd/ are registered."""
    used: set[str] = set()
    for path in (ROOT / "scimd").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value if isinstance(func, ast.Attribute) else None
            is_record = fname == "record" and isinstance(owner, ast.Name) and owner.id == "quirks"
            if not (is_record or fname == "_quirk"):
                continue
            used |= _literal_names(node.args[0])
    assert used, "found no quirk names in scimd/: the scan is broken"
    assert used <= set(quirks.QUIRKS), f"unregistered: {sorted(used - set(quirks.QUIRKS))}"
    # and every registered quirk is recorded somewhere (no dead rows)
    assert set(quirks.QUIRKS) <= used, f"never recorded: {sorted(set(quirks.QUIRKS) - used)}"
