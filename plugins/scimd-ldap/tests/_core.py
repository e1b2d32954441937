"""Rerun core test modules (``<repo>/tests/test_*.py``) against the LDAP bridge on slapd.

``reuse("test_http_resources", globals(), expect_fail={...})`` imports the core module
(reachable as ``tests.test_http_resources``, see ``tests/__init__.py``) and copies its test
functions, test classes and fixtures into the calling module, where pytest collects them
with this directory's ``conftest.py`` (``scim``/``make_scim`` build the app on the ``ldap``
backend). Tests the bridge cannot pass by design are named in ``expect_fail`` with the
reason: they still run, marked ``xfail(strict=True)``, so one that starts passing (or a
name that no longer exists) fails the run instead of hiding.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Mapping
from typing import Any

import pytest

__all__ = ["reuse"]


def _copy(fn: types.FunctionType) -> types.FunctionType:
    new = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )
    new.__dict__.update({k: (list(v) if k == "pytestmark" else v) for k, v in fn.__dict__.items()})
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__qualname__ = fn.__qualname__
    new.__doc__ = fn.__doc__
    new.__module__ = fn.__module__
    return new


def reuse(
    name: str, namespace: dict[str, Any], *, expect_fail: Mapping[str, str] | None = None
) -> list[str]:
    """Copy the public names of core module ``name`` into ``namespace`` (not overwriting
    what is there); the tests in ``expect_fail`` are marked strict xfail with their reason.
    Returns the test names copied."""
    module = importlib.import_module(f"tests.{name}")
    failing = dict(expect_fail or {})
    unknown = set(failing) - set(vars(module))
    if unknown:
        raise RuntimeError(f"tests.{name}: expect_fail names unknown tests {sorted(unknown)}")
    copied: list[str] = []
    for key, value in vars(module).items():
        if key.startswith("_") or key in namespace:
            continue
        if key in failing:
            if not isinstance(value, types.FunctionType):
                raise RuntimeError(f"tests.{name}.{key}: only functions can be expected to fail")
            value = pytest.mark.xfail(strict=True, reason=failing[key])(_copy(value))
        namespace[key] = value
        if key.startswith(("test_", "Test")):
            copied.append(key)
    if not copied:
        raise RuntimeError(f"tests.{name}: no tests found")
    return copied
