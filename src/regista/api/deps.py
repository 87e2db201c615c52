"""FastAPI dependencies: the shared services and the acting principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from regista.domain.models import Actor
from regista.service.container import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_actor(request: Request) -> Actor:
    """Authenticate the request (token, session cookie, trusted proxy, or local mode)."""
    from regista.api.auth import authenticate

    return authenticate(request, get_services(request))


ServicesDep = Annotated[Services, Depends(get_services)]
ActorDep = Annotated[Actor, Depends(get_actor)]
