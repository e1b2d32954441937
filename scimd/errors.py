"""SCIM protocol errors (RFC 7644 section 3.12).

Every failure scimd reports to a SCIM client is one of these classes. They are raised
anywhere (schema validation, filter parsing, PATCH, backends, auth) and turned into the
RFC 7644 3.12 error body in exactly one place, the error middleware in ``scimd.http``.

Hierarchy::

    ScimError                      (500, generic)
    ├── BadRequest                 400, no scimType
    │   ├── InvalidFilter          400 invalidFilter
    │   ├── TooMany                400 tooMany
    │   ├── Uniqueness             409 uniqueness   (status overridden)
    │   ├── Mutability             400 mutability
    │   ├── InvalidSyntax          400 invalidSyntax
    │   ├── InvalidPath            400 invalidPath
    │   ├── NoTarget               400 noTarget
    │   ├── InvalidValue           400 invalidValue
    │   ├── InvalidVersion         400 invalidVersion
    │   ├── Sensitive              400 sensitive
    │   ├── InvalidCursor          400 invalidCursor   (RFC 9865)
    │   └── ExpiredCursor          400 expiredCursor   (RFC 9865)
    ├── Unauthorized               401
    ├── Forbidden                  403
    ├── NotFound                   404
    ├── MethodNotAllowed           405
    ├── Conflict                   409 (no scimType)
    ├── PreconditionFailed         412 preconditionFailed (RFC 7644 3.14)
    ├── PayloadTooLarge            413 tooLarge (RFC 7644 3.7.4 uses scimType-less 413;
    │                                  scimd adds "tooLarge" as several clients expect)
    ├── UnsupportedMediaType       415
    ├── TooManyRequests            429
    ├── NotImplementedFeature      501
    └── ServiceUnavailable         503 (with Retry-After)
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BadRequest",
    "Conflict",
    "ExpiredCursor",
    "Forbidden",
    "InvalidCursor",
    "InvalidFilter",
    "InvalidPath",
    "InvalidSyntax",
    "InvalidValue",
    "InvalidVersion",
    "MethodNotAllowed",
    "Mutability",
    "NoTarget",
    "NotFound",
    "NotImplementedFeature",
    "PayloadTooLarge",
    "PreconditionFailed",
    "ScimError",
    "Sensitive",
    "ServiceUnavailable",
    "TooMany",
    "TooManyRequests",
    "Unauthorized",
    "Uniqueness",
    "UnsupportedMediaType",
]


class ScimError(Exception):
    """Base class: an error that becomes an RFC 7644 3.12 error response.

    :param detail: human-readable explanation, always sent to the client; never put
        secrets or values of ``returned: never`` attributes in it.
    """

    status: ClassVar[int] = 500
    scim_type: ClassVar[str | None] = None
    default_detail: ClassVar[str] = "Internal server error"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        self.detail = detail or self.default_detail
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.detail)

    def to_body(self) -> dict[str, object]:
        """The RFC 7644 3.12 JSON body (``status`` is a string, as the RFC's examples)."""
        body: dict[str, object] = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": str(self.status),
            "detail": self.detail,
        }
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


class BadRequest(ScimError):
    """400 without a scimType: the request is unusable for a reason the RFC does not name."""

    status = 400
    default_detail = "Bad request"


class InvalidFilter(BadRequest):
    """RFC 7644 3.12: the filter syntax is invalid or an attribute/comparison is unsupported."""

    scim_type = "invalidFilter"
    default_detail = "The specified filter syntax was invalid or the attribute is not supported"


class TooMany(BadRequest):
    """RFC 7644 3.12: the filter yields more results than the server will process."""

    scim_type = "tooMany"
    default_detail = "The filter yields too many results"


class Uniqueness(BadRequest):
    """RFC 7644 3.12: one or more unique attribute values are already in use (409)."""

    status = 409
    scim_type = "uniqueness"
    default_detail = "One or more of the attribute values are already in use or are reserved"


class Mutability(BadRequest):
    """RFC 7644 3.12: the change is incompatible with an attribute's mutability."""

    scim_type = "mutability"
    default_detail = "The attempted modification is not compatible with the attribute mutability"


class InvalidSyntax(BadRequest):
    """RFC 7644 3.12: the request body structure is invalid or does not conform to the schema."""

    scim_type = "invalidSyntax"
    default_detail = "The request body message structure was invalid"


