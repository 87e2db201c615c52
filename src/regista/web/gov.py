"""The web UI's view of the governance services (identity, policy, lifecycle, audit,
deployments), in the shapes the templates use.

Each function reads through the service that owns the data and returns plain view
objects. A page section whose service is not configured on this server renders as
"not available" instead of failing, and a section the actor may not read renders as
hidden (``None``) rather than turning the whole page into an error.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from regista.domain.models import Actor, Version
from regista.domain.names import normalize_name
from regista.errors import Forbidden, NotFound, Unavailable
from regista.service.clock import utcnow
from regista.service.container import Services

REQUEST_STATUSES = ("pending", "applied", "rejected", "cancelled", "superseded")


def _svc(services: Services, name: str) -> Any:
    return getattr(services, name, None)


@dataclass(frozen=True, slots=True)
class Available:
    """Which governance services this server runs."""

    identity: bool
    policy: bool
    lifecycle: bool
    audit: bool
    deployments: bool


def available(services: Services) -> Available:
    return Available(*(_svc(services, n) is not None
                       for n in ("identity", "policy", "lifecycle", "audit", "deployments")))


# --------------------------------------------------------------------------- view objects


@dataclass(frozen=True, slots=True)
class Environment:
    name: str
    min_stage: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Deployment:
    """A stretch of time a version of a model served in an environment."""

    environment: str
    model: str
    version: int | None
    start: datetime
    end: datetime | None
    recorded_by: str = ""
    note: str = ""
    stage: str | None = None
    approvers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Drift:
    environment: str
    message: str
    digest: str = ""
    observed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    approver: str
    decision: str
    comment: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    model: str
    number: int
    from_stage: str
    to_stage: str
    justification: str
    status: str
    requested_by: str
    requested_at: datetime
    decided_at: datetime | None
    checks: list[Check]
    approvals: list[Decision]
    required: int | None
    role: str | None
    missing: list[str]


@dataclass(frozen=True, slots=True)
class StageMove:
    from_stage: str | None
    to_stage: str
    at: datetime
    actor: str
    break_glass: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    events: int
    at: datetime
    message: str
    head_seq: int


@dataclass
class Directory:
    users: list[Any] = field(default_factory=list)
    teams: list[Any] = field(default_factory=list)
    services: list[Any] = field(default_factory=list)
    bindings: list[Any] = field(default_factory=list)
    tokens: list[Any] = field(default_factory=list)


# --------------------------------------------------------------------------- identity


def users_exist(services: Services) -> bool:
    identity = _svc(services, "identity")
    if identity is None:
        return False
    return not identity.is_local_mode()


def check_password(services: Services, username: str, password: str) -> str:
    """The user's name if the password is right (else Unauthenticated)."""
    identity = _svc(services, "identity")
    if identity is None:
        raise Unavailable("sign-in is not available on this server")
    actor: Actor = identity.authenticate_password(username, password)
    return actor.name


def check_token(services: Services, token: str) -> str:
    """The principal's name if the token is valid now (else Unauthenticated)."""
    identity = _svc(services, "identity")
    if identity is None:
        raise Unavailable("sign-in is not available on this server")
    actor, _ = identity.authenticate_token(token)
    return str(actor.name)


def whoami(services: Services, actor: Actor) -> Any:
    identity = _svc(services, "identity")
    return identity.whoami(actor) if identity is not None else None


def own_tokens(services: Services, actor: Actor) -> list[Any]:
    identity = _svc(services, "identity")
    if identity is None:
        return []
    return list(identity.list_tokens(actor))


def create_own_token(services: Services, actor: Actor, name: str, days: int) -> str:
    identity = _svc(services, "identity")
    if identity is None:
        raise Unavailable("tokens are not available on this server")
    issued = identity.create_token(actor, name=name or "web", expires_in_days=days)
    return str(issued.secret)


def revoke_own_token(services: Services, actor: Actor, token_id: str) -> None:
    identity = _svc(services, "identity")
    if identity is None:
        raise Unavailable("tokens are not available on this server")
    identity.revoke_token(actor, token_id)


def directory(services: Services, actor: Actor) -> Directory | None:
    identity = _svc(services, "identity")
    if identity is None:
        return None
    from regista.domain.models import PrincipalKind

    out = Directory()
    for p in identity.list_principals(actor):
        {PrincipalKind.USER: out.users, PrincipalKind.TEAM: out.teams}.get(
            p.kind, out.services).append(p)
    out.bindings = list(identity.list_role_bindings(actor))
    out.tokens = list(identity.list_tokens(actor, all_principals=True))
    return out


# --------------------------------------------------------------------------- policy


def policy_rules(services: Services) -> Any:
    """The rules of the policy in force (None when this server runs no policy service)."""
    policy = _svc(services, "policy")
    return policy.current().policy if policy is not None else None


def current_policy(services: Services, actor: Actor) -> Any:
    policy = _svc(services, "policy")
    if policy is None:
        return None
    current, history = policy.show(actor, history_limit=20)
    return {"current": current, "history": history, "doc": current.policy.document}


# --------------------------------------------------------------------------- lifecycle


