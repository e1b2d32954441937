"""Interop with a real SCIM client library: scim2-client (python-scim, httpx engine) and the
scim2-models it validates with, driving scimd on loopback (embedded store).

The versions are the ones Canaille 0.3.6 runs (scim2-client 0.7.5, scim2-models 0.6.12; the
later releases need ``httpx2`` and dropped ``scim2_client.engines.httpx``, which Canaille
imports). The client builds its resource models from scimd's ``/ResourceTypes`` and
``/Schemas``, so they must parse, and checks every response against them and RFC 7644's
status codes; SCIM errors come back as ``scim2_models.Error`` objects.

Client deviation (docs/interop.md): scim2-models before 0.10 forbids attributes it does not
know in ``/ServiceProviderConfig``, so scimd's RFC 9865 ``pagination`` block fails its
discovery; ``scim.advertise_pagination = false`` serves these clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from scim2_client import SCIMResponseErrorObject
from scim2_client.engines.httpx import AsyncSCIMClient
from scim2_client.errors import ResponsePayloadValidationError
from scim2_models import (
    Error,
    ListResponse,
    PatchOp,
    PatchOperation,
    Resource,
    SearchRequest,
    ServiceProviderConfig,
)

from scimd.app import create_app
from scimd.plugins import PluginManager
from scimd.settings import Settings
from tests._http_helpers import BASE, AiohttpClient, Scim, make_settings
from tests._iam_helpers import without_pagination


async def start(aiohttp_client: AiohttpClient, settings: Settings) -> tuple[Scim, str]:
    """scimd on loopback, a read+write token, and its SCIM base URL."""
    client = await aiohttp_client(create_app(settings, PluginManager.create(entry_points=False)))
    scim = Scim(client, "")
    scim.token = await scim.new_token()
    return scim, str(client.make_url(BASE))


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, tmp_path: Path) -> AsyncIterator[Any]:
    """A discovered scim2-client against scimd (pagination block not advertised)."""
    _scim, url = await start(aiohttp_client, without_pagination(make_settings(tmp_path)))
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {_scim.token}"}
    ) as h:
        scim: Any = AsyncSCIMClient(h)
        await scim.discover()
        yield scim


def model(client: Any, name: str) -> Any:
    """A resource model the client built from scimd's /Schemas (typed Any: built at run
    time, so its attributes are unknown to mypy)."""
    found = client.get_resource_model(name)
    assert found is not None and issubclass(found, Resource)
    return found


def patch_op(resource_model: Any, *operations: tuple[str, str, Any]) -> Any:
    """The library's ``PatchOp[Model]`` message from (op, path, value) triples."""
    generic: Any = PatchOp
    return generic[resource_model](
        operations=[
            PatchOperation.model_validate({"op": op, "path": path, "value": value})
            for op, path, value in operations
        ]
    )


def search(**params: Any) -> SearchRequest:
    """RFC 7644 3.4.2 query parameters as the library's model."""
    return SearchRequest(**params)


async def scim_error(call: Any) -> Error:
    with pytest.raises(SCIMResponseErrorObject) as info:
        await call
    return info.value.to_error()


