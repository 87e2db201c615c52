"""Fixtures of the web UI tests: a small portfolio written through the services.

The history is written under a simulated clock so deployments, approvals and reviews
happen at known instants (the "as of" tests depend on it). User-provided text in it is
hostile on purpose: every page must show it escaped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from regista.domain.models import Actor, PrincipalKind
from regista.service.clock import simulated_time
from regista.service.container import Services
from regista.service.registry import NewFile

PASSWORD = "correct horse battery staple"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>" onmouseover="alert(2)'
HOSTILE_MD = (
    "# Card\n\n<script>alert('card')</script>\n\n<img src=x onerror=alert(3)>\n\n"
    "[click me](javascript:alert(4)) and [docs](https://example.com/docs)\n\n"
    "| metric | value |\n|---|---|\n| auc | 0.91 |\n"
)
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def at(self, when: datetime) -> None:
        self.now = when


@dataclass
class Portfolio:
    """What :func:`seed` wrote, for the tests to look up."""

    services: Services
    actors: dict[str, Actor] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    instants: dict[str, datetime] = field(default_factory=dict)
    pending_request: int = 0
    model: str = "fraud-scorer"
    card_digest: str = ""


def _put(services: Services, actor: Actor, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    services.blobs.put(actor, digest, len(data), iter([data]))
    return digest


def register(services: Services, actor: Actor, model: str, number_hint: int, *,
             hostile: bool = True, parent: str | None = None, **metadata: Any) -> str:
    """Register a version with a model card, an evaluation report and full metadata."""
    text = HOSTILE if hostile else "plain"
    files = {
        "model.bin": (f"weights {model} {number_hint}".encode(), "model", "application/octet-stream"),
        "MODEL_CARD.md": (HOSTILE_MD.encode() if hostile else b"# Card\n", "model_card",
                          "text/markdown"),
        "eval/report.json": (f'{{"auc": 0.9, "note": {text!r}}}'.replace("'", '"').encode(),
                             "eval_report", "application/json"),
    }
    entries = [NewFile(path=p, digest=_put(services, actor, data), size=len(data), role=role,
                       media_type=mt) for p, (data, role, mt) in files.items()]
    doc: dict[str, Any] = {
        "training_data": {"uri": f"s3://data/{text}", "version": "2026-01", "digest": "sha256:ab"},
        "training_code": {"repository": "https://git.example.com/fraud", "commit": "abc123",
                          "dirty": False},
        "parameters": {"depth": number_hint + 2, "note": text},
        "metrics": {"auc": 0.8 + number_hint / 100, "f1": 0.7 + number_hint / 50},
        "environment": {"python": "3.11.9", "packages": {"scikit-learn": "1.5.0"}},
        "framework": "sklearn",
        "intended_use": f"Scoring card payments. {text}",
        "extras": {"hostile": text, "nested": {"deep": text}},
    }
    if parent:
        doc["parent_version"] = parent
    doc.update(metadata)
    version, _ = services.registry.register_version(
        actor, model, files=entries, metadata=doc, description=f"version {number_hint} {text}",
        tags={"team-note": text}, create_model=False)
    return version.ref


def seed(services: Services, clock: Clock) -> Portfolio:
    """Users, two models (one with hostile text everywhere), promotions, deployments,
    a pending request, an overdue review and drift."""
    out = Portfolio(services)
    identity = services.identity
    local = Actor(name="local", local_mode=True)
    clock.at(START)
    identity.create_user(local, "margaret", display_name="Margaret", password=PASSWORD,
                         admin=True)
    admin = identity.actor_for_user("margaret")
    for name, role in (("ada", "contributor"), ("grace", "approver"), ("alan", "approver"),
                       ("vic", "viewer")):
        # Only margaret has a password (hashing is slow on purpose); the others sign in
        # with API tokens, which is the token path of the sign-in form.
        identity.create_user(admin, name, display_name=f"{name} {HOSTILE}"[:200])
        identity.grant_role(admin, name, role)
    identity.create_service_account(admin, "deploy-bot")
    identity.grant_role(admin, "deploy-bot", "contributor")
    actors = {n: identity.actor_for_user(n) for n in ("margaret", "ada", "grace", "alan", "vic")}
    bot = identity.get_principal(admin, "deploy-bot")
    actors["deploy-bot"] = Actor(name=bot.name, kind=PrincipalKind.SERVICE,
                                 principal_id=bot.id)
    out.actors = actors
    ada, grace, alan = actors["ada"], actors["grace"], actors["alan"]
    registry, lifecycle, deployments = services.registry, services.lifecycle, services.deployments

    registry.create_model(ada, "fraud-scorer", description=f"Scores payments. {HOSTILE}",
                          owner_team="risk-team", risk_tier="high", tags={"domain": HOSTILE})
    registry.create_model(ada, "churn", description="Predicts churn.", owner_team="growth",
                          risk_tier="critical")

    def promote(ref: str, stage: str, approvers: tuple[Actor, ...]) -> int:
        request = lifecycle.request_transition(ada, ref, stage, f"please {HOSTILE}")
        for who in approvers[: request.required_approvals or 0]:
            clock.at(clock.now + timedelta(hours=1))
            lifecycle.approve(who, request.id, comment=f"ok {HOSTILE}")
        return int(request.id)

    clock.at(START + timedelta(hours=1))
    v1 = register(services, ada, "fraud-scorer", 1)
    promote(v1, "staging", ())
    clock.at(START + timedelta(days=1))
    promote(v1, "production", (grace, alan))
    clock.at(START + timedelta(days=2))
    deployments.record_deployment(actors["deploy-bot"], v1, "production", note=f"go {HOSTILE}")
    out.instants["v1_live"] = clock.now
    clock.at(START + timedelta(days=10))
    v2 = register(services, ada, "fraud-scorer", 2, parent=v1)
    promote(v2, "staging", ())
    clock.at(START + timedelta(days=11))
    promote(v2, "production", (grace, alan))
    clock.at(START + timedelta(days=12))
    deployments.record_deployment(actors["deploy-bot"], v2, "production", note="v2")
    out.instants["v2_live"] = clock.now
    clock.at(START + timedelta(days=13))
    c1 = register(services, ada, "churn", 1, hostile=False)
    promote(c1, "staging", ())
    deployments.record_deployment(actors["deploy-bot"], c1, "staging")
    clock.at(START + timedelta(days=14))
    request = lifecycle.request_transition(ada, c1, "production", "ready for production")
    out.pending_request = int(request.id)
    # A serving replica reports a digest no version carries.
    clock.at(datetime.now(UTC) - timedelta(minutes=5))
    deployments.report_observation(actors["deploy-bot"], "production",
                                   hashlib.sha256(b"stray build").hexdigest(),
                                   instance=f"pod-{'x' * 5}")
    out.card_digest = hashlib.sha256(HOSTILE_MD.encode()).hexdigest()
    return out


@pytest.fixture
def portfolio(services: Services) -> Iterator[Portfolio]:
    """The seeded portfolio (users exist: requests need a session or token)."""
    clock = Clock(START)
    with simulated_time(clock):
        out = seed(services, clock)
    # Tokens are issued now (outside the simulated past) so they have not expired.
    for name in ("margaret", "ada", "grace", "alan", "vic"):
        out.tokens[name] = services.identity.create_token(
            out.actors[name], name=f"web {HOSTILE}"[:100]).secret
    yield out


def csrf_from(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "page has no CSRF token"
    return m.group(1)


def sign_in(client: TestClient, user: str, password: str = PASSWORD) -> None:
    """Sign in with a password through the form (GET /login for the CSRF cookie, POST)."""
    page = client.get("/login")
    assert page.status_code == 200, page.text
    r = client.post("/login", data={"username": user, "password": password,
                                    "csrf_token": csrf_from(page.text), "next": "/"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text


def sign_in_token(client: TestClient, token: str) -> None:
    """Sign in with an API token through the form."""
    page = client.get("/login")
    r = client.post("/login", data={"token": token, "csrf_token": csrf_from(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303, r.text


def assert_escaped(html: str) -> None:
    """No hostile markup survived: only our own script tag, no injected tags/handlers."""
    assert html.count("<script") == 1, "unexpected <script> in page"
    assert '<script src="/static/htmx.min.js" defer></script>' in html
    assert "<img" not in html
    assert 'onmouseover="alert' not in html
    assert 'href="javascript:' not in html.lower()
