"""FastAPI dependencies: the shared services, the acting principal, and route rules.

Every route declares its rule with ``dependencies=[rule(...)]``: a permission (checked
coarsely here — the actor must hold it at some scope — and precisely, with the model or
team scope, in the service), or ``PUBLIC`` / ``AUTHENTICATED``. A test walks every route
of the app and fails if one has no rule: authorisation fails closed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from regista.domain.models import Actor
from regista.errors import Forbidden
from regista.service.access import Permission
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
    """Authenticate the request (token, session cookie, trusted proxy, or local mode)."""
    cached = request.scope.get("state", {}).get("actor")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    from regista.api.auth import authenticate

    actor = authenticate(request, services_of(request))
    request.scope.setdefault("state", {})["actor"] = actor
    return actor


def rule(permission: Permission | str) -> Any:
    """The route-level rule (see module docstring)."""

    from regista.api.auth import on_denied

    def check(request: Request) -> None:
        if permission == PUBLIC:
            return
        actor = get_actor(request)  # raises Unauthenticated when credentials are required
        if permission == AUTHENTICATED:
            return
        services = services_of(request)
        if not services.registry.authz.holds_anywhere(actor, Permission(permission)):
            on_denied(actor, str(permission), request)  # a refused action is audited
            raise Forbidden(
                f"{actor.name} does not hold {permission}",
                details={"permission": str(permission)},
            )

    dep = Depends(check)
    setattr(check, RULE_ATTR, str(permission))
    return dep


ServicesDep = Annotated[Services, Depends(get_services)]
ActorDep = Annotated[Actor, Depends(get_actor)]
