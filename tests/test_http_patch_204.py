"""``scim.patch_success_status = 204``: PATCH answers 204 with the new ETag and no body,
and (since nothing is rendered) never reads a group's member rows to answer."""

from __future__ import annotations

from pathlib import Path

from scimd.backend import BackendEnv
from scimd.schema.loader import builtin_registry
from scimd.settings import ScimSettings
from scimd.store.sqlite import SQLiteBackend
from tests._http_helpers import MakeScim, make_settings

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def test_patch_204_answers_without_reading_members(
    make_scim: MakeScim, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, scim=ScimSettings(patch_success_status=204))
    backend = SQLiteBackend(
        BackendEnv(
            options={"path": str(tmp_path / "scimd.db")},
            registry=builtin_registry(),
            base_dir=tmp_path,
            settings=settings,
        )
    )
    statements: list[str] = []
    backend.trace = statements.append
    scim = await make_scim(settings=settings, backend=backend)
    users = [await scim.create_user(f"m{i}@example.com") for i in range(4)]
    group = await scim.create_group("Team", [u["id"] for u in users[:3]])

    statements.clear()
    body = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": users[3]["id"]}]}],
    }
    resp = await scim.request("PATCH", f"/Groups/{group['id']}", json=body)
    assert resp.status == 204
    assert await resp.read() == b""
    assert resp.headers["ETag"] == 'W/"2"'
    member_reads = [s for s in statements if s.startswith("SELECT member_id, member_type")]
    assert member_reads == []

    # The change is there all the same.
    status, doc = await scim.call("GET", f"/Groups/{group['id']}")
    assert status == 200
    assert len(doc["members"]) == 4
