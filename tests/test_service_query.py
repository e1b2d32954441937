"""The service's query planning: what a backend cannot evaluate is filtered in memory over
a bounded candidate set, or refused with 400 invalidFilter; never a silent empty answer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from scimd.backend import ALL_FILTER_OPS, Backend, Capabilities
from scimd.plugins import PluginManager
from scimd.schema.loader import builtin_registry
from scimd.settings import ScimSettings
from tests._http_helpers import MakeScim, Scim, make_settings


def _limited(tmp_path: Path, plugins: PluginManager, **caps: object) -> Backend:
    backend = plugins.backend(make_settings(tmp_path), builtin_registry())
    # The embedded store can do everything; pretend it cannot, as an LDAP or SaaS one.
    backend.capabilities = dataclasses.replace(Capabilities(), **caps)  # type: ignore[arg-type]
    return backend


async def _seed(app: Scim) -> None:
    for i, name in enumerate(["anna", "annabel", "bob", "carl", "dana"]):
        await app.create_user(f"{name}@example.com", externalId=f"e{i % 2}", title=name)


async def test_residual_filter_over_bounded_candidates(
    make_scim: MakeScim, tmp_path: Path, plugins: PluginManager
) -> None:
    backend = _limited(tmp_path, plugins, filter_ops=ALL_FILTER_OPS - {"co"})
    app = await make_scim(backend=backend, scim=ScimSettings(residual_limit=3))
    await _seed(app)
    # externalId eq "e0" is pushed (3 candidates: anna, bob, dana); "co" runs in memory.
    status, doc = await app.call(
        "GET", '/Users?filter=externalId eq "e0" and userName co "ann"&sortBy=userName'
    )
    assert status == 200, doc
    assert [r["userName"] for r in doc["Resources"]] == ["anna@example.com"]
    assert doc["totalResults"] == 1


async def test_unbounded_residual_is_400_invalid_filter(
    make_scim: MakeScim, tmp_path: Path, plugins: PluginManager
) -> None:
    backend = _limited(tmp_path, plugins, filter_ops=ALL_FILTER_OPS - {"co"})
    app = await make_scim(backend=backend, scim=ScimSettings(residual_limit=3))
    await _seed(app)
    status, doc = await app.call("GET", '/Users?filter=userName co "ann"')
    assert status == 400
    assert doc["scimType"] == "invalidFilter"
    assert "co" in doc["detail"]


async def test_in_memory_sort_and_paging_when_backend_cannot_sort(
    make_scim: MakeScim, tmp_path: Path, plugins: PluginManager
) -> None:
    backend = _limited(tmp_path, plugins, sort=False, cursor=False)
    app = await make_scim(backend=backend)
    await _seed(app)
    status, doc = await app.call(
        "GET", "/Users?sortBy=title&sortOrder=descending&startIndex=2&count=2"
    )
    assert status == 200
    assert doc["totalResults"] == 5
    assert [r["title"] for r in doc["Resources"]] == ["carl", "bob"]
    status, doc = await app.call("GET", "/Users?cursor=")
    assert status == 400
    _, spc = await app.call("GET", "/ServiceProviderConfig")
    assert spc["sort"]["supported"] is False
    assert spc["pagination"]["cursor"] is False


async def test_sort_order_validation(scim: Scim) -> None:
    status, doc = await scim.call("GET", "/Users?sortBy=userName&sortOrder=sideways")
    assert status == 400
    status, doc = await scim.call("GET", "/Users?sortBy=noSuchAttr")
    assert status == 400
    assert doc["status"] == "400"