class InvalidPath(BadRequest):
    """RFC 7644 3.12: the PATCH ``path`` is invalid or not supported."""

    scim_type = "invalidPath"
    default_detail = "The path attribute was invalid or malformed"


class NoTarget(BadRequest):
    """RFC 7644 3.12: the PATCH ``path`` did not yield an attribute or value that could be
    operated on."""

    scim_type = "noTarget"
    default_detail = "The specified path did not yield an attribute or attribute value"


class InvalidValue(BadRequest):
    """RFC 7644 3.12: a required value is missing or a value is not compatible with the
    attribute type."""

    scim_type = "invalidValue"
    default_detail = "A required value was missing, or the value specified was not compatible"


class InvalidVersion(BadRequest):
    """RFC 7644 3.12: the SCIM protocol version is not supported."""

    scim_type = "invalidVers"
    default_detail = "The specified SCIM protocol version is not supported"


class Sensitive(BadRequest):
    """RFC 7644 3.12: the request cannot be completed because of sensitive information in
    the request URI (e.g. a filter on a password)."""

    scim_type = "sensitive"
    default_detail = "The request cannot be completed due to sensitive information in the URI"


class InvalidCursor(BadRequest):
    """RFC 9865 section 4: the cursor value is invalid (unknown, malformed, or from another
    query)."""

    scim_type = "invalidCursor"
    default_detail = "The cursor value is invalid"


class ExpiredCursor(BadRequest):
    """RFC 9865 section 4: the cursor has expired."""

    scim_type = "expiredCursor"
    default_detail = "The cursor value has expired"


class Unauthorized(ScimError):
    """401: missing, malformed or unknown credentials (RFC 7644 3.12, RFC 6750 3)."""

    status = 401
    default_detail = "Authorization failure: missing or invalid bearer token"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        merged = {"WWW-Authenticate": 'Bearer realm="scimd"'}
        merged.update(headers or {})
        super().__init__(detail, headers=merged)


class Forbidden(ScimError):
    """403: authenticated but not allowed (missing scope, other tenant's resource)."""

    status = 403
    default_detail = "Operation is not permitted for this token"


class NotFound(ScimError):
    """404: the resource or endpoint does not exist (or is not visible to this tenant)."""

    status = 404
    default_detail = "Resource not found"


class MethodNotAllowed(ScimError):
    """405: the endpoint does not support the HTTP method."""

    status = 405
    default_detail = "Method not allowed"


class Conflict(ScimError):
    """409 without scimType: a conflict other than uniqueness."""

    status = 409
    default_detail = "Conflict"


class PreconditionFailed(ScimError):
    """412: the ``If-Match`` version does not match the resource (RFC 7644 3.14).

    RFC 7644 Table 9 defines no keyword for 412; scimd sends ``scimType:
    "preconditionFailed"`` so that clients can tell a version conflict from other 412s
    without parsing ``detail`` (extra keywords are allowed: scimType is OPTIONAL)."""

    status = 412
    scim_type = "preconditionFailed"
    default_detail = "Failed to update: resource changed on the server"


class PayloadTooLarge(ScimError):
    """413: the request body exceeds ``maxPayloadSize`` or bulk ``maxOperations``
    (RFC 7644 3.7.4)."""

    status = 413
    scim_type = "tooLarge"
    default_detail = "The request payload is too large"


class UnsupportedMediaType(ScimError):
    """415: the request body is not JSON."""

    status = 415
    default_detail = "Unsupported media type: send application/scim+json"


class TooManyRequests(ScimError):
    """429: rate limited; carries ``Retry-After``."""

    status = 429
    default_detail = "Too many requests"


class NotImplementedFeature(ScimError):
    """501: the operation is not supported by this service provider (RFC 7644 3.12)."""

    status = 501
    default_detail = "Not implemented"


class ServiceUnavailable(ScimError):
    """503: a backend or dependency is unavailable; carries ``Retry-After``."""

    status = 503
    default_detail = "Service temporarily unavailable"

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: int = 5,
        headers: dict[str, str] | None = None,
    ):
        merged = {"Retry-After": str(retry_after)}
        merged.update(headers or {})
        super().__init__(detail, headers=merged)
