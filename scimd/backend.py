"""The storage backend contract.

A backend stores SCIM resources for one or more tenants. It is provided by a plugin through
the ``scimd_backends`` hook (see ``scimd.hookspecs``) as a ``BackendFactory`` and used by the
service layer only through the ``Backend`` protocol below; per-request work never goes
through pluggy.

Rules every backend follows (the contract suite in ``scimd.testing`` checks them):

* Every call is scoped to ``ctx.tenant``: a resource of another tenant does not exist.
* Resource dicts in and out are canonical SCIM JSON (``scimd.schema.model``), already
  validated and normalised by the core. The backend assigns ``id`` and ``meta``
  (``resourceType``, ``created``, ``lastModified``, ``version``) on create, bumps
  ``meta.version`` and ``meta.lastModified`` on every change, and never stores
  ``meta.location``.
* ``meta.version`` is an opaque weak ETag string ``W/"<n>"`` from a per-resource counter.
  ``if_match`` (the raw ``If-Match`` value, may be ``*``) that does not match raises
  ``PreconditionFailed``; the check and the write happen atomically.
* Uniqueness (``uniqueness: server`` attributes, e.g. userName compared case-insensitively,
  Group displayName) is enforced by the store and raises ``Uniqueness`` naming the attribute.
* Errors are ``scimd.errors`` classes, never driver exceptions; an unreachable store raises
  ``ServiceUnavailable``.
* Group membership is never rewritten whole: member changes arrive as ``MemberChange``
  lists and touch only the named members.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from scimd.query.ast import AttrPath, Filter, PatchPath
from scimd.query.filter_cache import FilterShape

if TYPE_CHECKING:
    from scimd.schema.model import ResourceType, SchemaRegistry
    from scimd.state.base import Event

__all__ = [
    "ALL_FILTER_OPS",
    "Backend",
    "BackendEnv",
    "BackendFactory",
    "Capabilities",
    "Keyset",
    "MemberChange",
    "OpContext",
    "Outbox",
    "Page",
    "PatchOp",
    "Query",
    "SortSpec",
]

ALL_FILTER_OPS: frozenset[str] = frozenset(
    {"eq", "ne", "co", "sw", "ew", "pr", "gt", "ge", "lt", "le"}
)


@dataclass(frozen=True, slots=True)
class OpContext:
    """Who is asking, for which tenant, and what they want back."""

    tenant: str
    principal: str
    """Token id (never the token), ``jit:<caller>``, or ``system``."""
    request_id: str
    attributes: tuple[str, ...] = ()
    """The request's ``attributes`` parameter (raw, as given), if any."""
    excluded_attributes: tuple[str, ...] = ()
    """The request's ``excludedAttributes`` parameter (raw, as given), if any."""
    load_members: bool = True
    """False when the response will not contain Group ``members`` (the core computed it
    from the projection): the backend must then not read member rows at all."""
    load_groups: bool = True
    """False when the response will not contain the User's ``groups``."""
    unique_keys: frozenset[str] = frozenset()
    """Derived unique keys (``scimd.store.unique_keys``, e.g. ``"email"``) this write must
    enforce atomically: set by the service only for kinds in ``Capabilities.unique_keys``."""
    outbox: Outbox | None = None
    """The audit events of this write, to record in its own transaction: set by the
    service only when ``Capabilities.events_in_transaction``."""


