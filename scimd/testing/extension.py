"""The contract suite's own schema extension, and the registry the suite runs against.

The builtin User/Group/EnterpriseUser schemas have no ``integer``, ``decimal`` or
user-controlled ``dateTime`` attribute, and no multi-valued simple attribute, so the
filter and sort contracts could not exercise those types on builtin data alone. The
suite therefore attaches one extra extension schema to the User resource type. It is
plain schema data (RFC 7643 section 7), compiled by ``scimd.schema.loader`` like any
custom schema an operator configures: a backend that handles configured extensions
handles it too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scimd.schema.model import SchemaRegistry

__all__ = ["CONTRACT_EXTENSION_URN", "build_contract_registry", "contract_extension_schema"]

CONTRACT_EXTENSION_URN = "urn:scimd:params:scim:schemas:extension:contract:2.0:User"


def _attr(name: str, type_: str, **extra: Any) -> dict[str, Any]:
    attr: dict[str, Any] = {
        "name": name,
        "type": type_,
        "multiValued": False,
        "description": f"Contract-suite test attribute ({type_}).",
        "required": False,
        "caseExact": False,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    }
    attr.update(extra)
    return attr


def contract_extension_schema() -> dict[str, Any]:
    """The extension schema document (one attribute per SCIM type the suite filters on)."""
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": CONTRACT_EXTENSION_URN,
        "name": "ContractUser",
        "description": "Attributes of every SCIM type, used by the scimd backend contract suite",
        "attributes": [
            _attr("score", "integer"),
            _attr("ratio", "decimal"),
            _attr("since", "dateTime"),
            _attr("flag", "boolean"),
            _attr("code", "string", caseExact=True),
            _attr("tags", "string", multiValued=True),
        ],
    }


def _resource_types_with_extension() -> list[dict[str, Any]]:
    from importlib import resources

    raw = resources.files("scimd.schema").joinpath("data/resource_types.json").read_text("utf-8")
    docs: list[dict[str, Any]] = json.loads(raw)
    for doc in docs:
        if doc.get("id") == "User":
            exts = list(doc.get("schemaExtensions", []))
            exts.append({"schema": CONTRACT_EXTENSION_URN, "required": False})
            doc["schemaExtensions"] = exts
    return docs


def build_contract_registry(directory: Path) -> SchemaRegistry:
    """The builtin registry plus the contract extension on User.

    ``directory`` receives the two JSON files handed to ``scimd.schema.loader.load_registry``
    (the suite passes a temporary directory).
    """
    from scimd.schema.loader import load_registry

    schema_file = directory / "contract-extension-schema.json"
    schema_file.write_text(json.dumps(contract_extension_schema()), "utf-8")
    rt_file = directory / "contract-resource-types.json"
    rt_file.write_text(json.dumps(_resource_types_with_extension()), "utf-8")
    return load_registry(schema_files=(schema_file,), resource_type_files=(rt_file,))
