"""JIT provisioning at SSO login (``POST /jit/v1/logins``), with SCIM as the authority.

* ``config``: the ``[[jit.callers]]`` / ``[[jit.idp]]`` tables, typed and validated;
* ``caller``: caller authentication (Standard Webhooks HMAC, pinned mTLS, bearer);
* ``ratelimit``: per-caller and per-IdP token buckets (429 with Retry-After);
* ``oidc``: id_token verification with joserfc against a cached, asynchronously fetched JWKS;
* ``email``: email normalisation and domain allow-lists;
* ``errors``: the problem+json errors and their reasons;
* ``service``: the decision order and hybrid rules (every write through ``scimd.service``);
* ``http``: the aiohttp view.

See ``docs/jit.md``.
"""
