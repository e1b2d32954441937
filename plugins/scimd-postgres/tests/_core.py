"""Rerun core test modules (``<repo>/tests/test_*.py``) against PostgreSQL.

``reuse("test_http_resources", globals())`` imports the core module (reachable as
``tests.test_http_resources``, see ``tests/__init__.py``) and copies its test functions,
test classes and fixtures into the calling module, where pytest collects them with this
directory's ``conftest.py``: ``scim``/``make_scim`` build the app on the ``postgres`` backend
and state store. ``skip`` names tests that check something other than storage (e.g. the
embedded store's own files) and are left out, each with the reason.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["reuse"]


def reuse(
    name: str, namespace: dict[str, Any], *, skip: Mapping[str, str] | None = None
) -> list[str]:
    """Copy the public names of core module ``name`` into ``namespace`` (not overwriting
    what is there, nor the names in ``skip``); returns the test names copied."""
    module = importlib.import_module(f"tests.{name}")
    leave = dict(skip or {})
    copied: list[str] = []
    for key, value in vars(module).items():
        if key.startswith("_") or key in namespace or key in leave:
            continue
        namespace[key] = value
        if key.startswith(("test_", "Test")):
            copied.append(key)
    if not copied:
        raise RuntimeError(f"tests.{name}: no tests found")
    return copied
