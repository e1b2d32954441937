"""The ``scim-upstream`` backend as a scimd plugin (entry point ``http`` in group ``scimd``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scimd.backend import Backend, BackendEnv, BackendFactory
from scimd.hookspecs import hookimpl
from scimd_http.upstream import CONSERVATIVE

if TYPE_CHECKING:
    from scimd.config import SettingSpec

__all__ = ["ScimUpstreamFactory", "scimd_backends", "scimd_setting_declarations"]

SECTION = "storage.scim-upstream"


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


@hookimpl
def scimd_backends() -> list[BackendFactory]:
    """The SCIM upstream backend."""
    return [ScimUpstreamFactory()]


@hookimpl
def scimd_setting_declarations() -> list[SettingSpec]:
    """The ``[storage.scim-upstream]`` options."""
    from scimd.config import SettingSpec

    return [
        SettingSpec(
            SECTION,
            "url",
            "str",
            "",
            "Base URL of the upstream SCIM service (e.g. https://idm.example.com/scim/v2).",
        ),
        SettingSpec(
            SECTION,
            "token",
            "str",
            "",
            'Static bearer token for the upstream; give it as { "$env" = "NAME" }.',
            secret=True,
        ),
        SettingSpec(
            SECTION,
            "token_url",
            "str",
            "",
            "OAuth2 token endpoint: when set, scimd gets access tokens with the client "
            "credentials grant (client_id/client_secret) instead of using `token`.",
        ),
        SettingSpec(SECTION, "client_id", "str", "", "OAuth2 client id."),
        SettingSpec(SECTION, "client_secret", "str", "", "OAuth2 client secret.", secret=True),
        SettingSpec(SECTION, "scope", "str", "", "OAuth2 scope to request (optional)."),
        SettingSpec(
            SECTION,
            "tenant",
            "str",
            "default",
            "The one scimd tenant this upstream serves; requests of other tenants get 403.",
        ),
        SettingSpec(
            SECTION,
            "timeout",
            "duration",
            30.0,
            "Longest one upstream call may take.",
            minimum=0.001,
        ),
        SettingSpec(
            SECTION,
            "connect_timeout",
            "duration",
            5.0,
            "Longest a connection may take.",
            minimum=0.001,
        ),
        SettingSpec(
            SECTION,
            "retries",
            "int",
            3,
            "Retries of an idempotent call on 429/502/503/504 or a connection error "
            "(never of a create).",
            minimum=0,
        ),
        SettingSpec(
            SECTION,
            "backoff_base",
            "duration",
            0.2,
            "First retry delay bound; doubles each retry (full jitter).",
            minimum=0,
        ),
        SettingSpec(
            SECTION, "backoff_max", "duration", 5.0, "Largest retry delay bound.", minimum=0
        ),
        SettingSpec(
            SECTION,
            "max_retry_after",
            "duration",
            30.0,
            "Longest upstream Retry-After waited for; a longer one is passed to the client.",
            minimum=0,
        ),
        SettingSpec(
            SECTION,
            "breaker_threshold",
            "int",
            5,
            "Consecutive upstream failures that open the circuit breaker.",
            minimum=1,
        ),
        SettingSpec(
            SECTION,
            "breaker_reset",
            "duration",
            30.0,
            "How long the open breaker answers 503 before one probe call.",
            minimum=0.001,
        ),
        SettingSpec(
            SECTION,
            "max_concurrency",
            "int",
            16,
            "Most upstream calls in flight per tenant.",
            minimum=1,
        ),
        SettingSpec(SECTION, "verify_tls", "bool", True, "Verify the upstream's TLS certificate."),
    ]
