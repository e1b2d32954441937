"""Core ``tests/test_events.py`` against the ``ldap`` backend on slapd."""

from tests._core import reuse

TESTS = reuse("test_events", globals())
