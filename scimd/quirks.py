"""Tolerated client deviations from RFC 7643/7644, each one named, documented and counted.

scimd is strict about what it stores and returns and tolerant about what it accepts where
the big identity providers deviate from the RFCs (see ``docs``/INTEROP). Every tolerance
has a name in :data:`QUIRKS`; the code that tolerates it calls :func:`record` with that
name, so operators can see which clients deviate (``scimd_quirk_total{quirk="..."}``).

:func:`record` refuses unregistered names: a new tolerance must be added (and described)
here first, which keeps this table the complete list.

Counters are per process, in memory (safe to lose: they are metrics, not state).
"""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["QUIRKS", "record", "reset", "snapshot"]

#: Registered quirk name -> one-line description of the tolerated deviation and its senders.
#: Treat as read-only.
QUIRKS: dict[str, str] = {
    # --- resources (scimd.schema.validate)
    "attribute_name_case": (
        "Attribute name not in the schema's canonical case (`UserName`, `Manager.Value`); "
        "RFC 7643 2.1 makes names case-insensitive. Entra ID, Okta."
    ),
    "boolean_as_string": (
        'Boolean sent as a JSON string ("true", "False"). Entra ID (`active`, `primary`).'
    ),
    "null_value": (
        'Attribute sent as JSON null (`"addresses": null`), taken as absent. Entra ID, Okta.'
    ),
    "single_value_for_multi_valued": (
        "A single value (object or scalar) where the schema says multi-valued; wrapped in a "
        "list. Various clients."
    ),
    "single_element_list_for_single_valued": (
        "A one-element list where the schema says single-valued (enterprise `manager` as "
        "`[{...}]`); unwrapped. Entra ID, custom scripts."
    ),
    "unknown_schema_urn": (
        "Unknown or misspelled schema URN in `schemas` or as a top-level key "
        "(`http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group`, "
        "`urn:...:enterprise:2.0User`); ignored. Entra ID, MIM."
    ),
    "missing_schemas": (
        "Resource body without `schemas`; the resource type's schemas are assumed. "
        "Hand-written clients, scripts."
    ),
    "readonly_attribute_ignored": (
        "A non-empty readOnly attribute (other than id/meta) in a create/replace body, "
        "e.g. `groups` on a User; ignored per RFC 7644 3.5.1. Okta, Entra ID."
    ),
    # --- PATCH (scimd.patch)
    "patch_op_case": 'PATCH `op` not lower-case ("Add", "Replace", "Remove"). Entra ID.',
    "patch_no_path_dotted_keys": (
        "No-path add/replace whose value has dotted (`name.givenName`) or URN-qualified "
        "attribute keys. Entra ID."
    ),
    "patch_readonly_id_equal": (
        "No-path replace that includes the readOnly `id`, equal to the resource id. "
        "Okta (group rename)."
    ),
    "patch_filtered_add_creates": (
        'add to a filtered path (`emails[type eq "work"].value`) with no matching element '
        "creates the element. Entra ID."
    ),
    "patch_filtered_replace_creates": (
        'replace of a filtered path (`emails[type eq "work"].value`) with no matching element '
        "creates the element instead of 400 noTarget (RFC 7644 3.5.2.3). Entra ID."
    ),
    "patch_members_remove_by_value": (
        "remove on `members` with a `value` list instead of a filter path: only the listed "
        "members are removed. Entra ID, Okta."
    ),
    "patch_value_json_text": (
        "Complex value serialised as JSON text inside `value` (`roles`). Entra ID."
    ),
    "patch_manager_string": (
        'Enterprise `manager` given as a bare string id instead of `{"value": ...}`. Entra ID.'
    ),
    "patch_empty_path": ('PATCH operation with `"path": ""`, taken as no path. Various clients.'),
    "patch_extra_keys": ('Extra keys on a PATCH operation (`"name": "addMember"`), ignored. Okta.'),
    # --- filters (scimd.query)
    "filter_unqualified_extension_attribute": (
        'Filter or path naming an extension attribute without its URN (`manager eq "x"`), '
        "resolved when exactly one extension defines it. Entra ID."
    ),
    # --- transport (scimd.http)
    "no_content_type": "Request body sent without a Content-Type header. Okta test suite.",
    "lowercase_path": "Resource endpoint in another case (`/users`). Various clients.",
    "member_ref_null": 'Group member sent with `"$ref": null`. Entra ID.',
}

_counts: Counter[str] = Counter()
# aiohttp handlers run on one thread, but bulk/JIT helpers may use executors: the lock keeps
# counts exact at negligible cost (an uncontended lock per tolerated deviation).
_lock = threading.Lock()


def record(name: str) -> None:
    """Count one occurrence of the tolerated deviation ``name``.

    :raises KeyError: ``name`` is not registered in :data:`QUIRKS`.
    """
    if name not in QUIRKS:
        raise KeyError(f"unregistered quirk {name!r}: add it to scimd.quirks.QUIRKS")
    with _lock:
        _counts[name] += 1


def snapshot() -> dict[str, int]:
    """Current counts by quirk name (only quirks seen at least once)."""
    with _lock:
        return dict(_counts)


def reset() -> None:
    """Zero every counter (tests, or a metrics exporter that resets on scrape)."""
    with _lock:
        _counts.clear()
