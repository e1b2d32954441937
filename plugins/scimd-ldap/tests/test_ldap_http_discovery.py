"""Core ``tests/test_http_discovery.py`` against the ``ldap`` backend on slapd."""

from tests._core import reuse

TESTS = reuse(
    "test_http_discovery",
    globals(),
    expect_fail={
        "test_service_provider_config": "the LDAP bridge declares no cursor paging "
        "(pagination.cursor is false)",
    },
)
