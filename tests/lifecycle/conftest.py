"""Builders for lifecycle tests: real users with real roles, versions made through the services."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from regista.domain.models import Actor, Version
from regista.service.container import Services
from regista.service.registry import NewFile
from regista.store.sql.tables import audit_events

LOCAL = Actor(name="local", local_mode=True)

COMPLETE = {
    "intended_use": "Score card transactions for fraud in the EU",
    "training_code": {"repository": "git@example/fraud", "commit": "deadbeef"},
    "metrics": {"auc": 0.91, "f1": 0.7},
}
FULL_FILES = {
    "model.bin": (b"weights", "model"),
    "card.md": (b"# Model card", "model_card"),
    "eval.json": (b'{"auc": 0.91}', "eval_report"),
}

# A small policy for focused tests: one approval to production, archive what it supersedes.
ONE_APPROVAL = """\
stages:
  - registered
  - staging
  - name: production
    single_in_stage: true
  - archived
transitions:
  - {from: registered, to: staging}
  - from: staging
    to: production
    approvals: {count: 1, role: approver}
    archive_superseded: true
  - {from: production, to: archived, approvals: {count: 1}}
  - {from: registered, to: archived}
  - {from: staging, to: archived}
"""


@dataclass
class People:
    """Users with roles: alice/frank contribute, bob/carol/erin approve, paula does both,
    dave maintains, vic views, root administers."""

    actors: dict[str, Actor] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Actor:
        try:
            return self.__dict__["actors"][name]
        except KeyError:
            raise AttributeError(name) from None

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


ROLES = {"root": "admin", "alice": "contributor", "frank": "contributor", "bob": "approver",
         "carol": "approver", "erin": "approver", "dave": "maintainer", "vic": "viewer",
         "paula": "contributor"}


@pytest.fixture
def people(services: Services) -> People:
    out = People()
    for name, role in ROLES.items():
        services.identity.create_user(LOCAL, name)
        services.identity.grant_role(LOCAL, name, role)
        if name == "paula":
            services.identity.grant_role(LOCAL, name, "approver")
        out.tokens[name] = services.identity.create_token(LOCAL, name="t", principal=name).secret
        out.actors[name] = services.identity.actor_for_user(name)
    return out


def register(
    services: Services,
    actor: Actor,
    model: str,
    files: dict[str, tuple[bytes, str]] | None = None,
    *,
    metadata: dict[str, Any] | None = None,
) -> Version:
    """Upload the files and register a version (creating the model when needed)."""
    files = files if files is not None else {"model.bin": (b"weights-" + model.encode(), "model")}
    entries = []
    for path, (data, role) in files.items():
        digest = hashlib.sha256(data).hexdigest()
        services.blobs.put(actor, digest, len(data), [data])
        entries.append(NewFile(path=path, digest=digest, size=len(data), role=role))
    version, _ = services.registry.register_version(actor, model, files=entries,
                                                    metadata=metadata or {}, create_model=True)
    return version


def owned_model(services: Services, name: str, *, team: str = "risk-team",
                tier: str | None = None) -> None:
    """Create a model with an owner team (production needs one in the default policy)."""
    services.registry.create_model(LOCAL, name, owner_team=team, risk_tier=tier)


def audit_rows(services: Services, **where: Any) -> list[Any]:
    q = sa.select(audit_events).order_by(audit_events.c.seq)
    for k, v in where.items():
        q = q.where(audit_events.c[k] == v)
    with services.db.read() as conn:
        return list(conn.execute(q))


def stage_of(services: Services, ref: str) -> str:
    return services.registry.get_version(LOCAL, ref).stage
