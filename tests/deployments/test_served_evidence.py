"""The auditor's answer (version, stage history, applied transitions, approvals) read in one
or two statements agrees, at every instant that matters, with a plain reading of each
table on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from regista.errors import NotFound
from regista.service.container import Services
from regista.service.deployments import (
    INITIAL_STAGE,
    AppliedTransition,
    ApprovalRecord,
    Deployment,
    ServedAnswer,
    StageChange,
)
from regista.store.sql.tables import (
    approvals,
    deployment_events,
    environments,
    models,
    stage_events,
    transition_requests,
    versions,
)
from tests.lifecycle.conftest import COMPLETE, FULL_FILES, LOCAL, ROLES, owned_model, register

US = timedelta(microseconds=1)


def _reference(services: Services, env: str, model: str, at: datetime) -> ServedAnswer:
    """The answer assembled from one simple query per table (what served, then its stage
    changes, then its applied requests, then their votes)."""
    de, t, a, se = deployment_events.c, transition_requests.c, approvals.c, stage_events.c
    with services.db.read() as conn:
        m = conn.execute(sa.select(models).where(models.c.normalized_name == model)).first()
        if m is None:
            raise NotFound(model)
        e = conn.execute(sa.select(environments).where(environments.c.name == env)).one()
        last = conn.execute(
            sa.select(deployment_events)
            .where(de.environment_id == e.id, de.model_id == m.id, de.at <= at)
            .order_by(de.at.desc(), de.id.desc()).limit(1)).first()
        v = (conn.execute(sa.select(versions).where(versions.c.id == last.version_id)).first()
             if last is not None and last.version_id is not None else None)
        if last is None or v is None:
            return ServedAnswer(e.name, m.name, at, None, None, None)
        history = [
            StageChange(s.from_stage, s.to_stage, s.at, s.actor, s.request_id,
                        bool(s.break_glass), s.reason or "")
            for s in conn.execute(sa.select(stage_events)
                                  .where(se.version_id == v.id, se.at <= at)
                                  .order_by(se.at, se.id))
        ]
        requests = list(conn.execute(
            sa.select(transition_requests)
            .where(t.version_id == v.id, t.status == "applied", t.decided_at <= at)
            .order_by(t.decided_at, t.id))) if history else []
        transitions = []
        for r in requests:
            votes = conn.execute(sa.select(approvals).where(a.request_id == r.id)
                                 .order_by(a.at, a.id))
            transitions.append(AppliedTransition(
                r.id, r.from_stage, r.to_stage, r.justification, r.requested_by,
                r.requested_at, r.decided_at, r.policy_version, list(r.checks or []),
                [ApprovalRecord(x.approver, x.decision, x.comment, x.at, x.version_digest)
                 for x in votes]))
        deployment = Deployment(e.name, m.name, v.number, v.digest, v.stage, last.at,
                                last.recorded_by, last.note)
        stage_at = history[-1].to_stage if history else INITIAL_STAGE
        return ServedAnswer(e.name, m.name, at, deployment, stage_at, v.stage, history,
                            transitions)


def _instants(services: Services) -> list[datetime]:
    """Every recorded instant of the story, and the microseconds on each side."""
    out: set[datetime] = set()
    with services.db.read() as conn:
        for col in (deployment_events.c.at, stage_events.c.at, transition_requests.c.decided_at,
                    approvals.c.at):
            for (when,) in conn.execute(sa.select(col).where(col.is_not(None))):
                out |= {when - US, when, when + US}
    return sorted(out)


@pytest.fixture
def people(services: Services) -> dict[str, Any]:
    out = {}
    for name, role in ROLES.items():
        services.identity.create_user(LOCAL, name)
        services.identity.grant_role(LOCAL, name, role)
        out[name] = services.identity.actor_for_user(name)
    return out


def test_served_matches_a_plain_reading(services: Services, people: dict[str, Any]) -> None:
    lc, dep = services.lifecycle, services.deployments
    owned_model(services, "fraud")
    register(services, people["alice"], "fraud", FULL_FILES, metadata=COMPLETE)
    register(services, people["alice"], "fraud", FULL_FILES, metadata=COMPLETE)
    register(services, people["alice"], "churn")
    dep.ensure_environment(LOCAL, "lab", min_stage="registered")
    start = datetime.now(UTC) - timedelta(hours=1)
    dep.record_deployment(LOCAL, "fraud/1", "lab", at=start, note="first")

    # fraud/1: staging at once; one production request rejected, the next approved twice;
    # stepped back to staging with one vote; forced back into production (break-glass).
    assert lc.request_transition(people["alice"], "fraud/1", "staging", "validate").status \
        == "applied"
    rejected = lc.request_transition(people["alice"], "fraud/1", "production", "too early")
    lc.reject(people["bob"], rejected.id, "not yet")
    ship = lc.request_transition(people["alice"], "fraud/1", "production", "ship it")
    lc.approve(people["carol"], ship.id, comment="ok")  # votes in time order, not by name
    assert lc.approve(people["bob"], ship.id).status == "applied"
    back = lc.request_transition(people["alice"], "fraud/1", "staging", "step back")
    assert lc.approve(people["erin"], back.id, comment="agreed").status == "applied"
    lc.break_glass(people["root"], "fraud/1", "production", "incident 42")
    dep.record_deployment(LOCAL, "fraud/2", "lab", note="second")
    dep.end_deployment(LOCAL, "fraud", "lab", note="stopped")
    dep.record_deployment(LOCAL, "fraud/1", "lab", note="rollback")

    instants = [start - US, *_instants(services)]
    checked = 0
    for when in instants:
        for model in ("fraud", "churn"):
            dep._env_cache.clear()  # the first ask of an environment takes the longer way
            cold = dep.served(LOCAL, "lab", model, when)
            warm = dep.served(LOCAL, "lab", model, when)
            expected = _reference(services, "lab", model, when)
            assert cold == warm == expected, (model, when)
            checked += expected.deployment is not None and bool(expected.transitions)
    assert checked >= 5  # the evidence was non-trivial at several instants
    answer = dep.served(LOCAL, "lab", "fraud")
    assert answer.deployment is not None and answer.deployment.note == "rollback"
    assert answer.approvers == ["carol", "bob", "erin"]
    assert [len(t.approvals) for t in answer.transitions] == [0, 2, 1]
    assert answer.stage_history[-1].break_glass and answer.stage_now == "production"

    for cached in (False, True):
        if not cached:
            dep._env_cache.clear()
        with pytest.raises(NotFound, match="ghost"):
            dep.served(LOCAL, "lab", "ghost")
    with pytest.raises(NotFound, match="nowhere"):
        dep.served(LOCAL, "nowhere", "fraud")
