"""Helpers for identity and access tests: principals, roles and tokens made through the service."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from regista.config import Settings
from regista.domain.models import Actor
from regista.service.container import Services, build_services
from regista.store.sql.tables import audit_events

LOCAL = Actor(name="local", local_mode=True)
PASSWORD = "correct horse battery staple"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add_user(services: Services, name: str, *, role: str | None = None, model: str | None = None,
             team: str | None = None, password: str | None = None,
             scopes: list[str] | None = None, models: list[str] | None = None) -> str:
    """Create a user (optionally with one role binding) and return a fresh API token for it."""
    services.identity.create_user(LOCAL, name, password=password)
    if role is not None:
        services.identity.grant_role(LOCAL, name, role, model=model, team=team)
    return services.identity.create_token(LOCAL, name="test", principal=name, scopes=scopes,
                                          models=models).secret


def audit_rows(services: Services, **where: Any) -> list[Any]:
    """Audit events matching column == value filters, in chain order."""
    q = sa.select(audit_events).order_by(audit_events.c.seq)
    for k, v in where.items():
        q = q.where(audit_events.c[k] == v)
    with services.db.read() as conn:
        return list(conn.execute(q))


@pytest.fixture
def make_services(settings: Settings) -> Iterator[Any]:
    """Build extra Services on the same database (another "server process"), closed after."""
    built: list[Services] = []

    def make(**overrides: Any) -> Services:
        svc = build_services(settings.model_copy(update=overrides))
        built.append(svc)
        return svc

    yield make
    for svc in built:
        svc.close()


@pytest.fixture
def make_client(make_services: Any) -> Iterator[Any]:
    """An in-process client on a new app built with settings overrides."""
    from regista.api.app import create_app

    clients: list[TestClient] = []

    def make(*, client: tuple[str, int] = ("testclient", 50000), **overrides: Any) -> TestClient:
        svc = make_services(**overrides)
        c = TestClient(create_app(services=svc), raise_server_exceptions=False, client=client)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)
