"""Custom schemas, extensions and resource types are configuration, never code (issue 2
item 3): files named in ``[schema]`` are served on /Schemas and /ResourceTypes, validated,
stored, filtered and sorted like the built-in ones; unknown attributes are a 400
invalidValue unless ``schema.unknown_attributes = "ignore"``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from scimd.config import load_settings
from tests._http_helpers import MakeScim, Scim

FIXTURES = Path(__file__).parent / "fixtures"
ACME = "urn:example:params:scim:schemas:extension:acme:2.0:User"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"

ACME_SCHEMA = {
    "id": ACME,
    "name": "AcmeUser",
    "description": "Acme's extension of User",
    "attributes": [
        {
            "name": "badgeNumber",
            "type": "integer",
            "multiValued": False,
            "required": False,
            "mutability": "readWrite",
            "returned": "default",
            "uniqueness": "server",
        },
        {
            "name": "site",
            "type": "string",
            "multiValued": False,
            "required": False,
            "caseExact": False,
            "mutability": "readWrite",
            "returned": "default",
            "uniqueness": "none",
        },
    ],
}

USER_WITH_ACME = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
    "id": "User",
    "name": "User",
    "endpoint": "/Users",
    "description": "User Account",
    "schema": USER,
    "schemaExtensions": [
        {"schema": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "required": False},
        {"schema": ACME, "required": False},
    ],
}


def _config(tmp_path: Path, unknown: str = "error") -> Path:
    """A config file naming schema files by paths relative to its own directory."""
    conf = tmp_path / "conf"
    (conf / "schemas").mkdir(parents=True)
    (conf / "schemas" / "acme.json").write_text(json.dumps(ACME_SCHEMA))
    shutil.copy(FIXTURES / "store-custom-device-schema.json", conf / "schemas" / "device.json")
    (conf / "schemas" / "user-type.json").write_text(json.dumps(USER_WITH_ACME))
    shutil.copy(
        FIXTURES / "store-custom-device-resource-type.json", conf / "schemas" / "device-type.json"
    )
    path = conf / "scimd.toml"
    path.write_text(
        "[schema]\n"
        'files = ["schemas/acme.json", "schemas/device.json"]\n'
        'resource_types = ["schemas/user-type.json", "schemas/device-type.json"]\n'
        f'unknown_attributes = "{unknown}"\n'
        "[storage.embedded]\n"
        'path = "data/scimd.db"\n'
        "[state]\n"
        'path = "data/state.db"\n'
        "[auth]\n"
        "bootstrap_token = false\n"
    )
    (conf / "data").mkdir()
    return path


async def _app(make_scim: MakeScim, tmp_path: Path, unknown: str = "error") -> Scim:
    settings = load_settings(_config(tmp_path, unknown), environ={})
    return await make_scim(settings=settings)


async def test_custom_schemas_are_served_on_discovery(make_scim: MakeScim, tmp_path: Path) -> None:
    scim = await _app(make_scim, tmp_path)
    status, doc = await scim.call("GET", f"/Schemas/{ACME}")
    assert status == 200
    assert [a["name"] for a in doc["attributes"]] == ["badgeNumber", "site"]
    status, doc = await scim.call("GET", "/ResourceTypes/Device")
    assert status == 200
    assert doc["endpoint"] == "/Devices"
    status, doc = await scim.call("GET", "/ResourceTypes/User")
    assert {e["schema"] for e in doc["schemaExtensions"]} >= {ACME}


async def test_extension_attributes_are_validated_stored_and_filtered(
    make_scim: MakeScim, tmp_path: Path
) -> None:
    scim = await _app(make_scim, tmp_path)
    created = await scim.create_user(
        "acme1@example.com", **{"schemas": [USER, ACME], ACME: {"badgeNumber": 42, "Site": "Oslo"}}
    )
    assert created[ACME] == {"badgeNumber": 42, "site": "Oslo"}
    assert ACME in created["schemas"]
    await scim.create_user("acme2@example.com", **{ACME: {"badgeNumber": 7, "site": "Bergen"}})

    status, doc = await scim.call("GET", f'/Users?filter={ACME}:site eq "oslo"')
    assert status == 200
    assert [r["userName"] for r in doc["Resources"]] == ["acme1@example.com"]
    status, doc = await scim.call("GET", f"/Users?filter={ACME}:badgeNumber lt 10")
    assert [r["userName"] for r in doc["Resources"]] == ["acme2@example.com"]
    status, doc = await scim.call("GET", f"/Users?sortBy={ACME}:badgeNumber")
    assert [r["userName"] for r in doc["Resources"]] == ["acme2@example.com", "acme1@example.com"]

    # Wrong type -> 400 invalidValue; duplicate badge (uniqueness server) -> 409.
    bad: dict[str, Any] = {"schemas": [USER], "userName": "x@example.com"}
    status, err = await scim.call("POST", "/Users", json={**bad, ACME: {"badgeNumber": "4x"}})
    assert (status, err["scimType"]) == (400, "invalidValue")
    status, err = await scim.call("POST", "/Users", json={**bad, ACME: {"badgeNumber": 42}})
    assert (status, err.get("scimType")) == (409, "uniqueness"), err


async def test_custom_resource_type_has_full_crud(make_scim: MakeScim, tmp_path: Path) -> None:
    scim = await _app(make_scim, tmp_path)
    body = {
        "schemas": ["urn:example:scimd:schemas:Device"],
        "serial": "SN-1",
        "cores": 8,
        "enabled": "true",
        "tags": ["lab", "arm"],
    }
    status, dev = await scim.call("POST", "/Devices", json=body)
    assert status == 201, dev
    assert dev["meta"]["resourceType"] == "Device"
    assert dev["enabled"] is True
    status, doc = await scim.call("GET", '/Devices?filter=tags eq "arm" and cores ge 8')
    assert [d["id"] for d in doc["Resources"]] == [dev["id"]]
    status, _ = await scim.call("DELETE", f"/Devices/{dev['id']}")
    assert status == 204


async def test_unknown_attribute_is_400_unless_configured_to_ignore(
    make_scim: MakeScim, tmp_path: Path
) -> None:
    body = {"schemas": [USER], "userName": "u@example.com", "favouriteColour": "blue"}
    strict = await _app(make_scim, tmp_path / "strict")
    status, err = await strict.call("POST", "/Users", json=body)
    assert status == 400
    assert err["scimType"] == "invalidValue"
    assert "favouriteColour" in err["detail"]

    lenient = await _app(make_scim, tmp_path / "lenient", unknown="ignore")
    status, doc = await lenient.call("POST", "/Users", json=body)
    assert status == 201
    assert "favouriteColour" not in doc
