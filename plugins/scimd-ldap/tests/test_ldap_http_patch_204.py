"""Core ``tests/test_http_patch_204.py`` against the ``ldap`` backend on slapd."""

from tests._core import reuse

TESTS = reuse("test_http_patch_204", globals())
