"""Core ``tests/test_http_concurrency.py`` against the ``postgres`` backend and state store."""

from tests._core import reuse

TESTS = reuse("test_http_concurrency", globals())
