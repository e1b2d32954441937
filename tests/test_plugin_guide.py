"""The plugin authoring guide is real: every code block of docs/plugins.md,
docs/testing-backends.md and the example plugin's README is an excerpt of a file the test
suites run (marked ``<!-- from: path -->``), a tree that exists (``<!-- tree: dir -->``), or
shell commands of the documented tools."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDES = (
    "docs/plugins.md",
    "docs/testing-backends.md",
    "examples/scimd-example-backend/README.md",
)
EXAMPLE = ROOT / "examples" / "scimd-example-backend"
SHELL_COMMANDS = {"pip", "python", "scimd", "twine", "cd", "pytest"}
_MARK = re.compile(r"^<!-- (from|tree): (\S+) -->$")


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    lang: str
    text: str
    mark: tuple[str, str] | None

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(doc: str) -> list[Block]:
    """The fenced code blocks of ``doc`` with the marker on the line before each."""
    lines = (ROOT / doc).read_text("utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        opening = re.match(r"^```(\w*)$", lines[i])
        if not opening:
            i += 1
            continue
        end = lines.index("```", i + 1)
        found = _MARK.match(lines[i - 1]) if i else None
        mark = (found.group(1), found.group(2)) if found else None
        text = "\n".join(lines[i + 1 : end]) + "\n"
        out.append(Block(doc, i + 1, opening.group(1), text, mark))
        i = end + 1
    return out


ALL = [b for doc in GUIDES for b in blocks(doc)]


def test_the_guides_have_code() -> None:
    assert sum(1 for b in ALL if b.doc == "docs/plugins.md") >= 10
    assert {b.lang for b in ALL} >= {"python", "toml", "yaml", "sh", "text"}


@pytest.mark.parametrize("block", ALL, ids=str)
def test_code_block_is_real(block: Block) -> None:
    assert block.lang, f"{block}: a code block needs a language"
    if block.mark is None:
        assert block.lang == "sh", f"{block}: {block.lang} block without <!-- from: path -->"
        for command in block.text.splitlines():
            word = command.split()[0] if command.split() else ""
            assert word in SHELL_COMMANDS, f"{block}: unexpected command {command!r}"
        return
    kind, path = block.mark
    target = ROOT / path
    if kind == "from":
        assert target.is_file(), f"{block}: {path} does not exist"
        assert block.text in target.read_text("utf-8"), f"{block}: not an excerpt of {path}"
        return
    assert target.is_dir(), f"{block}: {path} is not a directory"
    parents: list[str] = []  # the directory at each depth above the current line
    for entry in block.text.splitlines()[1:]:
        found = re.search(r"[\w.]", entry)
        assert found, f"{block}: empty tree line {entry!r}"
        depth = found.start() // 4  # "├── " per level
        name = entry[found.start() :].split("#")[0].strip()
        del parents[depth - 1 :]
        relative = Path(*parents, name.rstrip("/"))
        assert (target / relative).exists(), f"{block}: {relative} is not in {path}"
        if name.endswith("/"):
            parents.append(name.rstrip("/"))


@pytest.mark.parametrize("doc", GUIDES)
def test_every_linked_repository_path_exists(doc: str) -> None:
    text = (ROOT / doc).read_text("utf-8")
    for path in re.findall(
        r"`((?:examples|plugins|tests|scimd)/[\w./-]+\.(?:py|md|toml|yml))`", text
    ):
        # repository paths, or paths inside the example plugin (its README, its layout)
        assert (ROOT / path).exists() or (EXAMPLE / path).exists(), f"{doc}: no {path}"
