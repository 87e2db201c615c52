"""FastAPI dependencies: the shared services, the acting principal, and route rules.

Every route declares its rule with ``dependencies=[rule(...)]``: a permission (checked
coarsely here — the actor must hold it at some scope — and precisely, with the model or
team scope, in the service), or ``PUBLIC`` / ``AUTHENTICATED``. A test walks every route
of the app and fails if one has no rule: authorisation fails closed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from regista.api.lean import call_blocking
from regista.domain.models import Actor
from regista.errors import Forbidden
from regista.service.access import Permission
from regista.service.authz import is_unrestricted
from regista.service.container import Services

PUBLIC = "public"
AUTHENTICATED = "authenticated"
RULE_ATTR = "regista_rule"


async def get_services(request: Request) -> Services:
    # async: a pure lookup, so FastAPI need not hop to the thread pool for it.
    return services_of(request)


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_actor(request: Request) -> Actor:
    """Authenticate the request (token, session cookie, trusted proxy, or local mode).

    Blocking (it may read the database): for code already off the event loop.
    """
    cached = request.scope.get("state", {}).get("actor")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    from regista.api.auth import authenticate

    actor = authenticate(request, services_of(request))
    request.scope.setdefault("state", {})["actor"] = actor
    return actor


async def current_actor(request: Request) -> Actor:
    """The dependency form of :func:`get_actor`.

    Each hop to the thread pool costs 0.1-0.45 ms of latency, so the actor is resolved
    on the event loop when that needs no I/O (local mode) or when the app runs short
    blocking calls inline (:func:`regista.api.lean.call_blocking`), in one hop otherwise.
    """
    state = request.scope.setdefault("state", {})
    cached = state.get("actor")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    from regista.api.auth import authenticate, authenticate_without_io

    services = services_of(request)
    actor = authenticate_without_io(request, services)
    if actor is None:
        actor = await call_blocking(request, authenticate, request, services)
    state["actor"] = actor
    return actor


def rule(permission: Permission | str) -> Any:
    """The route-level rule (see module docstring)."""

    from regista.api.auth import on_denied

    def resolve_and_check(request: Request) -> None:  # blocking: may read the database
        actor = get_actor(request)  # Unauthenticated when credentials are required
        if permission == AUTHENTICATED:
            return
        services = services_of(request)
        if not services.registry.authz.holds_anywhere(actor, Permission(permission)):
            on_denied(actor, str(permission), request)  # a refused action is audited
            raise Forbidden(
                f"{actor.name} does not hold {permission}",
                details={"permission": str(permission)},
            )

    async def check(request: Request) -> None:
        if permission == PUBLIC:
            return
        # Without a thread hop only when no I/O can be needed: local mode, whose actor
        # holds every permission. Anything else (a token, a session, grants that may
        # have to be loaded) is authenticated and checked in one hop.
        state = request.scope.setdefault("state", {})
        actor = state.get("actor")
        if actor is None:
            from regista.api.auth import authenticate_without_io

            actor = authenticate_without_io(request, services_of(request))
        if actor is not None and (permission == AUTHENTICATED or is_unrestricted(actor)):
            state["actor"] = actor
            return
        await call_blocking(request, resolve_and_check, request)  # a token, the grants: short

    dep = Depends(check)
    setattr(check, RULE_ATTR, str(permission))
    return dep


ServicesDep = Annotated[Services, Depends(get_services)]
ActorDep = Annotated[Actor, Depends(current_actor)]
