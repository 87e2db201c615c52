"""Authentication of API requests. Until users exist the registry runs in local mode."""

from __future__ import annotations

from fastapi import Request

from regista.domain.models import Actor
from regista.service.container import Services


def authenticate(request: Request, services: Services) -> Actor:
    rid = request.scope.get("state", {}).get("request_id")
    return Actor(name="local", local_mode=True, request_id=rid)
