"""Core ``tests/test_events.py`` against the ``postgres`` backend and state store."""

from tests._core import reuse

TESTS = reuse("test_events", globals())