@dataclass(slots=True)
class Outbox:
    """The audit events of one write, for a backend that records them in the write's own
    transaction (``Capabilities.events_in_transaction``: it shares the audit log's
    database), so that a committed write always has its event. ``build(result)`` makes
    them from what the write returns (None for a delete); the backend keeps what it
    recorded in ``recorded`` (the last attempt's, when it retried the transaction). The
    service then logs and sinks exactly those without recording them again, or builds
    and records them itself when none were recorded."""

    build: Callable[[Mapping[str, Any] | None], Sequence[Event]]
    recorded: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can evaluate itself. Drives the planner, /ServiceProviderConfig and
    which contract tests run."""

    filter_ops: frozenset[str] = ALL_FILTER_OPS
    logic: frozenset[str] = frozenset({"and", "or", "not"})
    value_path: bool = True
    filterable: frozenset[str] | None = None
    """Lower-cased dotted attribute paths (``username``, ``emails.value``, with the URN for
    extensions) the backend can filter on; ``None`` means every attribute."""
    sort: bool = True
    cursor: bool = True
    index_paging: bool = True
    native_patch: bool = True
    transactions: bool = True
    etag: bool = True
    max_results: int = 1000
    """Largest page the backend serves (``filter.maxResults``)."""
    multi_tenant: bool = True
    unique_keys: frozenset[str] = frozenset()
    """Derived unique keys (``scimd.store.unique_keys``) the backend maintains and, when a
    write's ``OpContext.unique_keys`` asks, enforces in the write's own transaction (409
    ``uniqueness``); the service then skips its in-process check for them."""
    events_in_transaction: bool = False
    """The backend records a write's audit events (``OpContext.outbox``) in the write's
    own transaction (it shares the state store's database)."""


@dataclass(frozen=True, slots=True)
class SortSpec:
    path: AttrPath
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Keyset:
    """A keyset position for cursor paging (RFC 9865): the sort value and id of the last
    (``direction="next"``) or first (``direction="prev"``) resource of the previous page.
    The backend returns the resources strictly after (or before) this position in the
    total order (sort value, nulls last, then id)."""

    sort_value: str | int | float | bool | None
    id: str
    direction: Literal["next", "prev"] = "next"


@dataclass(frozen=True, slots=True)
class Query:
    """A list/search request, after planning.

    ``filter`` is the part the backend must evaluate (pushed down). Index paging uses
    ``start_index``/``count``; cursor paging uses ``keyset``/``count`` with
    ``paging="cursor"`` (``keyset=None`` for the first page).
    """

    filter: Filter | None = None
    sort: SortSpec | None = None
    paging: Literal["index", "cursor"] = "index"
    start_index: int = 1
    count: int = 100
    keyset: Keyset | None = None
    want_total: bool = True
    shape: tuple[FilterShape, str] | None = None
    """A hint a backend may ignore: ``(shape, value)`` when ``filter`` is
    ``shape.build(value)``, one member of a family of filters that differ only in the
    string value of one ``eq`` comparison (``userName eq "<each user>"``, what identity
    providers poll with). Shapes compare by identity: a backend can cache what it derives
    from the filter (compiled SQL) per shape and only put the new value in."""


@dataclass(slots=True)
class Page:
    """One page of results."""

    resources: list[dict[str, Any]]
    total_results: int | None
    next_keyset: Keyset | None = None
    """Position after the last resource when more follow (cursor paging), else None."""
    prev_keyset: Keyset | None = None
    """Position before the first resource when a previous page exists, else None."""


@dataclass(frozen=True, slots=True)
class PatchOp:
    """One PATCH operation after parsing (op lower-cased, path parsed and resolved)."""

    op: Literal["add", "replace", "remove"]
    path: PatchPath | None
    value: Any = None


@dataclass(frozen=True, slots=True)
class MemberChange:
    """An ordered change to a Group's membership, produced by the PATCH engine.

    * ``add``: add ``members`` (dicts with ``value`` and optional ``display``/``type``),
      ignoring ones already present.
    * ``remove``: remove the members whose ``value`` is in ``values``.
    * ``set``: make the membership exactly ``members`` (apply as a diff).
    * ``clear``: remove every member.
    """

    op: Literal["add", "remove", "set", "clear"]
    members: tuple[Mapping[str, Any], ...] = ()
    values: tuple[str, ...] = ()


@runtime_checkable
class Backend(Protocol):
    """A resource store. All methods are coroutines scoped to ``ctx.tenant``."""

    capabilities: Capabilities

    async def start(self) -> None:
        """Open connections, create or check the storage layout."""

    async def aclose(self) -> None:
        """Release every resource; called once at shutdown."""

    async def create(
        self, ctx: OpContext, rtype: ResourceType, resource: dict[str, Any]
    ) -> dict[str, Any]:
        """Store a new resource; assign ``id`` and ``meta``; return it as stored."""

    async def get(self, ctx: OpContext, rtype: ResourceType, rid: str) -> dict[str, Any]:
        """Return the resource or raise ``NotFound``."""

    async def replace(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        resource: dict[str, Any],
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        """Replace the whole resource (PUT). ``resource`` is the complete new state the core
        computed (immutable and readOnly attributes already carried over)."""

    async def patch(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        ops: Sequence[PatchOp],
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        """Apply PATCH operations atomically (all or none) and return the new resource.
        Backends implement it with ``scimd.patch.apply_patch`` inside their own
        transaction, applying ``MemberChange`` lists natively."""

    async def delete(
        self, ctx: OpContext, rtype: ResourceType, rid: str, *, if_match: str | None
    ) -> None:
        """Delete the resource (and its memberships) or raise ``NotFound``."""

    async def query(self, ctx: OpContext, rtype: ResourceType, q: Query) -> Page:
        """Filter, sort and page; ``q.filter`` is within ``capabilities``."""


@dataclass(frozen=True, slots=True)
class BackendEnv:
    """What a backend factory gets to build a backend."""

    options: Mapping[str, Any]
    """The ``[storage.<name>]`` table of the config (secrets already resolved)."""
    registry: SchemaRegistry
    base_dir: Path
    """Directory relative paths in options resolve against (the config file's)."""
    settings: Any = None
    """The full ``scimd.config.Settings`` (typed as Any to avoid an import cycle)."""
    extra: Mapping[str, Any] = field(default_factory=dict)


class BackendFactory(Protocol):
    """Registered by plugins through ``scimd_backends``: a name and a constructor."""

    name: str
    description: str

    def __call__(self, env: BackendEnv) -> Backend: ...
