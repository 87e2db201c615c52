"""Authentication of API requests, and the audit of refused governed actions.

Credentials are tried in this order (the first one present decides; a bad one is a
401, never a fallback to something weaker):

1. ``Authorization: Bearer rgst_…`` (or ``Basic`` with the token as password, for
   MLflow clients that only speak basic auth);
2. a web session: ``request.scope["state"]["session_user"]`` set by the web layer;
3. the trusted-proxy header (``REGISTA_TRUSTED_PROXY_HEADER``), honoured only from
   ``REGISTA_TRUSTED_PROXY_IPS`` peers, naming an existing user;
4. local single-user mode (``auth_mode=local``, or ``auto`` before the first user):
   the ``local`` actor. Otherwise 401.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
from functools import lru_cache
from typing import Any

from fastapi import Request

from regista.domain.models import Actor
from regista.domain.names import normalize_name
from regista.errors import Forbidden, Unauthenticated
from regista.service.container import Services

log = logging.getLogger("regista.auth")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_AUTH_HEADER = 4096
_HOW = ("pass 'Authorization: Bearer rgst_…' (create a token with `regista tokens create`)")


def _state(request: Request) -> dict[str, Any]:
    state: dict[str, Any] = request.scope.setdefault("state", {})
    return state


def authenticate(request: Request, services: Services) -> Actor:
    """The actor of this request (see module docstring), or :class:`Unauthenticated`."""
    state = _state(request)
    rid = state.get("request_id")
    identity = services.identity
    settings = services.settings
    if settings.auth_mode == "local":
        identity.is_local_mode()  # logs the local-mode warning once
        return identity.local_actor(rid)
    header = request.headers.get("authorization")
    if header is not None:
        actor, token_id = _from_authorization(header, services, rid)
        state["token_id"] = token_id
        return actor
    session_user = state.get("session_user")
    if session_user:
        return identity.actor_for_user(str(session_user), request_id=rid)
    proxy_header = settings.trusted_proxy_header
    if proxy_header:
        value = request.headers.get(proxy_header)
        if value is not None:
            peer = request.client.host if request.client else ""
            if not trusted_peer(peer, tuple(settings.trusted_proxy_ips)):
                raise Unauthenticated(
                    f"header {proxy_header} is only accepted from a trusted proxy",
                    details={"reason": "untrusted_proxy"})
            return identity.actor_for_user(value.strip(), request_id=rid)
    if identity.is_local_mode():
        return identity.local_actor(rid)
    raise Unauthenticated(f"authentication required: {_HOW}", details={"reason": "no_credentials"})


def authenticate_without_io(request: Request, services: Services) -> Actor | None:
    """The local actor when :func:`authenticate` would return it without touching the
    database (local mode, no credentials sent); otherwise None: call ``authenticate``."""
    settings = services.settings
    if settings.auth_mode == "local":
        return authenticate(request, services)
    if settings.auth_mode != "auto" or "authorization" in request.headers:
        return None
    if _state(request).get("session_user"):
        return None
    proxy_header = settings.trusted_proxy_header
    if proxy_header and proxy_header in request.headers:
        return None
    if not services.identity.local_mode_cached():
        return None
    return services.identity.local_actor(_state(request).get("request_id"))


def _from_authorization(header: str, services: Services, rid: str | None) -> tuple[Actor, str]:
    if len(header) > MAX_AUTH_HEADER:
        raise Unauthenticated("Authorization header is too long", details={"reason": "malformed_header"})
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return services.identity.authenticate_token(value, request_id=rid)
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated("malformed basic credentials",
                                  details={"reason": "malformed_header"}) from None
        user, sep, token = decoded.partition(":")
        if not sep:
            raise Unauthenticated("malformed basic credentials", details={"reason": "malformed_header"})
        actor, token_id = services.identity.authenticate_token(token, request_id=rid)
        if user and normalize_name(user) != actor.name:
            raise Unauthenticated("the basic-auth user name does not match the token's principal",
                                  details={"reason": "user_mismatch"})
        return actor, token_id
    raise Unauthenticated(f"unsupported Authorization header: {_HOW}",
                          details={"reason": "malformed_header"})


@lru_cache(maxsize=64)
def _networks(entries: tuple[str, ...]) -> tuple[list[Any], frozenset[str]]:
    nets: list[Any] = []
    names: set[str] = set()
    for e in entries:
        try:
            nets.append(ipaddress.ip_network(e.strip(), strict=False))
        except ValueError:
            names.add(e.strip())  # not an address: matched literally (e.g. a socket name)
    return nets, frozenset(names)


def trusted_peer(peer: str, entries: tuple[str, ...]) -> bool:
    """Whether ``peer`` is one of the trusted proxies (addresses or CIDR networks)."""
    if not peer:
        return False
    nets, names = _networks(entries)
    if peer in names:
        return True
    try:
        addr = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(addr.version == n.version and addr in n for n in nets)


# --------------------------------------------------------------------------- denials


def on_denied(actor: Actor, permission: str, request: Request, *, model: str | None = None) -> None:
    """Audit a refused governed (mutating) request once, in its own transaction.

    Called by the route rule (``api.deps.rule``) and by the Forbidden
    error handler; a marker in the request state keeps it to one event per request.
    Reads are not audited. A failure to audit is logged, never turned into a 500.
    """
    state = _state(request)
    if request.method in SAFE_METHODS or state.get("denial_audited"):
        return
    state["denial_audited"] = True
    services: Services = request.app.state.services
    if model is None and request.url.path.startswith("/api/v1/models/"):
        name = request.path_params.get("name")
        model = normalize_name(name) if isinstance(name, str) and name else None
    try:
        services.identity.record_denial(actor, permission, target=request.url.path, model=model,
                                        detail={"method": request.method})
    except Exception:
        log.exception("could not audit a denied request")


def audit_forbidden(request: Request, exc: Forbidden) -> None:
    """The Forbidden handler's half of :func:`on_denied` (the refused transaction rolled back)."""
    actor = _state(request).get("actor")
    if not isinstance(actor, Actor):
        actor = Actor(name="anonymous", request_id=_state(request).get("request_id"))
    permission = exc.details.get("permission")
    model = exc.details.get("model")
    on_denied(actor, str(permission) if permission else "forbidden", request,
              model=model if isinstance(model, str) else None)