def _request_view(r: Any) -> Request:
    return Request(
        id=r.id, model=r.model, number=r.version, from_stage=r.from_stage, to_stage=r.to_stage,
        justification=r.justification, status=r.status, requested_by=r.requested_by,
        requested_at=r.requested_at, decided_at=r.decided_at,
        checks=[Check(c.check, c.passed, c.detail) for c in r.checks],
        approvals=[Decision(a.approver, a.decision, a.comment, a.at) for a in r.approvals],
        required=r.required_approvals, role=r.approver_role, missing=list(r.missing()),
    )


def list_requests(services: Services, actor: Actor, status: str, *, limit: int,
                  model: str | None = None) -> list[Request]:
    lifecycle = _svc(services, "lifecycle")
    if lifecycle is None:
        return []
    page = lifecycle.list_requests(actor, status=status, model=model, page_size=limit)
    items = page.items if hasattr(page, "items") else page
    return [_request_view(r) for r in items]


def pending_requests(services: Services, actor: Actor, *, limit: int) -> list[Request]:
    try:
        return list_requests(services, actor, "pending", limit=limit)
    except Forbidden:
        return []


def requests_of_version(services: Services, actor: Actor, version: Version) -> list[Request]:
    """The transition requests of one version, newest first (from its model's latest 200)."""
    lifecycle = _svc(services, "lifecycle")
    if lifecycle is None:
        return []
    try:
        page = lifecycle.list_requests(actor, model=version.model, page_size=200)
    except Forbidden:
        return []
    return [_request_view(r) for r in page.items if r.version == version.number]


def stage_history(services: Services, actor: Actor, version: Version) -> list[StageMove]:
    lifecycle = _svc(services, "lifecycle")
    if lifecycle is None:
        return []
    try:
        events = lifecycle.stage_history(actor, version.ref)
    except Forbidden:
        return []
    return [StageMove(e.from_stage, e.to_stage, e.at, e.actor, e.break_glass, e.reason)
            for e in events]


def decide(services: Services, actor: Actor, request_id: int, decision: str, comment: str) -> None:
    lifecycle = _svc(services, "lifecycle")
    if lifecycle is None:
        raise Unavailable("approvals are not available on this server")
    if decision == "approve":
        lifecycle.approve(actor, request_id, comment=comment)
    else:
        lifecycle.reject(actor, request_id, comment=comment)


# --------------------------------------------------------------------------- deployments

DRIFT_WINDOW = timedelta(days=7)
"""Observations younger than this count for the dashboard's drift report."""
_STRONG_DRIFT = ("mismatch", "unregistered", "unrecorded")


def environments(services: Services, actor: Actor) -> list[Environment]:
    """Environments recorded or declared by the policy."""
    deployments = _svc(services, "deployments")
    if deployments is not None:
        return [Environment(e.name, e.min_stage, e.description)
                for e in deployments.environments(actor)]
    policy = _svc(services, "policy")
    if policy is None:
        return []
    doc = policy.current().policy.document
    return [Environment(e.name, e.min_stage, e.description) for e in doc.environments]


def environment(services: Services, actor: Actor, name: str) -> Environment:
    for env in environments(services, actor):
        if normalize_name(env.name) == normalize_name(name):
            return env
    raise NotFound(f"environment {name!r} not found", details={"environment": name})


def deployed_at(services: Services, actor: Actor, env: str, at: datetime) -> list[Deployment]:
    """What served in ``env`` at ``at``, most recently deployed first."""
    deployments = _svc(services, "deployments")
    if deployments is None:
        return []
    rows = [Deployment(d.environment, d.model, d.version, d.since, None, d.recorded_by, d.note,
                       d.stage) for d in deployments.served_at(actor, env, at)]
    rows.sort(key=lambda d: (d.start, d.model), reverse=True)
    return rows


def _intervals(events: Sequence[Any]) -> list[Deployment]:
    """Serving intervals from deployment events (any order): each lasts until the next
    event of the same model in the same environment."""
    ordered = sorted(events, key=lambda e: (e.at, e.id))
    last: dict[tuple[str, str], int] = {}
    out: list[Deployment] = []
    for e in ordered:
        key = (normalize_name(e.environment), normalize_name(e.model))
        if key in last:
            i = last.pop(key)
            prev = out[i]
            out[i] = Deployment(prev.environment, prev.model, prev.version, prev.start, e.at,
                                prev.recorded_by, prev.note)
        if e.version is not None:
            last[key] = len(out)
            out.append(Deployment(e.environment, e.model, e.version, e.at, None, e.recorded_by,
                                  e.note))
    return out


def environment_history(services: Services, actor: Actor, env: str, *,
                        limit: int) -> list[Deployment]:
    """Serving intervals from the newest ``limit`` events of one environment."""
    deployments = _svc(services, "deployments")
    if deployments is None:
        return []
    page = deployments.timeline(actor, env, page_size=min(limit, deployments.page_max))
    return _intervals(page.items)


