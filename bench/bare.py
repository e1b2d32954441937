"""The ceiling: a bare aiohttp endpoint answering a fixed SCIM User with orjson.

Run in the same sitting as scimd so that figures are comparable on the same machine.
"""

from __future__ import annotations

import argparse

import orjson
from aiohttp import web

USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "id": "2819c223-7f76-453a-919d-413861904646",
    "userName": "bjensen@example.com",
    "name": {"givenName": "Barbara", "familyName": "Jensen"},
    "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
    "active": True,
    "meta": {
        "resourceType": "User",
        "created": "2026-01-01T00:00:00Z",
        "lastModified": "2026-01-01T00:00:00Z",
        "version": 'W/"1"',
        "location": "http://127.0.0.1/scim/v2/Users/2819c223-7f76-453a-919d-413861904646",
    },
}
BODY = orjson.dumps(USER)


async def handle(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/scim+json")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/scim/v2/Users/{id}", handle)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
