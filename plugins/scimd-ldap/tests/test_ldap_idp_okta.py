"""Core ``tests/test_idp_okta.py`` against the ``ldap`` backend on slapd."""

from tests._core import reuse

TESTS = reuse("test_idp_okta", globals())
