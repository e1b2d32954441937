"""Core ``tests/test_http_resources.py`` against the ``ldap`` backend on slapd."""

from tests._core import reuse

TESTS = reuse(
    "test_http_resources",
    globals(),
    expect_fail={
        "test_password_never_returned_and_stored_as_argon2id": "by design the directory "
        "gets the password (userPassword) and the backend never returns it, so there is no "
        "argon2id hash to read back; test_ldap_http_setup.py checks the LDAP equivalent",
    },
)
