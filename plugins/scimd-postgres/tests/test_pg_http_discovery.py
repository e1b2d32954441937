"""Core ``tests/test_http_discovery.py`` against the ``postgres`` backend and state store."""

from tests._core import reuse

TESTS = reuse("test_http_discovery", globals())
