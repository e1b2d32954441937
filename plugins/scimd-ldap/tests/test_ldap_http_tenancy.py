"""Core ``tests/test_http_tenancy.py`` against the ``ldap`` backend on slapd."""

from tests._core import reuse

TESTS = reuse("test_http_tenancy", globals())