async def test_default_service_provider_config_fails_old_scim2_models(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    """ResourceTypes and Schemas parse and build the models; the default SPC carries the
    RFC 9865 ``pagination`` block, which this scim2-models rejects (extra attribute)."""
    scim, url = await start(aiohttp_client, make_settings(tmp_path))
    async with httpx.AsyncClient(base_url=url, headers=scim.headers()) as h:
        client: Any = AsyncSCIMClient(h)
        await client.discover(service_provider_config=False)
        assert sorted(m.__name__ for m in client.resource_models) == [
            "Group",
            "User[EnterpriseUser]",
        ]
        with pytest.raises(ResponsePayloadValidationError) as info:
            await client.query(ServiceProviderConfig)
        assert "pagination" in "".join(getattr(info.value, "__notes__", []))
    status, spc = await scim.call("GET", "/ServiceProviderConfig")
    assert status == 200 and spc["pagination"]["cursor"] is True


async def test_service_provider_config_without_pagination(client: Any) -> None:
    spc = client.service_provider_config
    assert isinstance(spc, ServiceProviderConfig)
    assert spc.patch is not None and spc.patch.supported is True
    assert spc.filter is not None and spc.filter.supported is True
    assert spc.filter.max_results == 1000
    assert spc.etag is not None and spc.etag.supported is True
    assert spc.authentication_schemes and spc.authentication_schemes[0].type == "oauthbearertoken"


async def test_user_lifecycle_with_enterprise_extension(client: Any) -> None:
    User = model(client, "User")
    Enterprise = User.get_extension_model("EnterpriseUser")
    assert Enterprise is not None
    user = User(
        user_name="bjensen",
        display_name="Babs Jensen",
        name=User.Name(given_name="Barbara", family_name="Jensen"),
        emails=[User.Emails(value="bjensen@example.com", type="work", primary=True)],
    )
    user[Enterprise] = Enterprise(employee_number="701984", department="Tour Operations")
    created = await client.create(user)
    assert isinstance(created, User)
    assert created.id and created.meta and created.meta.version == 'W/"1"'
    assert created.meta.location == f"{str(client.client.base_url).rstrip('/')}/Users/{created.id}"
    assert created[Enterprise].employee_number == "701984"
    fetched = await client.query(User, created.id)
    assert fetched.user_name == "bjensen" and fetched.name.given_name == "Barbara"
    # Replace (PUT): the whole resource, extension included.
    fetched.display_name = "Barbara J."
    fetched[Enterprise].department = "Sales"
    replaced = await client.replace(fetched)
    assert replaced.display_name == "Barbara J." and replaced[Enterprise].department == "Sales"
    assert replaced.meta.version == 'W/"2"'
    # PATCH with the library's PatchOp model.
    patch = patch_op(User, ("replace", "displayName", "BJ"), ("add", "title", "Tour Guide"))
    patched = await client.modify(User, created.id, patch)
    assert (patched.display_name, patched.title) == ("BJ", "Tour Guide")
    # Delete, then a SCIM 404 parsed as an Error object.
    assert await client.delete(User, created.id) is None
    error = await scim_error(client.query(User, created.id))
    assert error.status == 404


async def test_uniqueness_conflict_is_a_scim_409(client: Any) -> None:
    User = model(client, "User")
    await client.create(User(user_name="ann"))
    error = await scim_error(client.create(User(user_name="ANN")))
    assert (error.status, error.scim_type) == (409, "uniqueness")


async def test_precondition_failed_is_a_scim_412(client: Any) -> None:
    User = model(client, "User")
    created = await client.create(User(user_name="ann"))
    created.display_name = "Ann"
    await client.replace(created)
    # A replace conditioned on the first version, now stale.
    created.display_name = "Stale"
    error = await scim_error(client.replace(created, headers={"If-Match": 'W/"1"'}))
    assert error.status == 412
    current = await client.query(User, created.id)
    assert current.display_name == "Ann"


async def test_groups_with_members(client: Any) -> None:
    User, Group = model(client, "User"), model(client, "Group")
    ann = await client.create(User(user_name="ann", display_name="Ann"))
    bob = await client.create(User(user_name="bob", display_name="Bob"))
    group = await client.create(
        Group(display_name="staff", members=[Group.Members(value=ann.id, type="User")])
    )
    assert [(m.value, m.display, m.type) for m in group.members] == [(ann.id, "Ann", "User")]
    patch = patch_op(Group, ("add", "members", [{"value": bob.id, "type": "User"}]))
    patched = await client.modify(Group, group.id, patch)
    assert sorted(m.value for m in patched.members) == sorted([ann.id, bob.id])
    # The member side: the User's readOnly groups attribute.
    fetched = await client.query(User, bob.id)
    assert [g.value for g in fetched.groups] == [group.id]
    found = await client.query(Group, query_parameters=search(filter='displayName eq "staff"'))
    assert isinstance(found, ListResponse) and found.total_results == 1
    assert found.resources and found.resources[0].id == group.id
    error = await scim_error(client.create(Group(display_name="STAFF")))
    assert (error.status, error.scim_type) == (409, "uniqueness")


async def test_search_filters_and_pagination(client: Any) -> None:
    User = model(client, "User")
    for i in range(7):
        await client.create(
            User(
                user_name=f"user{i}",
                emails=[User.Emails(value=f"u{i}@example.com", type="work")],
                active=i % 2 == 0,
            )
        )
    page = await client.query(
        User, query_parameters=search(filter="active eq true", count=2, start_index=1)
    )
    assert (page.total_results, page.items_per_page, page.start_index) == (4, 2, 1)
    seen = [u.user_name for u in page.resources]
    page = await client.query(
        User, query_parameters=search(filter="active eq true", count=2, start_index=3)
    )
    seen += [u.user_name for u in page.resources]
    assert sorted(seen) == ["user0", "user2", "user4", "user6"]
    # A complex filter, sorting and attribute projection, through POST /.search too.
    req = search(
        filter='emails[type eq "work" and value co "u1"] or userName sw "user5"',
        sort_by="userName",
        attributes=["userName"],
    )
    by_get = await client.query(User, query_parameters=req)
    assert [u.user_name for u in by_get.resources] == ["user1", "user5"]
    assert by_get.resources[0].emails is None
    by_post = await client.search(req)
    assert [u.user_name for u in by_post.resources] == ["user1", "user5"]
    error = await scim_error(client.query(User, query_parameters=search(filter="userName xx 1")))
    assert (error.status, error.scim_type) == (400, "invalidFilter")


async def test_advertise_pagination_off_hides_the_block_not_the_cursors(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    """``scim.advertise_pagination = false`` only drops the RFC 9865 block from
    /ServiceProviderConfig: cursor pagination is still served."""
    scim, _url = await start(aiohttp_client, without_pagination(make_settings(tmp_path)))
    status, spc = await scim.call("GET", "/ServiceProviderConfig")
    assert status == 200 and "pagination" not in spc
    assert spc["filter"] == {"supported": True, "maxResults": 1000}
    for name in ("ann", "bob"):
        await scim.create_user(name)
    status, page = await scim.call("GET", "/Users?cursor=&count=1")
    assert status == 200 and page["nextCursor"]
    status, page = await scim.call("GET", f"/Users?cursor={page['nextCursor']}&count=1")
    assert status == 200 and len(page["Resources"]) == 1 and "nextCursor" not in page
