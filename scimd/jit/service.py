"""The JIT decision order and hybrid rules (JIT.md "Decision order").

::

    verify caller -> idempotency -> verify artifact (or trusted claims) -> replay check
    -> normalise email -> find user (link, SCIM correlation, email under conditions)
    -> tombstone / deprovisioned rules -> create or link + update by ownership -> groups
    -> audit events -> response

Every write goes through :class:`scimd.service.Service` (uniqueness, ETags and events are
shared with SCIM). Logins of the same ``(tenant, idp, subject)`` are serialised in-process;
across processes a lost race surfaces as a uniqueness conflict and the decision is taken
again once (the winner's user is then found by its link or correlation).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson

from scimd.backend import OpContext
from scimd.errors import NotFound, ScimError, ServiceUnavailable, Uniqueness
from scimd.events import make_event
from scimd.jit.caller import AuthenticatedCaller, authenticate
from scimd.jit.config import JitCaller, JitIdp
from scimd.jit.email import EmailError, NormalizedEmail, domain_allowed, normalize_email
from scimd.jit.errors import PROBLEM_JSON, JitError
from scimd.jit.oidc import JwksCache, token_hash, verify_id_token
from scimd.jit.ratelimit import RateLimiter
from scimd.jit.saml import verify_saml_response
from scimd.locks import KeyedLocks
from scimd.patch import PATCH_OP_URN
from scimd.schema.model import ResourceType, SchemaRegistry
from scimd.service import ListParams, Service
from scimd.settings import Settings
from scimd.state.base import (
    EmailMarkStore,
    IdempotencyRecord,
    JitStateStore,
    RateLimitStore,
    StateStore,
)
from scimd.unique_email import email_forms

__all__ = [
    "JitResponse",
    "JitService",
    "drop_tombstone",
    "forget_deleted",
    "record_tombstone",
    "tombstone_keys",
]

log = logging.getLogger("scimd.jit")

_JSON = "application/json"


@dataclass(slots=True)
class JitResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Audit:
    """What the audit events of one login carry (never a raw token)."""

    caller: str | None = None
    idp: str | None = None
    protocol: str | None = None
    subject: str | None = None
    email: str | None = None
    token_id: str | None = None
    """``jti:<jti>`` or ``sha256:<hash of the token>``."""
    ip: str | None = None
    tenant: str = "default"

    def data(self) -> dict[str, Any]:
        return {
            "idp": self.idp,
            "protocol": self.protocol,
            "caller": self.caller,
            "subject": self.subject,
            "email": self.email,
            "token": self.token_id,
            "ip": self.ip,
        }


@dataclass(slots=True)
class _Outcome:
    outcome: str
    user: dict[str, Any]
    matched_by: str
    changed: list[str] = field(default_factory=list)
    groups_added: list[str] = field(default_factory=list)
    groups_removed: list[str] = field(default_factory=list)


def _problem(err: JitError) -> JitResponse:
    headers = {"Content-Type": PROBLEM_JSON, **err.headers}
    return JitResponse(err.status, orjson.dumps(err.to_body()), headers)


class JitService:
    """The ``POST /jit/v1/logins`` logic over one scimd ``Service``."""

    def __init__(
        self,
        settings: Settings,
        service: Service,
        state: StateStore,
        registry: SchemaRegistry,
    ) -> None:
        self.settings = settings
        self.cfg = settings.jit
        self.service = service
        self.state = state
        self.registry = registry
        self.idps = {i.id: i for i in self.cfg.idp}
        self.keys = {
            i.id: JwksCache(i, self._session)
            for i in self.cfg.idp
            if i.mode == "verify" and i.protocol == "oidc"
        }
        self._http: aiohttp.ClientSession | None = None
        self._logins = KeyedLocks()
        self._idempotency = KeyedLocks()
        self.limiter = RateLimiter(self.cfg.rate_limit, self.cfg.rate_burst)
        """Per-caller and per-IdP token buckets: the rate, the burst and the clock
        (injectable) of the buckets, which live in the state store when it shares them."""

    async def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            # No cookies, no environment proxies: a JWKS fetch talks to the IdP only.
            self._http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def jit_state(self) -> JitStateStore:
        if not isinstance(self.state, JitStateStore):
            raise JitError(503, "state_unavailable", "The state store does not support JIT")
        return self.state

    # ------------------------------------------------------------------ entry point

    async def handle(
        self,
        raw: bytes,
        headers: Mapping[str, str],
        *,
        ip: str | None,
        request_id: str,
        base_url: str,
        peer_cert: bytes | None = None,
    ) -> JitResponse:
        """One login call: authenticate, rate-limit, deduplicate, decide, answer.

        ``peer_cert``: the DER client certificate of the TLS connection (``mtls`` callers)."""
        started = time.monotonic()
        audit = _Audit(ip=ip, tenant=self.settings.auth.default_tenant)
        if not self.cfg.enabled:
            return _problem(JitError(403, "jit_disabled", "JIT provisioning is disabled"))
        try:
            authd = authenticate(headers, raw, self.cfg.callers, time.time(), peer_cert=peer_cert)
        except JitError as err:
            await self._emit_failure("jit.caller.unauthenticated", err, audit, request_id, started)
            return _problem(err)
        audit.caller = authd.caller.id
        try:
            await self._rate_limit("caller", authd.caller.id)
        except JitError as err:
            await self._emit_failure("jit.login.denied", err, audit, request_id, started)
            return _problem(err)
        key = authd.idempotency_key
        if key is None:
            return await self._login(authd, raw, audit, request_id, base_url, started)
        body_sha = hashlib.sha256(raw).hexdigest()
        async with self._idempotency.hold((authd.caller.id, key)):
            try:
                stored = await self.jit_state.get_idempotency(authd.caller.id, key)
            except JitError as unavailable:
                return _problem(unavailable)
            if stored is not None:
                if stored.body_sha256 != body_sha:
                    reused = JitError(
                        409,
                        "idempotency_key_reused",
                        "This webhook-id was already used with a different body",
                    )
                    await self._emit_failure("jit.login.denied", reused, audit, request_id, started)
                    return _problem(reused)
                ctype = PROBLEM_JSON if stored.status >= 400 else _JSON
                return JitResponse(
                    stored.status,
                    stored.response,
                    {"Content-Type": ctype, "Idempotent-Replayed": "true"},
                )
            response = await self._login(authd, raw, audit, request_id, base_url, started)
            if response.status < 500 and response.status != 429:
                expires = datetime.now(UTC) + timedelta(seconds=self.cfg.idempotency_ttl)
                await self.jit_state.put_idempotency(
                    IdempotencyRecord(
                        authd.caller.id, key, body_sha, response.status, response.body, expires
                    )
                )
            return response

    async def _login(
        self,
        authd: AuthenticatedCaller,
        raw: bytes,
        audit: _Audit,
        request_id: str,
        base_url: str,
        started: float,
    ) -> JitResponse:
        try:
            idp, claims = await self._verify(authd.caller, raw, audit)
        except JitError as err:
            kind = "jit.assertion.rejected" if err.status in (422, 503) else "jit.login.denied"
            await self._emit_failure(kind, err, audit, request_id, started)
            return _problem(err)
        try:
            result = await self._decide(authd.caller, idp, claims, audit, request_id)
        except JitError as err:
            await self._emit_failure("jit.login.denied", err, audit, request_id, started)
            return _problem(err)
        event_id = await self._emit_success(result, audit, request_id, started)
        rtype = self._user_type()
        from scimd.http.resources import render_resource

        body = {
            "outcome": result.outcome,
            "user": render_resource(rtype, result.user, base_url),
            "identity": {
                "idp": idp.id,
                "subject": audit.subject,
                "matched_by": result.matched_by,
            },
            "changes": {
                "attributes": sorted(result.changed),
                "groups_added": result.groups_added,
                "groups_removed": result.groups_removed,
            },
            "event_id": event_id,
        }
        status = 201 if result.outcome == "created" else 200
        return JitResponse(status, orjson.dumps(body), {"Content-Type": _JSON})

    async def _rate_limit(self, kind: str, ident: str) -> None:
        """429 ``rate_limited`` with ``Retry-After`` when the ``kind`` bucket is empty.

        The buckets live in the state store when it shares them between processes
        (``RateLimitStore``: every worker and host on one store together allow the
        configured rate), else in this process."""
        limiter = self.limiter
        if not limiter.enabled:
            return
        if isinstance(self.state, RateLimitStore):
            wait = await self.state.take_rate_token(
                f"{kind}:{ident}", limiter.rate, limiter.burst, limiter.clock()
            )
        else:
            wait = limiter.take((kind, ident))
        if wait > 0:
            raise JitError(
                429,
                "rate_limited",
                "Too many login requests; retry later",
                internal=f"{kind} {ident!r} over jit.rate_limit ({self.limiter.rate}/s, "
                f"burst {self.limiter.burst})",
                headers={"Retry-After": RateLimiter.retry_after(wait)},
            )

    # ------------------------------------------------------------------ verification

    async def _verify(
        self, caller: JitCaller, raw: bytes, audit: _Audit
    ) -> tuple[JitIdp, dict[str, Any]]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise JitError(400, "bad_request", "The body is not JSON") from None
        if not isinstance(body, dict):
            raise JitError(400, "bad_request", "The body must be a JSON object")
        idp_id = body.get("idp")
        if not isinstance(idp_id, str) or not idp_id:
            raise JitError(400, "bad_request", "idp is required")
        audit.idp = idp_id
        if idp_id not in caller.allowed_idps or idp_id not in self.idps:
            raise JitError(
                403,
                "caller_not_allowed_for_idp",
                f"Caller {caller.id!r} may not speak for IdP {idp_id!r}",
            )
        idp = self.idps[idp_id]
        audit.tenant = idp.tenant or self.settings.auth.default_tenant
        try:
            await self._rate_limit("idp", idp.id)
        except JitError:
            if isinstance(self.state, RateLimitStore):
                await self.state.refund_rate_token(f"caller:{caller.id}", self.limiter.burst)
            else:
                self.limiter.refund(("caller", caller.id))
            raise
        protocol = body.get("protocol")
        audit.protocol = protocol if isinstance(protocol, str) else None
        if idp.mode == "trusted_claims":
            if protocol != "claims":
                raise JitError(400, "bad_request", 'This IdP takes protocol "claims"')
            claims = body.get("claims")
            if not isinstance(claims, dict):
                raise JitError(400, "bad_request", "claims must be an object")
            sub = claims.get("sub")
            if not isinstance(sub, str) or not sub:
                raise JitError(400, "bad_request", "claims.sub is required")
            audit.subject = sub
            return idp, dict(claims)
        if protocol != idp.protocol:
            raise JitError(400, "bad_request", f'This IdP takes protocol "{idp.protocol}"')
        if idp.protocol == "saml2":
            return idp, await self._verify_saml(idp, body, audit)
        token = body.get("id_token")
        if isinstance(token, str):
            audit.token_id = "sha256:" + token_hash(token)
        verified = await verify_id_token(
            token, body.get("nonce"), idp, self.keys[idp.id], clock_skew=self.cfg.clock_skew
        )
        claims = verified.claims
        audit.subject = claims["sub"]
        audit.token_id = verified.replay_key
        await self._claim_replay(idp, verified.replay_key, verified.expires, "token")
        userinfo = body.get("userinfo")
        if userinfo is not None:
            if not isinstance(userinfo, dict) or userinfo.get("sub") != claims["sub"]:
                raise JitError(400, "bad_request", "userinfo.sub must equal the token's sub")
            # Profile hints only: never identity, email, groups or correlation claims.
            protected = {"sub", "iss", "aud", "email", "email_verified", idp.groups.claim}
            if idp.scim_correlation is not None:
                protected.add(idp.scim_correlation.claim)
            for name, value in userinfo.items():
                if name not in protected and name not in claims:
                    claims[name] = value
        return idp, claims

    async def _claim_replay(self, idp: JitIdp, key: str, expires: float, what: str) -> None:
        """Record a verified token or assertion as used until it expires (shared state:
        every scimd process sees it); a second use is 422 ``assertion_replayed``."""
        until = datetime.fromtimestamp(expires, UTC)
        if not await self.jit_state.claim_replay(f"{idp.id}:{key}", until):
            raise JitError(
                422,
                "assertion_replayed",
                "The identity assertion was rejected",
                internal=f"{what} {key} already used",
            )

    async def _verify_saml(
        self, idp: JitIdp, body: Mapping[str, Any], audit: _Audit
    ) -> dict[str, Any]:
        """SAML 2.0 verify mode (scimd.jit.saml), then the shared replay cache."""
        raw = body.get("saml_response")
        if isinstance(raw, str):
            audit.token_id = "sha256:" + token_hash(raw)
        verified = verify_saml_response(
            body.get("saml_response"),
            body.get("in_response_to"),
            idp,
            clock_skew=self.cfg.clock_skew,
        )
        audit.subject = verified.subject
        audit.token_id = verified.replay_key
        await self._claim_replay(idp, verified.replay_key, verified.expires, "assertion")
        return dict(verified.claims)

    # ------------------------------------------------------------------ decision

    def _user_type(self) -> ResourceType:
        rtype = self.registry.resource_type("User")
        if rtype is None:  # pragma: no cover - User is a builtin resource type
            raise JitError(503, "state_unavailable", "No User resource type")
        return rtype

    def _group_type(self) -> ResourceType | None:
        return self.registry.resource_type("Group")

    async def _decide(
        self,
        caller: JitCaller,
        idp: JitIdp,
        claims: dict[str, Any],
        audit: _Audit,
        request_id: str,
    ) -> _Outcome:
        tenant = audit.tenant
        sub = str(claims["sub"])
        email = self._email(idp, claims)
        audit.email = email.address if email else None
        verified = email is not None and (claims.get("email_verified") is True or idp.trust_email)
        groups_claim = _str_list(claims.get(idp.groups.claim))
        if idp.groups.required and not set(groups_claim) & set(idp.groups.required):
            raise JitError(403, "group_required", "The user is in none of the required groups")
        ctx = self.service.op_context(
            self._user_type(), tenant=tenant, principal=f"jit:{caller.id}", request_id=request_id
        )
        async with self._logins.hold((tenant, idp.id, sub)):
            for attempt in (1, 2):
                try:
                    return await self._decide_once(ctx, idp, claims, sub, email, verified)
                except Uniqueness:
                    # Lost a race (or an unlinked user holds the userName): decide again
                    # once; the winner is then found by link, correlation or email.
                    if attempt == 2:
                        raise JitError(
                            409,
                            "link_requires_confirmation",
                            "A user with this identity already exists and may not be "
                            "linked automatically",
                        ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _email(self, idp: JitIdp, claims: Mapping[str, Any]) -> NormalizedEmail | None:
        raw = claims.get("email")
        if raw is None or raw == "":
            return None
        try:
            return normalize_email(raw, lowercase_local=idp.lowercase_local_part)
        except EmailError as exc:
            raise JitError(400, "bad_request", f"Invalid email claim: {exc}") from None

    async def _decide_once(
        self,
        ctx: OpContext,
        idp: JitIdp,
        claims: dict[str, Any],
        sub: str,
        email: NormalizedEmail | None,
        verified: bool,
    ) -> _Outcome:
        state = self.jit_state
        tenant = ctx.tenant
        rtype = self._user_type()
        user: dict[str, Any] | None = None
        matched_by = ""
        recreate = False
        linked_id = await state.get_identity_link(tenant, idp.id, sub)
        if linked_id is not None:
            try:
                user = await self.service.get(ctx, rtype, linked_id)
                matched_by = "link"
            except NotFound:
                # The linked user is gone: SCIM deleted it.
                if idp.on_deleted != "recreate":
                    raise JitError(403, "user_deleted", "The user was deleted") from None
                await state.remove_tombstone(tenant, linked_id)
                recreate = True
        if user is None and not recreate:
            user, matched_by = await self._correlate(ctx, idp, claims, sub, email, verified)
        if user is None and not recreate:
            keys = _lookup_keys(idp, claims, email)
            dead = await state.find_tombstone(tenant, keys)
            if dead is not None:
                if idp.on_deleted != "recreate":
                    raise JitError(403, "user_deleted", "The user was deleted")
                await state.remove_tombstone(tenant, dead)
        if user is None:
            return await self._create(ctx, idp, claims, sub, email, verified, relink=recreate)
        return await self._update(ctx, idp, claims, sub, user, matched_by)

    async def _correlate(
        self,
        ctx: OpContext,
        idp: JitIdp,
        claims: Mapping[str, Any],
        sub: str,
        email: NormalizedEmail | None,
        verified: bool,
    ) -> tuple[dict[str, Any] | None, str]:
        corr = idp.scim_correlation
        if corr is not None:
            value = claims.get(corr.claim)
            if isinstance(value, str) and value:
                found = await self._find(ctx, [(corr.scim_attribute, value)])
                if len(found) > 1:
                    raise JitError(409, "ambiguous_match", "Several users match this identity")
                if found:
                    await self._check_unlinked(ctx.tenant, idp, sub, found[0])
                    return found[0], "scim_correlation"
        if idp.link_by_email == "never" or email is None or not verified:
            return None, ""
        if idp.link_by_email == "verified_domain_only" and not domain_allowed(
            email.domain, idp.allowed_email_domains, subdomains=idp.allow_subdomains
        ):
            return None, ""
        found = await self._find(
            ctx,
            # Every spelling of the same normalised email (case, IDNA/Unicode, NFC/NFD).
            [("userName", email.address)] + [("emails.value", f) for f in email_forms(email)],
        )
        if len(found) > 1:
            raise JitError(409, "ambiguous_match", "Several users have this email")
        if not found:
            return None, ""
        await self._check_unlinked(ctx.tenant, idp, sub, found[0])
        if await self._email_unverified(ctx.tenant, str(found[0]["id"]), email):
            raise JitError(
                409,
                "link_requires_confirmation",
                "The matching user's email is not verified",
                internal="the email came from a JIT email change (unverified)",
            )
        return found[0], "email"

    async def _mark_unverified(self, tenant: str, uid: str, email: NormalizedEmail) -> None:
        """Remember that ``email`` came to user ``uid`` through a JIT email change: it is
        unverified for link-by-email purposes (another IdP subject is never linked to this
        user through it). Kept by the state store (``EmailMarkStore``: the SQLite store's
        ``jit_email_marks`` table), per (tenant, user, normalised email); a store without
        it keeps the mark among its keyed idempotency records (namespace ``_EMAIL_MARK``)."""
        state = self.jit_state
        if isinstance(state, EmailMarkStore):
            await state.mark_email_unverified(tenant, uid, email.address)
            return
        await state.put_idempotency(
            IdempotencyRecord(
                _EMAIL_MARK,
                _email_mark_key(tenant, uid, email),
                "",
                0,
                b"",
                datetime.now(UTC) + _EMAIL_MARK_TTL,
            )
        )

    async def _email_unverified(self, tenant: str, uid: str, email: NormalizedEmail) -> bool:
        state = self.jit_state
        if isinstance(state, EmailMarkStore):
            return await state.email_unverified(tenant, uid, email.address)
        mark = await state.get_idempotency(_EMAIL_MARK, _email_mark_key(tenant, uid, email))
        return mark is not None

    async def _check_unlinked(
        self, tenant: str, idp: JitIdp, sub: str, user: Mapping[str, Any]
    ) -> None:
        links = await self.jit_state.identity_links_of(tenant, str(user["id"]))
        if any(i == idp.id and s != sub for i, s in links):
            raise JitError(
                409,
                "link_requires_confirmation",
                "The matching user is linked to another subject of this IdP",
            )

    async def _find(self, ctx: OpContext, terms: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        rtype = self._user_type()
        text = " or ".join(f"{attr} eq {orjson.dumps(value).decode()}" for attr, value in terms)
        result = await self.service.query(ctx, rtype, ListParams(filter=text, count=3))
        seen: dict[str, dict[str, Any]] = {}
        for r in result.resources:
            seen.setdefault(str(r.get("id")), r)
        return list(seen.values())

    async def _create(
        self,
        ctx: OpContext,
        idp: JitIdp,
        claims: dict[str, Any],
        sub: str,
        email: NormalizedEmail | None,
        verified: bool,
        *,
        relink: bool,
    ) -> _Outcome:
        if idp.scim_authoritative or not idp.create_users:
            raise JitError(403, "not_provisioned", "The user is not provisioned")
        if idp.allowed_email_domains and (
            email is None
            or not domain_allowed(
                email.domain, idp.allowed_email_domains, subdomains=idp.allow_subdomains
            )
        ):
            raise JitError(403, "domain_not_allowed", "The email domain is not allowed")
        if email is not None and not verified:
            raise JitError(403, "email_unverified", "The email is not verified")
        rtype = self._user_type()
        body: dict[str, Any] = {"schemas": [rtype.schema.id], "active": True}
        for path, claim in idp.attributes.items():
            value = _claim_value(claim, claims, email)
            if value is not None:
                _set_path(body, path, value)
        if email is not None and "emails" not in body:
            body["emails"] = [{"value": email.original, "type": "work", "primary": True}]
        corr = idp.scim_correlation
        if corr is not None and corr.scim_attribute == "externalId" and "externalId" not in body:
            value = claims.get(corr.claim)
            if isinstance(value, str) and value:
                body["externalId"] = value
        if not isinstance(body.get("userName"), str) or not body["userName"]:
            raise JitError(400, "bad_request", "No userName: its mapped claim is missing")
        try:
            user = await self.service.create(ctx, rtype, body)
        except Uniqueness:
            raise
        except ScimError as exc:
            raise JitError(400, "bad_request", f"The mapped user is invalid: {exc}") from None
        uid = str(user["id"])
        winner = await self.jit_state.put_identity_link(
            ctx.tenant, idp.id, sub, uid, replace=relink
        )
        if winner != uid:  # pragma: no cover - another process linked first
            raise Uniqueness("identity already linked")
        added, _removed = await self._groups(ctx, idp, claims, user, created=True)
        if added:
            user = await self.service.get(ctx, rtype, uid)
        changed = [k for k in body if k != "schemas"]
        return _Outcome("created", user, "new", changed, added, [])

    async def _update(
        self,
        ctx: OpContext,
        idp: JitIdp,
        claims: dict[str, Any],
        sub: str,
        user: dict[str, Any],
        matched_by: str,
    ) -> _Outcome:
        rtype = self._user_type()
        uid = str(user["id"])
        reactivate = False
        if user.get("active") is False:
            if idp.on_deprovisioned != "reactivate":
                raise JitError(403, "user_deprovisioned", "The user is deactivated")
            reactivate = True
        outcome = "unchanged"
        if matched_by != "link":
            winner = await self.jit_state.put_identity_link(ctx.tenant, idp.id, sub, uid)
            if winner != uid:
                raise Uniqueness("identity already linked to another user")
            outcome = "linked"
        ops: list[dict[str, Any]] = []
        changed: list[str] = []
        if reactivate:
            ops.append({"op": "replace", "path": "active", "value": True})
            changed.append("active")
        if idp.update_on_login != "never":
            email = self._email(idp, claims)
            for path, claim in idp.attributes.items():
                value = _claim_value(claim, claims, email)
                if value is None:
                    continue
                current = _get_path(user, path)
                if current == value:
                    continue
                owner = idp.owner(path)
                if idp.update_on_login == "owned_attributes" and (
                    owner == "scim" or (owner == "jit_if_empty" and current not in (None, ""))
                ):
                    continue
                ops.append({"op": "replace", "path": path, "value": value})
                changed.append(path)
            new_emails = _email_change(idp, user, email)
            if new_emails is not None:
                ops.append({"op": "replace", "path": "emails", "value": new_emails})
                changed.append("emails")
        if ops:
            try:
                user = await self.service.patch(
                    ctx, rtype, uid, {"schemas": [PATCH_OP_URN], "Operations": ops}, if_match=None
                )
            except Uniqueness:
                if "emails" not in changed:
                    raise
                # The new email (or the userName made of it) belongs to another user: the
                # whole PATCH is refused, nothing about this user changes.
                raise JitError(
                    409,
                    "email_conflict",
                    "The new email belongs to another user",
                    internal="JIT email change refused: the email is another user's",
                ) from None
            if "emails" in changed and email is not None:
                await self._mark_unverified(ctx.tenant, uid, email)
        added, removed = await self._groups(ctx, idp, claims, user, created=False)
        if added or removed:
            user = await self.service.get(ctx, rtype, uid)
        if reactivate:
            outcome = "reactivated"
        elif outcome == "unchanged" and changed:
            outcome = "updated"
        return _Outcome(outcome, user, matched_by, changed, added, removed)

    async def _groups(
        self,
        ctx: OpContext,
        idp: JitIdp,
        claims: Mapping[str, Any],
        user: Mapping[str, Any],
        *,
        created: bool,
    ) -> tuple[list[str], list[str]]:
        cfg = idp.groups
        gtype = self._group_type()
        if cfg.mode == "none" or not cfg.managed or gtype is None:
            return [], []
        if cfg.mode == "assign" and not created:
            return [], []
        claimed = set(_str_list(claims.get(cfg.claim)))
        gctx = self.service.op_context(
            gtype,
            tenant=ctx.tenant,
            principal=ctx.principal,
            request_id=ctx.request_id,
            attributes=("id", "displayName"),
        )
        ids: dict[str, str] = {}
        for name in cfg.managed:
            result = await self.service.query(
                gctx,
                gtype,
                ListParams(
                    filter=f"displayName eq {orjson.dumps(name).decode()}",
                    count=2,
                    attributes=("id", "displayName"),
                ),
            )
            if len(result.resources) == 1:
                ids[name] = str(result.resources[0]["id"])
        current = {str(g.get("value")) for g in user.get("groups") or [] if isinstance(g, dict)}
        uid = str(user["id"])
        added: list[str] = []
        removed: list[str] = []
        for name, gid in ids.items():
            if name in claimed and gid not in current:
                await self.service.patch(
                    gctx,
                    gtype,
                    gid,
                    {
                        "schemas": [PATCH_OP_URN],
                        "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
                    },
                    if_match=None,
                )
                added.append(name)
            elif cfg.mode == "sync" and name not in claimed and gid in current:
                await self.service.patch(
                    gctx,
                    gtype,
                    gid,
                    {
                        "schemas": [PATCH_OP_URN],
                        "Operations": [{"op": "remove", "path": f'members[value eq "{uid}"]'}],
                    },
                    if_match=None,
                )
                removed.append(name)
        return added, removed

    # ------------------------------------------------------------------ audit

    async def _emit_failure(
        self, kind: str, err: JitError, audit: _Audit, request_id: str, started: float
    ) -> None:
        data = audit.data()
        data.update(
            outcome=err.outcome,
            reason=err.reason,
            status=err.status,
            detail=err.internal,
            latency_ms=round((time.monotonic() - started) * 1000, 3),
        )
        await self.service.events.emit(
            make_event(
                kind,
                tenant=audit.tenant,
                actor=f"jit:{audit.caller}" if audit.caller else None,
                request_id=request_id,
                data=data,
            )
        )

    async def _emit_success(
        self, result: _Outcome, audit: _Audit, request_id: str, started: float
    ) -> str:
        uid = str(result.user.get("id"))
        data = audit.data()
        data.update(
            outcome=result.outcome,
            matched_by=result.matched_by,
            groups_added=result.groups_added,
            groups_removed=result.groups_removed,
            latency_ms=round((time.monotonic() - started) * 1000, 3),
        )
        common: dict[str, Any] = {
            "tenant": audit.tenant,
            "resource_type": "User",
            "resource_id": uid,
            "actor": f"jit:{audit.caller}",
            "request_id": request_id,
        }
        events = [make_event("jit.login.accepted", changed=result.changed, data=data, **common)]
        if result.outcome != "unchanged":
            events.append(
                make_event(
                    f"jit.user.{result.outcome}", changed=result.changed, data=data, **common
                )
            )
        if result.groups_added or result.groups_removed:
            events.append(make_event("jit.group.changed", data=data, **common))
        await self.service.events.emit_many(events)
        return events[0].id


# ---------------------------------------------------------------------- helpers

_EMAIL_MARK = "jit:email-unverified"
"""Namespace of the "email set by a JIT change" marks among the keyed state records (a
caller id cannot contain ``:``, so it never collides with an idempotency record)."""
_EMAIL_MARK_TTL = timedelta(days=3650)


def _email_mark_key(tenant: str, uid: str, email: NormalizedEmail) -> str:
    digest = hashlib.sha256(email.address.encode()).hexdigest()
    return f"{tenant}:{uid}:{digest}"


def _primary_index(emails: Sequence[Any]) -> int | None:
    entries = [i for i, e in enumerate(emails) if isinstance(e, dict)]
    for i in entries:
        if emails[i].get("primary") is True:
            return i
    return entries[0] if entries else None


def _email_change(
    idp: JitIdp, user: Mapping[str, Any], email: NormalizedEmail | None
) -> list[dict[str, Any]] | None:
    """The new ``emails`` of an existing user whose email claim changed, or None.

    Only when the ``emails`` attribute is JIT-owned (``ownership.emails = "jit"``, or
    ``jit_if_empty`` and the user has none, or ``update_on_login = "always"``): the primary
    entry (else the first) gets the new address (original spelling), other entries stay,
    a secondary entry equal to the new address is dropped."""
    if email is None or idp.update_on_login == "never":
        return None
    raw = user.get("emails")
    emails: list[Any] = list(raw) if isinstance(raw, list) else []
    index = _primary_index(emails)
    owner = idp.owner("emails")
    if idp.update_on_login == "owned_attributes" and (
        owner == "scim" or (owner == "jit_if_empty" and index is not None)
    ):
        return None
    if index is None:
        return [{"value": email.original, "type": "work", "primary": True}]
    current = emails[index].get("value")
    try:
        if (
            normalize_email(current, lowercase_local=idp.lowercase_local_part).address
            == email.address
        ):
            return None
    except EmailError:
        pass
    out: list[dict[str, Any]] = []
    for i, entry in enumerate(emails):
        if not isinstance(entry, dict):
            continue
        if i == index:
            out.append({**entry, "value": email.original, "primary": True})
            continue
        try:
            same = (
                normalize_email(
                    entry.get("value"), lowercase_local=idp.lowercase_local_part
                ).address
                == email.address
            )
        except EmailError:
            same = False
        if not same:
            out.append(dict(entry))
    return out


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _claim_value(claim: str, claims: Mapping[str, Any], email: NormalizedEmail | None) -> Any:
    if claim == "email":
        return email.address if email is not None else None
    value = claims.get(claim)
    if isinstance(value, str | bool | int) and value != "":
        return value
    return None


def _split(path: str) -> tuple[str | None, list[str]]:
    if path.lower().startswith("urn:"):
        urn, _, attr = path.rpartition(":")
        return urn, attr.split(".")
    return None, path.split(".")


def _set_path(body: dict[str, Any], path: str, value: Any) -> None:
    urn, parts = _split(path)
    target = body.setdefault(urn, {}) if urn else body
    if urn and urn not in body.get("schemas", []):
        body["schemas"].append(urn)
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


def _get_path(resource: Mapping[str, Any], path: str) -> Any:
    urn, parts = _split(path)
    node: Any = resource.get(urn) if urn else resource
    for part in parts:
        if not isinstance(node, Mapping):
            return None
        found = None
        for key, val in node.items():
            if key.lower() == part.lower():
                found = val
                break
        node = found
    return node


def _lookup_keys(
    idp: JitIdp, claims: Mapping[str, Any], email: NormalizedEmail | None
) -> list[str]:
    keys: list[str] = []
    corr = idp.scim_correlation
    if corr is not None and isinstance(claims.get(corr.claim), str):
        keys.append(f"{corr.scim_attribute.lower()}:{claims[corr.claim]}")
    if email is not None:
        keys.append(f"email:{email.address.lower()}")
        keys.append(f"username:{email.address.lower()}")
    return keys


def tombstone_keys(user: Mapping[str, Any]) -> list[str]:
    """The keys under which a deleted user is remembered (see ``_lookup_keys``)."""
    keys: list[str] = []
    if isinstance(user.get("externalId"), str) and user["externalId"]:
        keys.append(f"externalid:{user['externalId']}")
    if isinstance(user.get("userName"), str) and user["userName"]:
        keys.append(f"username:{user['userName'].lower()}")
    for entry in user.get("emails") or []:
        if isinstance(entry, dict):
            try:
                keys.append(f"email:{normalize_email(entry.get('value')).address}")
            except EmailError:
                continue
    return keys


async def record_tombstone(state: object, tenant: str, user: Mapping[str, Any]) -> bool:
    """Remember a User that SCIM is about to delete (``Service.delete`` calls this *before*
    the delete: a delete committed without its tombstone would let an SSO login recreate
    the user). Returns whether one was written (False when the state store keeps none);
    a store that fails raises ``ServiceUnavailable``, and the delete does not go ahead."""
    if not isinstance(state, JitStateStore) or not isinstance(user.get("id"), str):
        return False
    try:
        await state.add_tombstone(tenant, str(user["id"]), tombstone_keys(user))
    except ScimError:
        raise
    except Exception as exc:
        log.exception("could not record the tombstone of user %s", user.get("id"))
        raise ServiceUnavailable(
            "The state store cannot record the deleted user's tombstone; the user is not deleted"
        ) from exc
    return True


async def drop_tombstone(state: object, tenant: str, user_id: str) -> None:
    """Undo ``record_tombstone`` when the delete failed (the user still exists); never
    raises. A tombstone left behind by a crash in between is harmless: a login finds the
    live user first and only consults tombstones when there is none."""
    if not isinstance(state, JitStateStore):
        return
    try:
        await state.remove_tombstone(tenant, user_id)
    except Exception:
        log.exception("could not remove the tombstone of user %s (not deleted)", user_id)


async def forget_deleted(state: object, tenant: str, user_id: str) -> None:
    """After a User's delete: its email marks go; never raises."""
    if not isinstance(state, EmailMarkStore):
        return
    try:
        await state.clear_email_marks(tenant, user_id)
    except Exception:
        log.exception("could not clear the email marks of deleted user %s", user_id)
