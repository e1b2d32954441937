"""Core ``tests/test_http_list.py`` against the ``ldap`` backend on slapd (cursor paging
included)."""

from tests._core import reuse

TESTS = reuse("test_http_list", globals())
