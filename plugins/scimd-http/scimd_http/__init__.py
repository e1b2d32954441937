"""HTTP backends for scimd. ``scim-upstream``: scimd as a provisioning gateway in front of
another SCIM 2.0 service (``scimd_http.upstream``)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
