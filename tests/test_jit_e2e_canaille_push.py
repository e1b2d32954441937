"""The hybrid path with a real provider pushing (issue 7 item 7): Canaille, run by
``pytest-iam`` on loopback, provisions users and groups into scimd with its OWN SCIM client
(``canaille.scim.client``: discovery, ``externalId eq`` lookups, POST/PUT/DELETE, group
members resolved through scimd), then a real OIDC login of the pushed user through the JIT
hook links to it (``matched_by: scim_correlation``) instead of creating a second user.

scimd runs with ``scim.advertise_pagination = false``: Canaille 0.3.6's client stack
(scim2-client 0.7, scim2-models 0.7) rejects the RFC 9865 ``pagination`` member of
/ServiceProviderConfig and then pushes nothing (``test_canaille_cannot_discover_the_default
_service_provider_config``; docs/interop.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests._http_helpers import AiohttpClient
from tests._iam_helpers import (  # noqa: F401 (fixtures)
    CanaillePush,
    IamClient,
    authorization_code_login,
    hook,
    http_fixture,
    iam_configuration_fixture,
    jit_for,
    login_via_hook,
    new_user,
    rp_fixture,
    scim_users,
    without_pagination,
)
from tests._jit_helpers import JitApp


@pytest.fixture
async def setup(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    iam_server: Any,
    rp: IamClient,
) -> AsyncIterator[tuple[JitApp, CanaillePush]]:
    """scimd (JIT on for ``rp``'s logins, pagination not advertised) and a Canaille client
    that pushes to it."""
    jit = await jit_for(
        aiohttp_client, tmp_path, http, iam_server, rp.client_id, settings=without_pagination
    )
    push = await CanaillePush.connect(iam_server, jit)
    yield jit, push
    push.close()


def by_external_id(external_id: str) -> str:
    return quote(f'externalId eq "{external_id}"')


async def test_canaille_push_then_login_links(
    setup: tuple[JitApp, CanaillePush],
    http: aiohttp.ClientSession,
    iam_server: Any,
    rp: IamClient,
) -> None:
    jit, push = setup
    user = new_user(iam_server)
    push.consent(user)
    await push.save(user)
    assert push.messages == []
    [pushed] = await scim_users(jit, by_external_id(user.id))
    assert pushed["userName"] == user.user_name
    assert pushed["emails"][0]["value"] == user.emails[0]
    # The login links to the pushed user: no second user, userName stays SCIM-owned.
    status, body = await login_via_hook(jit, http, iam_server, rp, user)
    assert status == 200, body
    assert body["outcome"] == "linked"
    assert body["identity"] == {"idp": "iam", "subject": user.id, "matched_by": "scim_correlation"}
    assert body["user"]["id"] == pushed["id"]
    assert body["user"]["userName"] == user.user_name
    status, body = await login_via_hook(jit, http, iam_server, rp, user)
    assert (status, body["identity"]["matched_by"]) == (200, "link"), body
    # Canaille's next save finds the user by externalId and replaces it (PUT).
    await push.save(user, family_name="Smith-Jones")
    assert push.messages == []
    [replaced] = await scim_users(jit)
    assert replaced["id"] == pushed["id"]
    assert replaced["name"]["familyName"] == "Smith-Jones"
    status, body = await login_via_hook(jit, http, iam_server, rp, user)
    assert status == 200, body
    assert (body["identity"]["matched_by"], body["user"]["id"]) == ("link", pushed["id"]), body


async def test_jit_created_user_is_adopted_by_canaille_push(
    setup: tuple[JitApp, CanaillePush],
    http: aiohttp.ClientSession,
    iam_server: Any,
    rp: IamClient,
) -> None:
    """The other door first: JIT creates the user (externalId = sub = Canaille id); Canaille's
    later push finds it with its ``externalId eq`` query and replaces it, no duplicate."""
    jit, push = setup
    user = new_user(iam_server)
    status, body = await login_via_hook(jit, http, iam_server, rp, user)
    assert status == 201, body
    await push.save(user)
    assert push.messages == []
    [adopted] = await scim_users(jit)
    assert adopted["id"] == body["user"]["id"]
    assert adopted["userName"] == user.user_name


async def test_canaille_group_push_and_delete(
    setup: tuple[JitApp, CanaillePush],
    http: aiohttp.ClientSession,
    iam_server: Any,
    rp: IamClient,
) -> None:
    """Canaille pushes a group with its members resolved to scimd ids (``externalId eq``
    lookups, ``$ref`` = the user's ``meta.location``); deleting a user in Canaille DELETEs
    it in scimd and re-pushes its groups, and an id_token issued before the delete is
    refused by the hook (the tombstone)."""
    jit, push = setup
    ann, bob = new_user(iam_server), new_user(iam_server)
    for user in (ann, bob):
        push.consent(user)
        await push.save(user)
    group = iam_server.models.Group(display_name="staff", members=[ann, bob])
    await push.save(group)
    assert push.messages == []
    status, found = await jit.scim.call("GET", f"/Groups?filter={by_external_id(group.id)}")
    assert (status, found["totalResults"]) == (200, 1), found
    ids = {u["externalId"]: u["id"] for u in await scim_users(jit)}
    members = found["Resources"][0]["members"]
    assert sorted(m["value"] for m in members) == sorted([ids[ann.id], ids[bob.id]])
    # Bob's session at the provider ends after the delete; his last id_token is refused.
    last = await authorization_code_login(http, iam_server, rp, bob)
    await push.delete(bob)
    assert push.messages == []
    assert [u["id"] for u in await scim_users(jit)] == [ids[ann.id]]
    status, doc = await jit.scim.call("GET", f"/Groups/{found['Resources'][0]['id']}")
    assert [m["value"] for m in doc["members"]] == [ids[ann.id]]
    status, body = await hook(jit, last.id_token, last.nonce)
    assert (status, body["reason"]) == (403, "user_deleted"), body
    status, body = await login_via_hook(jit, http, iam_server, rp, ann)
    assert (status, body["identity"]["matched_by"]) == (200, "scim_correlation"), body


async def test_canaille_cannot_discover_the_default_service_provider_config(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    iam_server: Any,
) -> None:
    """With the RFC 9865 ``pagination`` block advertised (the default), Canaille 0.3.6's
    ``initiate_scim_client`` fails discovery and gives up: it logs that the client does not
    support SCIM and pushes nothing. This is why the tests above turn the block off; when
    Canaille moves to scim2-models >= 0.10 this test fails and the setting can go."""
    jit = await jit_for(aiohttp_client, tmp_path, http, iam_server, "rp-unused")
    push = await CanaillePush.connect(iam_server, jit)
    try:
        user = new_user(iam_server)
        push.consent(user)
        await push.save(user)
        assert any("SCIM protocol not supported" in m for m in push.messages), push.messages
        assert await scim_users(jit) == []
    finally:
        push.close()
