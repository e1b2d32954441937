"""Core ``tests/test_http_list.py`` against the ``ldap`` backend on slapd."""

from tests._core import reuse

_NO_CURSOR = "the LDAP bridge declares no cursor paging (capability cursor = False): 400"

TESTS = reuse(
    "test_http_list",
    globals(),
    expect_fail={
        "test_cursor_paging_walks_every_resource_once": _NO_CURSOR,
        "test_cursor_tampered_or_from_other_query_is_invalid": _NO_CURSOR,
        "test_configured_cursor_secret_is_shared_between_apps": _NO_CURSOR,
    },
)
