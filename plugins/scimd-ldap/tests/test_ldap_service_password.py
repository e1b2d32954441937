"""Core ``tests/test_service_password.py`` against the ``ldap`` backend on slapd."""

from tests._core import reuse

TESTS = reuse(
    "test_service_password",
    globals(),
    expect_fail={
        "test_patch_password_is_hashed": "by design the directory gets the password "
        "(userPassword over StartTLS), not an argon2id hash, and the backend never returns "
        "it; test_ldap_http_setup.py checks every PATCH form sets a password that binds",
    },
)