def model_deployments(services: Services, actor: Actor, model: str, *,
                      limit: int = 500) -> list[Deployment]:
    """Serving intervals of one model across environments (newest ``limit`` events)."""
    deployments = _svc(services, "deployments")
    if deployments is None:
        return []
    page = deployments.model_history(actor, model, page_size=min(limit, deployments.page_max))
    return _intervals(page.items)


def version_deployments(services: Services, actor: Actor, version: Version) -> list[Deployment]:
    deployments = _svc(services, "deployments")
    if deployments is None:
        return []
    return [Deployment(i.environment, i.model, i.version, i.start, i.end, i.recorded_by)
            for i in deployments.version_deployments(actor, version.ref)]


@dataclass(frozen=True, slots=True)
class Overview:
    """What serves in each environment now, and how the observations differ from it."""

    serving: list[tuple[Environment, list[Deployment], int]]
    drift: list[Drift]


def deployments_overview(services: Services, actor: Actor, *, limit: int) -> Overview:
    """For the dashboard, from one drift report (which already reads what serves now in
    every environment): up to ``limit`` deployments per environment, newest first, with
    who approved each version into its stage; and the drift findings of the last
    :data:`DRIFT_WINDOW`. "Not observed" counts only where a monitor reports at all."""
    deployments = _svc(services, "deployments")
    if deployments is None:
        return Overview([], [])
    from regista.service.portfolio import PortfolioService

    report = deployments.drift(actor, window=DRIFT_WINDOW)
    declared = {normalize_name(e.name): e for e in environments(services, actor)}
    portfolio = PortfolioService(services.db, services.registry.authz, services.registry.hooks)
    serving = []
    findings = []
    reported = set()
    for env in report.environments:
        reported.add(normalize_name(env.environment))
        rows = sorted(env.recorded, key=lambda d: (d.since, d.model), reverse=True)
        shown = rows[:limit]
        approvers = portfolio.approvers(actor, [(d.model, d.version) for d in shown])
        info = declared.get(normalize_name(env.environment),
                            Environment(env.environment, "", ""))
        serving.append((info, [
            Deployment(env.environment, d.model, d.version, d.since, None, d.recorded_by, d.note,
                       d.stage, tuple(approvers.get((d.model, d.version), ())))
            for d in shown], len(rows)))
        monitored = bool(env.observed)
        for item in env.drift:
            if item.kind in _STRONG_DRIFT or monitored:
                findings.append(Drift(env.environment, _drift_message(item), item.digest,
                                      item.last_seen))
    # Environments the policy declares but nothing was ever recorded in.
    serving.extend((e, [], 0) for key, e in declared.items() if key not in reported)
    serving.sort(key=lambda t: t[0].name)
    return Overview(serving, findings)


def _drift_message(item: Any) -> str:
    where = f" on {', '.join(item.instances[:3])}" if item.instances else ""
    if item.kind == "unregistered":
        return f"a build no registered version carries is serving{where}"
    if item.kind == "mismatch":
        return (f"{item.model}/{item.version} is serving{where}, but the record says "
                f"{item.model}/{item.expected_version}")
    if item.kind == "unrecorded":
        return f"{item.model}/{item.version} is serving{where} with no deployment recorded"
    return f"{item.model}/{item.version} is recorded as serving but was not observed"


# --------------------------------------------------------------------------- audit


def audit_events(services: Services, actor: Actor, *, model: str | None, version: int | None,
                 who: str | None, action: str | None, outcome: str | None,
                 since: datetime | None, until: datetime | None, cursor: str | None,
                 page_size: int = 50) -> tuple[list[Any], str | None]:
    audit = _svc(services, "audit")
    if audit is None:
        return [], None
    from regista.service.audit import make_filter

    f = make_filter(model=model, version=version, actor=who, action=action, outcome=outcome,
                    since=since, until=until)
    page = audit.list_events(actor, f, page_size=page_size, cursor=cursor)
    return list(page.items), page.next_cursor


def audit_of_version(services: Services, actor: Actor, version: Version) -> list[Any] | None:
    """This version's audit events (newest first), or None if the actor may not read them."""
    try:
        events, _ = audit_events(services, actor, model=version.model, version=version.number,
                                 who=None, action=None, outcome=None, since=None, until=None,
                                 cursor=None, page_size=20)
    except Forbidden:
        return None
    return events


_verify_lock = threading.Lock()


def verify_audit(services: Services, actor: Actor) -> Verification:
    """Verify the whole chain now and remember the outcome for the audit page."""
    audit = _svc(services, "audit")
    if audit is None:
        raise Unavailable("audit verification is not available on this server")
    result = audit.verify(actor)
    if result.ok:
        message = f"The chain verifies: {result.events} events up to #{result.head_seq}."
    else:
        bad = result.first_bad
        message = f"The chain does NOT verify: {bad.message}" if bad else "The chain does NOT verify."
    outcome = Verification(result.ok, result.events, utcnow(), message, result.head_seq)
    with _verify_lock:
        services.extra["web_last_verification"] = outcome
    return outcome


def last_verification(services: Services) -> Verification | None:
    value = services.extra.get("web_last_verification")
    return value if isinstance(value, Verification) else None

