"""Core ``tests/test_service_password.py`` against the ``postgres`` backend and state store."""

from tests._core import reuse

TESTS = reuse("test_service_password", globals())
