"""Core ``tests/test_http_transport.py`` against the ``postgres`` backend and state store."""

from tests._core import reuse

TESTS = reuse("test_http_transport", globals())
