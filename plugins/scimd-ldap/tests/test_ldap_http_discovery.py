"""Core ``tests/test_http_discovery.py`` against the ``ldap`` backend on slapd."""

from tests._core import reuse

TESTS = reuse("test_http_discovery", globals())
