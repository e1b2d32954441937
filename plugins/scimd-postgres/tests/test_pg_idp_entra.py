"""Core ``tests/test_idp_entra.py`` against the ``postgres`` backend and state store."""

from tests._core import reuse

TESTS = reuse("test_idp_entra", globals())
