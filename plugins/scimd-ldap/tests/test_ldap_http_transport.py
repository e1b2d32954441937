"""Core ``tests/test_http_transport.py`` against the ``ldap`` backend on slapd."""

from tests._core import reuse

TESTS = reuse("test_http_transport", globals())
