"""Sample resources the contract suite stores, in canonical SCIM JSON.

They are what the core hands a backend after validation and normalisation: canonical
attribute case, extension attributes under their URN, no ``id``/``meta`` (the backend
assigns them), no readOnly ``groups``. Values are chosen so that every filter operator has
matches and non-matches, some attributes are missing (``pr``, nulls-last sorting), strings
differ only in case (caseExact handling) and several resources share a sort value (the id
tie-break).
"""

from __future__ import annotations

import copy
from typing import Any

from scimd.testing.extension import CONTRACT_EXTENSION_URN

__all__ = [
    "ENTERPRISE_URN",
    "GROUP_URN",
    "USER_URN",
    "filter_corpus",
    "full_user",
    "group",
    "user",
]

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def user(user_name: str, **attrs: Any) -> dict[str, Any]:
    """A minimal User with ``userName`` and any extra canonical attributes."""
    body: dict[str, Any] = {"schemas": [USER_URN], "userName": user_name}
    body.update(copy.deepcopy(attrs))
    for urn in (ENTERPRISE_URN, CONTRACT_EXTENSION_URN):
        if urn in body:
            body["schemas"].append(urn)
    return body


def group(display_name: str, members: list[str] | None = None) -> dict[str, Any]:
    """A Group; ``members`` are User ids (stored as ``{"value": id, "type": "User"}``)."""
    body: dict[str, Any] = {"schemas": [GROUP_URN], "displayName": display_name}
    if members is not None:
        body["members"] = [{"value": m, "type": "User"} for m in members]
    return body


def full_user(user_name: str = "bjensen@example.com") -> dict[str, Any]:
    """RFC 7643 section 8.2 (full User representation), canonicalised: without id, meta,
    password (writeOnly) and groups (readOnly), with the enterprise extension of 8.3."""
    return user(
        user_name,
        externalId="701984",
        name={
            "formatted": "Ms. Barbara J Jensen, III",
            "familyName": "Jensen",
            "givenName": "Barbara",
            "middleName": "Jane",
            "honorificPrefix": "Ms.",
            "honorificSuffix": "III",
        },
        displayName="Babs Jensen",
        nickName="Babs",
        profileUrl="https://login.example.com/bjensen",
        emails=[
            {"value": "bjensen@example.com", "type": "work", "primary": True},
            {"value": "babs@jensen.org", "type": "home"},
        ],
        addresses=[
            {
                "type": "work",
                "streetAddress": "100 Universal City Plaza",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "USA",
                "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA",
            },
        ],
        phoneNumbers=[
            {"value": "555-555-5555", "type": "work"},
            {"value": "555-555-4444", "type": "mobile"},
        ],
        ims=[{"value": "someaimhandle", "type": "aim"}],
        photos=[
            {"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"},
        ],
        userType="Employee",
        title="Tour Guide",
        preferredLanguage="en-US",
        locale="en-US",
        timezone="America/Los_Angeles",
        active=True,
        x509Certificates=[{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw"}],
        **{
            ENTERPRISE_URN: {
                "employeeNumber": "701984",
                "costCenter": "4130",
                "organization": "Universal Studios",
                "division": "Theme Park",
                "department": "Tour Operations",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"},
            }
        },
    )


def filter_corpus() -> list[dict[str, Any]]:
    """Users covering every attribute type the filter and sort contracts exercise."""
    ext = CONTRACT_EXTENSION_URN
    ent = ENTERPRISE_URN
    return [
        user(
            "alice@example.com",
            externalId="ext-1",
            name={"givenName": "Alice", "familyName": "Smith"},
            displayName="Alice Smith",
            title="Engineer",
            active=True,
            emails=[
                {"value": "alice@example.com", "type": "work", "primary": True},
                {"value": "alice@home.org", "type": "home"},
            ],
            **{
                ent: {"employeeNumber": "100", "department": "Engineering"},
                ext: {
                    "score": 10,
                    "ratio": 0.25,
                    "since": "2020-01-15T08:30:00Z",
                    "flag": True,
                    "code": "AbC",
                    "tags": ["red", "green"],
                },
            },
        ),
        user(
            "Bob.Smith@Example.com",
            externalId="ext-2",
            name={"givenName": "Bob", "familyName": "smith"},
            displayName="Bob Smith",
            title="engineer",
            active=False,
            emails=[{"value": "bob@example.org", "type": "work"}],
            **{
                ent: {"employeeNumber": "205", "department": "Sales", "manager": {"value": "m-1"}},
                ext: {
                    "score": 5,
                    "ratio": 1.5,
                    "since": "2019-06-01T00:00:00Z",
                    "flag": False,
                    "code": "abc",
                    "tags": ["blue"],
                },
            },
        ),
        user(
            "carol",
            name={"givenName": "Carol", "familyName": "Jones"},
            title="Manager",
            active=True,
            emails=[
                {"value": "carol@example.com", "type": "home", "primary": True},
                {"value": "CAROL@work.example.com", "type": "work"},
            ],
            **{
                ent: {"employeeNumber": "99", "department": "sales"},
                ext: {"score": -3, "ratio": 0.0, "since": "2021-12-31T23:59:59Z", "code": "XYZ"},
            },
        ),
        user(
            "dave",
            displayName="Dave",
            active=True,
            phoneNumbers=[{"value": "555-0100", "type": "mobile"}],
            **{ext: {"score": 10, "flag": True, "tags": ["green"]}},
        ),
        user(
            "Eve",
            externalId="ext-5",
            displayName="Eve Adams",
            title="Engineer",
            emails=[{"value": "eve@example.org", "type": "other"}],
            **{
                ent: {"department": "Engineering", "manager": {"value": "m-2"}},
                ext: {"score": 0, "ratio": 2.75, "since": "2020-01-15T08:30:00Z"},
            },
        ),
        user(
            "frank.o'neil@example.com",
            name={"givenName": "Frank", "familyName": "O'Neil"},
            displayName='Frank "the tank" O\'Neil',
            title="Director",
            active=False,
            emails=[
                {"value": "frank@example.com", "type": "work", "primary": False},
                {"value": "frank@example.com", "type": "home", "primary": True},
            ],
            **{ext: {"score": 42, "ratio": 0.5, "flag": False, "tags": ["red"]}},
        ),
        user(
            "grace",
            name={"givenName": "Grace", "familyName": "Hopper"},
            title="Admiral",
            active=True,
            **{ent: {"employeeNumber": "1"}, ext: {"since": "1906-12-09T00:00:00Z"}},
        ),
        user(
            "heidi",
            displayName="Heidi",
            userType="Contractor",
            emails=[{"value": "heidi@example.com", "type": "work", "primary": True}],
            **{ext: {"score": 7, "code": "abc", "tags": ["RED", "yellow"]}},
        ),
        user(
            "ivan",
            displayName="Ivan",
            title="engineer",
            active=True,
            **{ent: {"department": "Support"}},
        ),
        user(
            "jürgen@example.de",
            name={"givenName": "Jürgen", "familyName": "Müller"},
            displayName="Jürgen Müller",
            title="Ingenieur",
            active=True,
            emails=[{"value": "juergen@example.de", "type": "work", "primary": True}],
            **{ext: {"score": 5, "ratio": 0.25, "since": "2022-02-02T02:02:02Z"}},
        ),
        user("mallory", active=False),
        user(
            "zoe",
            displayName="Zoe",
            title="Manager",
            emails=[{"value": "zoe@example.com"}],
            **{ext: {"score": 100, "ratio": 100.5, "tags": ["green", "blue"]}},
        ),
    ]
