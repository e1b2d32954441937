"""The ``scim-upstream`` backend as a scimd plugin (entry point ``http`` in group ``scimd``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from scimd.backend import Backend, BackendEnv, BackendFactory
from scimd.hookspecs import hookimpl
from scimd_http.upstream import CONSERVATIVE

if TYPE_CHECKING:
    from scimd.config import SettingSpec

__all__ = ["RestFactory", "ScimUpstreamFactory", "scimd_backends", "scimd_setting_declarations"]

SECTION = "storage.scim-upstream"
REST_SECTION = "storage.rest"


class ScimUpstreamFactory:
    """Builds the ``scim-upstream`` backend (a provisioning gateway to another SCIM service)."""

    name = "scim-upstream"
    description = (
        "Another SCIM 2.0 service as the store (scimd as a provisioning gateway); "
        "capabilities are read from the upstream's /ServiceProviderConfig at start; "
        "options: url, token or token_url/client_id/client_secret, tenant, timeout, retries"
    )
    capabilities = CONSERVATIVE

    def __call__(self, env: BackendEnv) -> Backend:
        from scimd_http.upstream import ScimUpstreamBackend

        return ScimUpstreamBackend(env)


class RestFactory:
    """Builds the ``rest`` backend (a non-SCIM REST API described in a mapping file)."""

    name = "rest"
    description = (
        "A non-SCIM SaaS REST API as the store, described in a mapping file (endpoints, "
        "field mapping, filters, pagination, errors); options: url, mapping, token, tenant"
    )

    def __call__(self, env: BackendEnv) -> Backend:
        from scimd_http.rest import RestBackend

        return RestBackend(env)


@hookimpl
def scimd_backends() -> list[BackendFactory]:
    """The SCIM upstream backend and the declarative REST backend."""
    return [ScimUpstreamFactory(), RestFactory()]


@hookimpl
def scimd_setting_declarations() -> list[SettingSpec]:
    """The ``[storage.scim-upstream]`` and ``[storage.rest]`` options."""
    from scimd.config import SettingSpec

    return [
        SettingSpec(
            SECTION,
            "url",
            "str",
            "",
            "Base URL of the upstream SCIM service (e.g. https://idm.example.com/scim/v2).",
        ),
        *_client_specs(SECTION),
        *_rest_specs(),
    ]


def _check_mapping(value: Any) -> str | None:
    from scimd_http.rest_mapping import MappingError, load_mapping

    if not value:
        return None
    try:
        load_mapping(Path(value))
    except MappingError as exc:
        return str(exc)
    return None


def _rest_specs() -> list[SettingSpec]:
    from scimd.config import SettingSpec

    return [
        SettingSpec(
            REST_SECTION,
            "url",
            "str",
            "",
            "Base URL of the API (scheme, host and any prefix; endpoint paths are appended).",
        ),
        SettingSpec(
            REST_SECTION,
            "mapping",
            "path",
            "",
            "The mapping file describing the API (see conf/rest/members-api.toml).",
            check=_check_mapping,
        ),
        *_client_specs(REST_SECTION),
    ]


def _client_specs(section: str) -> list[SettingSpec]:
    """Credentials and resilience options shared by both HTTP backends."""
    from scimd.config import SettingSpec

    return [
        SettingSpec(
            section,
            "token",
            "str",
            "",
            'Static bearer token for the upstream; give it as { "$env" = "NAME" }.',
            secret=True,
        ),
        SettingSpec(
            section,
            "token_url",
            "str",
            "",
            "OAuth2 token endpoint: when set, scimd gets access tokens with the client "
            "credentials grant (client_id/client_secret) instead of using `token`.",
        ),
        SettingSpec(section, "client_id", "str", "", "OAuth2 client id."),
        SettingSpec(section, "client_secret", "str", "", "OAuth2 client secret.", secret=True),
        SettingSpec(section, "scope", "str", "", "OAuth2 scope to request (optional)."),
        SettingSpec(
            section,
            "tenant",
            "str",
            "default",
            "The one scimd tenant this backend serves; requests of other tenants get 403.",
        ),
        SettingSpec(
            section,
            "timeout",
            "duration",
            30.0,
            "Longest one upstream call may take.",
            minimum=0.001,
        ),
        SettingSpec(
            section,
            "connect_timeout",
            "duration",
            5.0,
            "Longest a connection may take.",
            minimum=0.001,
        ),
        SettingSpec(
            section,
            "retries",
            "int",
            3,
            "Retries of an idempotent call on 429/502/503/504 or a connection error "
            "(never of a create).",
            minimum=0,
        ),
        SettingSpec(
            section,
            "backoff_base",
            "duration",
            0.2,
            "First retry delay bound; doubles each retry (full jitter).",
            minimum=0,
        ),
        SettingSpec(
            section, "backoff_max", "duration", 5.0, "Largest retry delay bound.", minimum=0
        ),
        SettingSpec(
            section,
            "max_retry_after",
            "duration",
            30.0,
            "Longest upstream Retry-After waited for; a longer one is passed to the client.",
            minimum=0,
        ),
        SettingSpec(
            section,
            "breaker_threshold",
            "int",
            5,
            "Consecutive upstream failures that open the circuit breaker.",
            minimum=1,
        ),
        SettingSpec(
            section,
            "breaker_reset",
            "duration",
            30.0,
            "How long the open breaker answers 503 before one probe call.",
            minimum=0.001,
        ),
        SettingSpec(
            section,
            "max_concurrency",
            "int",
            16,
            "Most upstream calls in flight per tenant.",
            minimum=1,
        ),
        SettingSpec(section, "verify_tls", "bool", True, "Verify the upstream's TLS certificate."),
    ]
