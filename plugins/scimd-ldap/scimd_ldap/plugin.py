"""The ``ldap`` backend as a scimd plugin (entry point ``ldap`` in group ``scimd``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scimd.backend import Backend, BackendEnv, BackendFactory
from scimd.hookspecs import hookimpl

if TYPE_CHECKING:
    from scimd.config import SettingSpec

__all__ = ["LdapFactory", "scimd_backends", "scimd_setting_declarations"]

SECTION = "storage.ldap"


class LdapFactory:
    """Builds the ``ldap`` backend (python-ldap connection pool)."""

    name = "ldap"
    description = (
        "LDAP bridge (OpenLDAP inetOrgPerson/groupOfNames; python-ldap behind an async pool); "
        "options: url, bind_dn, bind_password, base_dn, users_container, groups_container, "
        "multi_tenant, shadow, external_id_attribute, active_attribute, pool_size, timeout, "
        "page_size, max_scan, max_results, empty_member, profile, ad_username_attribute, "
        "password_attribute, allow_insecure_password, start_tls, tls_ca_file, tls_require_cert, "
        "server_side_sort, password_modify"
    )

    def __call__(self, env: BackendEnv) -> Backend:
        from scimd_ldap.backend import LdapBackend

        return LdapBackend(env)


@hookimpl
def scimd_backends() -> list[BackendFactory]:
    """The LDAP bridge backend."""
    return [LdapFactory()]


@hookimpl
def scimd_setting_declarations() -> list[SettingSpec]:
    """The ``[storage.ldap]`` options."""
    from scimd.config import SettingSpec

    def spec(key: str, kind: str, default: object, text: str, **kw: object) -> SettingSpec:
        return SettingSpec(SECTION, key, kind, default, text, **kw)  # type: ignore[arg-type]

    return [
        spec("url", "str", "", "ldap://host:389 (ldaps:// for LDAPS)."),
        spec("bind_dn", "str", "", "DN the bridge binds as."),
        spec(
            "bind_password",
            "str",
            "",
            'Password of bind_dn; a secret: give it as { "$env" = "SCIMD_LDAP_BIND_PASSWORD" }.',
            secret=True,
        ),
        spec("base_dn", "str", "", "Base DN (per-tenant ou=<tenant> below it with multi_tenant)."),
        spec("users_container", "str", "ou=people", "Users' container, relative to the base."),
        spec("groups_container", "str", "ou=groups", "Groups' container, relative to the base."),
        spec("multi_tenant", "bool", False, "One ou=<tenant> subtree per tenant."),
        spec(
            "shadow",
            "bool",
            True,
            "Keep unmapped SCIM state and the version counter in the scimdResource auxiliary "
            "class (load scimd.ldif); without it unmapped attributes are dropped and there is "
            "no ETag.",
        ),
        spec("external_id_attribute", "str", "", "LDAP attribute holding externalId (or none)."),
        spec("active_attribute", "str", "", "LDAP attribute holding active TRUE/FALSE (or none)."),
        spec("pool_size", "int", 4, "Most LDAP connections (one worker thread each).", minimum=1),
        spec("timeout", "duration", 10.0, "Network and operation timeout.", minimum=0.001),
        spec("page_size", "int", 500, "Paged results control page size.", minimum=1),
        spec(
            "max_scan",
            "int",
            10000,
            "Most entries a search may read (in-memory filter check and sort); more is 400 "
            "tooMany.",
            minimum=1,
        ),
        spec("max_results", "int", 1000, "Largest page served.", minimum=1),
        spec(
            "server_side_sort",
            "str",
            "auto",
            "Unfiltered lists: auto = sorted and paged by the directory (RFC 2891 sort + VLV "
            "by offset, exact totalResults) when the root DSE advertises both controls "
            "(OpenLDAP: the sssvlv overlay); off = always in memory over at most max_scan.",
            choices=("auto", "off"),
        ),
        spec(
            "password_modify",
            "str",
            "auto",
            "auto = set userPassword with the RFC 3062 Password Modify extended operation "
            "when advertised (the server hashes it by its policy); off = replace userPassword.",
            choices=("auto", "off"),
        ),
        spec("empty_member", "str", "", "member value standing for 'no members' (groupOfNames)."),
        spec(
            "profile",
            "str",
            "openldap",
            "Directory flavour: openldap (inetOrgPerson/groupOfNames, entryUUID) or ad "
            "(Active Directory user/group, objectGUID, userAccountControl, ranged member, "
            "unicodePwd; no shadow).",
            choices=("openldap", "ad"),
        ),
        spec(
            "ad_username_attribute",
            "str",
            "sAMAccountName",
            "With profile = ad: the attribute holding userName.",
            choices=("sAMAccountName", "userPrincipalName"),
        ),
        spec(
            "password_attribute",
            "str",
            "",
            "Where SCIM password goes (empty: userPassword, or unicodePwd with profile = ad).",
        ),
        spec(
            "allow_insecure_password",
            "bool",
            False,
            "Send passwords over an unencrypted connection (tests only; otherwise a password "
            "write without ldaps:// or start_tls is refused with 403).",
        ),
        spec("start_tls", "bool", False, "StartTLS on ldap:// connections."),
        spec(
            "tls_ca_file", "str", "", "CA certificates (PEM) verifying the server (ldaps/StartTLS)."
        ),
        spec(
            "tls_require_cert",
            "str",
            "demand",
            "Server certificate check: demand (default), hard, try, allow or never.",
            choices=("demand", "hard", "try", "allow", "never"),
        ),
    ]
