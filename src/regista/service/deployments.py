"""Environments, deployment history and observed state: every rule of "what served where".

A deployment is an append-only event: "from ``at``, model M serves version V in
environment E"; the next event of the same (E, M) ends it (an *end* event names no
version). Because history is only ever appended, any past instant can be answered
exactly: what served in E at T is, per model, the last event at or before T.

Serving systems report what they actually run (observations: a version digest seen in
E at T); the drift report compares that with the recorded state.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Row

from regista.domain.models import Actor, Page
from regista.domain.names import normalize_name, validate_digest, validate_name
from regista.errors import Conflict, Forbidden, Invalid, InvalidCursor, NotFound
from regista.service import audit
from regista.service.access import Authorizer, Permission
from regista.service.clock import utcnow
from regista.service.policy import PolicyService
from regista.service.registry import RegistryService
from regista.store.sql import deployments as dq
from regista.store.sql import registry as rq
from regista.store.sql.engine import Database

#: How far ahead of the server's clock a reported time may be (clock skew of the reporter).
FUTURE_SKEW = timedelta(seconds=5)
DEFAULT_STAGES = ("registered", "staging", "production", "archived")
DEFAULT_ARCHIVE = "archived"
MAX_NOTE = 2_000
MAX_INSTANCE = 255
MAX_DESCRIPTION = 2_000
DEFAULT_DRIFT_WINDOW = timedelta(hours=1)
#: Every version is registered in this stage (see RegistryService.register_version).
INITIAL_STAGE = "registered"


# --------------------------------------------------------------------------- domain


@dataclass(frozen=True, slots=True)
class Environment:
    name: str
    min_stage: str
    description: str
    created_at: datetime | None  # None: declared by the policy, nothing recorded there yet


@dataclass(frozen=True, slots=True)
class DeploymentEvent:
    """One entry of the history: ``version`` None means the model stopped serving."""

    id: int
    environment: str
    model: str
    version: int | None
    previous_version: int | None
    at: datetime
    recorded_at: datetime
    recorded_by: str
    note: str

    @property
    def kind(self) -> str:
        return "end" if self.version is None else "deploy"


@dataclass(frozen=True, slots=True)
class Deployment:
    """A version serving in an environment (as of some instant), since when, on whose word."""

    environment: str
    model: str
    version: int
    digest: str
    stage: str
    since: datetime
    recorded_by: str
    note: str


@dataclass(frozen=True, slots=True)
class ServingInterval:
    """One stretch of time a version served somewhere: ``[start, end)``; end None: still."""

    environment: str
    model: str
    version: int
    start: datetime
    end: datetime | None
    recorded_by: str
    ended_by: str | None


@dataclass(frozen=True, slots=True)
class Observation:
    id: int
    environment: str
    digest: str
    observed_at: datetime
    reported_by: str
    instance: str


@dataclass(frozen=True, slots=True)
class DriftItem:
    """One difference between recorded and observed state.

    ``kind``: ``mismatch`` (the model serves another version than recorded),
    ``not_observed`` (recorded, but no fresh observation of its digest), ``unregistered``
    (a digest no version carries is serving), ``unrecorded`` (a registered version serves
    where no deployment of its model is recorded).
    """

    kind: str
    digest: str
    model: str | None = None
    version: int | None = None
    expected_version: int | None = None
    expected_digest: str | None = None
    instances: tuple[str, ...] = ()
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class ObservedDigest:
    digest: str
    instances: tuple[str, ...]
    last_seen: datetime
    reports: int
    versions: tuple[str, ...]  # refs of registered versions with this digest


@dataclass(frozen=True, slots=True)
class EnvironmentDrift:
    environment: str
    in_sync: bool
    recorded: list[Deployment]
    observed: list[ObservedDigest]
    drift: list[DriftItem]


@dataclass(frozen=True, slots=True)
class DriftReport:
    generated_at: datetime
    window: timedelta
    environments: list[EnvironmentDrift]


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    approver: str
    decision: str
    comment: str
    at: datetime
    version_digest: str


@dataclass(frozen=True, slots=True)
class AppliedTransition:
    """A transition request that moved the version, with its evidence and approvals."""

    request_id: int
    from_stage: str
    to_stage: str
    justification: str
    requested_by: str
    requested_at: datetime
    decided_at: datetime | None
    policy_version: int
    checks: list[dict[str, Any]]
    approvals: list[ApprovalRecord]


@dataclass(frozen=True, slots=True)
class StageChange:
    from_stage: str | None
    to_stage: str
    at: datetime
    actor: str
    request_id: int | None
    break_glass: bool
    reason: str


@dataclass(frozen=True, slots=True)
class ServedAnswer:
    """The auditor's question in one answer: which version served, who approved it, on what
    evidence. ``deployment`` is None when the model was not serving there at ``at``."""

    environment: str
    model: str
    at: datetime
    deployment: Deployment | None
    stage_at: str | None  # the version's stage at ``at``
    stage_now: str | None
    stage_history: list[StageChange] = field(default_factory=list)
    transitions: list[AppliedTransition] = field(default_factory=list)

    @property
    def approvers(self) -> list[str]:
        return list(dict.fromkeys(a.approver for t in self.transitions for a in t.approvals
                                  if a.decision == "approve"))


# --------------------------------------------------------------------------- helpers


def _encode_cursor(at: datetime, eid: int, descending: bool) -> str:
    raw = orjson.dumps({"t": audit.iso(at), "i": eid, "d": descending})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, descending: bool) -> tuple[datetime, int]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at = datetime.fromisoformat(data["t"].replace("Z", "+00:00"))
        eid, desc = data["i"], data["d"]
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error):
        raise InvalidCursor("cursor is not valid", details={"field": "cursor"}) from None
    if not isinstance(eid, int) or desc is not descending or at.tzinfo is None:
        raise InvalidCursor("cursor does not belong to this listing", details={"field": "cursor"})
    return at, eid


def _note(note: str | None) -> str:
    note = note or ""
    if len(note) > MAX_NOTE:
        raise Invalid(f"note is longer than {MAX_NOTE} characters", details={"field": "note"})
    return note


def _event(r: Row[Any]) -> DeploymentEvent:
    return DeploymentEvent(
        id=int(r.id), environment=r.environment, model=r.model_name, version=r.number,
        previous_version=r.previous_number, at=r.at, recorded_at=r.recorded_at,
        recorded_by=r.recorded_by, note=r.note,
    )


def _deployment(env: str, r: Row[Any]) -> Deployment:
    return Deployment(environment=env, model=r.model_name, version=int(r.number), digest=r.digest,
                      stage=r.stage, since=r.at, recorded_by=r.recorded_by, note=r.note)


def _deployments(env: str, rows: Iterable[Sequence[Any]],
                 readable: Callable[[str], bool]) -> list[Deployment]:
    """Rows of :func:`dq.served_at` as deployments, by model name. Rows are unpacked as
    tuples: reading seven columns by name costs more than building the Deployment."""
    out = [Deployment(env, model, number, digest, stage, since, by, note)
           for model, number, digest, stage, since, by, note in rows if readable(model)]
    out.sort(key=_model_of)
    return out


def _model_of(d: Deployment) -> str:
    return d.model


def _transitions(rows: list[Row[Any]]) -> list[AppliedTransition]:
    """Applied transitions from rows of requests joined with their approvals (in order)."""
    out: list[AppliedTransition] = []
    for t in rows:
        if not out or out[-1].request_id != t.id:
            out.append(AppliedTransition(
                request_id=int(t.id), from_stage=t.from_stage, to_stage=t.to_stage,
                justification=t.justification, requested_by=t.requested_by,
                requested_at=t.requested_at, decided_at=t.decided_at,
                policy_version=int(t.policy_version), checks=list(t.checks or []),
                approvals=[]))
        if t.approval_id is not None:
            out[-1].approvals.append(ApprovalRecord(t.approver, t.decision, t.comment,
                                                    t.approval_at, t.version_digest))
    return out


@dataclass(frozen=True, slots=True)
class _EnvRef:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class _Rules:
    stages: tuple[str, ...]
    archive_stage: str | None
    environments: tuple[tuple[str, str, str], ...]  # (name, min_stage, description)

    def meets_minimum(self, stage: str, minimum: str) -> bool:
        if stage == self.archive_stage or stage not in self.stages or minimum not in self.stages:
            return False
        return self.stages.index(stage) >= self.stages.index(minimum)


# --------------------------------------------------------------------------- service


class DeploymentService:
    """Record deployments, answer "as of" questions, take observations, report drift."""

    def __init__(
        self, db: Database, authz: Authorizer, registry: RegistryService,
        policy: PolicyService | None = None, *, page_default: int = 50, page_max: int = 500,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.authz = authz
        self.registry = registry
        self.policy = policy
        self.page_default = page_default
        self.page_max = page_max
        self.clock = clock
        self._env_cache: dict[str, _EnvRef] = {}

    # ------------------------------------------------------------------ rules

    def _rules(self, conn: Connection) -> _Rules:
        """Stage order and declared environments from the current policy (exact, in ``conn``)."""
        if self.policy is None:
            return _Rules(DEFAULT_STAGES, DEFAULT_ARCHIVE, ())
        p = self.policy.current(conn).policy
        envs = tuple((e.name, e.min_stage, e.description) for e in p.document.environments)
        return _Rules(tuple(p.stages), p.archive_stage, envs)

    def _environment(self, conn: Connection, name: str, *, materialize: bool) -> Row[Any]:
        """The environment row; one the policy declares but the table lacks is created when
        ``materialize`` (the embedded default policy is never "applied", so nothing synced
        its environments), else reported missing."""
        validate_name(name, what="environment name")
        row = dq.environment_row(conn, name)
        if row is not None:
            return row
        rules = self._rules(conn)
        declared = next((e for e in rules.environments
                         if normalize_name(e[0]) == normalize_name(name)), None)
        if declared is None:
            known = sorted({r.name for r in dq.environment_rows(conn)}
                           | {e[0] for e in rules.environments})
            raise NotFound(f"environment {name!r} does not exist"
                           + (f" (known: {', '.join(known)})" if known else ""),
                           details={"environment": name, "known": known[:50]})
        if not materialize:
            raise _NotYetUsed(declared)
        dq.insert_environment(conn, {"name": declared[0], "min_stage": declared[1],
                                     "description": declared[2], "created_at": self.clock()})
        created = dq.environment_row(conn, declared[0])
        assert created is not None
        return created

    def _env_ref(self, conn: Connection, name: str) -> _EnvRef:
        """(id, name) of an environment for read paths, cached per process: environments
        are never deleted or renamed, so a found id stays right (their minimum stage is
        not cached; writes read it fresh)."""
        hit = self._env_cache.get(name)
        if hit is not None:
            return hit
        row = self._environment(conn, name, materialize=False)
        ref = _EnvRef(int(row.id), row.name)
        if len(self._env_cache) < 10_000:
            self._env_cache[name] = ref
        return ref

    def _check_time(self, at: datetime | None, now: datetime, what: str = "at") -> datetime:
        if at is None:
            return now
        if at.tzinfo is None:
            raise Invalid(f"{what} has no time zone", details={"field": what})
        if at > now + FUTURE_SKEW:
            raise Invalid(
                f"{what} {audit.iso(at)} is in the future (server time {audit.iso(now)}); "
                "deployments and observations are recorded when they happen",
                details={"field": what, "rule": "no_future_times"},
            )
        return at

    def _readable(self, actor: Actor) -> Callable[[str], bool]:
        """Which models ``actor`` may see in an environment-wide answer."""
        try:
            self.authz.require(actor, Permission.MODEL_READ)
            return _everything
        except Forbidden:
            if not self.authz.holds_anywhere(actor, Permission.MODEL_READ):
                raise
        seen: dict[str, bool] = {}

        def allowed(model: str) -> bool:
            key = normalize_name(model)
            if key not in seen:
                try:
                    self.authz.require(actor, Permission.MODEL_READ, model=key)
                    seen[key] = True
                except Forbidden:
                    seen[key] = False
            return seen[key]

        return allowed

    def _model_row(self, conn: Connection, name: str) -> Row[Any]:
        validate_name(name)
        row = rq.model_row(conn, normalize_name(name))
        if row is None:
            raise NotFound(f"model {name!r} not found", details={"model": name})
        return row

    # ------------------------------------------------------------------ environments

    def environments(self, actor: Actor) -> list[Environment]:
        """Every environment: those recorded, plus those the policy declares."""
        if not self.authz.holds_anywhere(actor, Permission.MODEL_READ):
            self.authz.require(actor, Permission.MODEL_READ)  # raises, naming the permission
        with self.db.read() as conn:
            out = {normalize_name(r.name): Environment(r.name, r.min_stage, r.description,
                                                       r.created_at)
                   for r in dq.environment_rows(conn)}
            for name, min_stage, desc in self._rules(conn).environments:
                out.setdefault(normalize_name(name), Environment(name, min_stage, desc, None))
        return sorted(out.values(), key=lambda e: e.name)

    def ensure_environment(self, actor: Actor, name: str, *, min_stage: str,
                           description: str = "") -> tuple[Environment, bool]:
        """Create an environment, or update its minimum stage and description (audited).

        Environments normally come from the policy; this is for administrators and tests.
        Returns (environment, created).
        """
        validate_name(name, what="environment name")
        self.authz.require(actor, Permission.ENVIRONMENT_MANAGE)
        if len(description or "") > MAX_DESCRIPTION:
            raise Invalid(f"description is longer than {MAX_DESCRIPTION} characters",
                          details={"field": "description"})
        with self.db.write() as conn:
            rules = self._rules(conn)
            deployable = [s for s in rules.stages if s != rules.archive_stage]
            if min_stage not in deployable:
                raise Invalid(f"min_stage {min_stage!r} is not a deployable stage of the policy "
                              f"({', '.join(deployable)})", details={"field": "min_stage"})
            now = self.clock()
            row = dq.environment_row(conn, name)
            if row is None:
                dq.insert_environment(conn, {"name": name, "min_stage": min_stage,
                                             "description": description or "", "created_at": now})
                audit.append(conn, actor, "environment.create", at=now, target=name,
                             after={"min_stage": min_stage, "description": description or ""})
                return Environment(name, min_stage, description or "", now), True
            before = {"min_stage": row.min_stage, "description": row.description}
            after = {"min_stage": min_stage, "description": description or ""}
            if before != after:
                dq.update_environment(conn, row.id, after)
                audit.append(conn, actor, "environment.update", at=now, target=row.name,
                             before=before, after=after)
            return Environment(row.name, min_stage, description or "", row.created_at), False

    # ------------------------------------------------------------------ recording

    def record_deployment(
        self, actor: Actor, ref: str, environment: str, *, at: datetime | None = None,
        note: str = "",
    ) -> tuple[DeploymentEvent, bool]:
        """Record that ``ref`` (``model/7`` or ``model@alias``) serves in ``environment``
        from ``at`` (default: now). Returns (event, created).

        Refused: a version below the environment's minimum stage (or archived), a time in
        the future, and a time before the latest event of that model in that environment
        (history is append-only). Recording the version that already serves there is a
        no-op that returns the standing event.
        """
        note = _note(note)
        given = self._check_time(at, self.clock()) if at is not None else None
        with self.db.write() as conn:
            env = self._environment(conn, environment, materialize=True)
            vid = self.registry.resolve(conn, ref)
            v = dq.version_context(conn, vid)
            assert v is not None
            self.authz.require(actor, Permission.DEPLOYMENT_RECORD, model=v.normalized_name,
                               team=v.owner_team)
            rules = self._rules(conn)
            if not rules.meets_minimum(v.stage, env.min_stage):
                why = ("archived versions cannot be deployed" if v.stage == rules.archive_stage
                       else f"environment {env.name!r} requires stage {env.min_stage!r} or later "
                            f"(order: {' < '.join(s for s in rules.stages if s != rules.archive_stage)})")
                raise Conflict(
                    f"{v.model_name}/{v.number} is in stage {v.stage!r}: {why}",
                    details={"rule": "min_stage", "environment": env.name,
                             "min_stage": env.min_stage, "stage": v.stage,
                             "version": f"{v.model_name}/{v.number}"},
                )
            dq.lock_environment_model(conn, env.id, v.model_id)
            last = dq.latest_event(conn, env.id, v.model_id)
            now, at = self._event_time(given, last)
            self._check_append_only(last, at, v.model_name, env.name)
            if last is not None and last.version_id == vid:
                return self._load_event(conn, int(last.id)), False
            prev_number = None
            if last is not None and last.version_id is not None:
                prev = dq.version_context(conn, last.version_id)
                prev_number = prev.number if prev is not None else None
            eid = dq.insert_event(conn, {
                "environment_id": env.id, "model_id": v.model_id, "version_id": vid, "at": at,
                "recorded_at": now, "recorded_by": actor.name, "note": note,
            })
            audit.append(conn, actor, "deployment.record", at=now, model=v.normalized_name,
                         version=v.number, target=env.name, before={"version": prev_number},
                         after={"version": v.number, "at": audit.iso(at), "note": note})
            return self._load_event(conn, eid), True

    def end_deployment(
        self, actor: Actor, model: str, environment: str, *, at: datetime | None = None,
        note: str = "",
    ) -> DeploymentEvent:
        """Record that ``model`` stopped serving in ``environment`` at ``at`` (default: now)."""
        note = _note(note)
        given = self._check_time(at, self.clock()) if at is not None else None
        with self.db.write() as conn:
            env = self._environment(conn, environment, materialize=True)
            m = self._model_row(conn, model)
            self.authz.require(actor, Permission.DEPLOYMENT_RECORD, model=m.normalized_name,
                               team=m.owner_team)
            dq.lock_environment_model(conn, env.id, m.id)
            last = dq.latest_event(conn, env.id, m.id)
            if last is None or last.version_id is None:
                raise Conflict(f"model {m.name!r} is not serving in {env.name!r}",
                               details={"rule": "not_serving", "model": m.name,
                                        "environment": env.name})
            now, at = self._event_time(given, last)
            self._check_append_only(last, at, m.name, env.name)
            prev = dq.version_context(conn, last.version_id)
            eid = dq.insert_event(conn, {
                "environment_id": env.id, "model_id": m.id, "version_id": None, "at": at,
                "recorded_at": now, "recorded_by": actor.name, "note": note,
            })
            audit.append(conn, actor, "deployment.end", at=now, model=m.normalized_name,
                         version=prev.number if prev is not None else None, target=env.name,
                         before={"version": prev.number if prev is not None else None},
                         after={"version": None, "at": audit.iso(at), "note": note})
            return self._load_event(conn, eid)

    def _event_time(self, given: datetime | None,
                    last: Row[Any] | None) -> tuple[datetime, datetime]:
        """(recorded_at, at) of a new event; ``at`` defaults to now, read under the (E, M) lock.

        Reading the clock after the lock orders concurrent "now" recordings the way they
        commit; if another server's clock ran slightly ahead, "now" is the latest event's
        instant rather than a refusal.
        """
        now = self.clock()
        if given is not None:
            return now, given
        if last is not None and last.at > now:
            return now, last.at
        return now, now

    @staticmethod
    def _check_append_only(last: Row[Any] | None, at: datetime, model: str, env: str) -> None:
        if last is not None and at < last.at:
            raise Conflict(
                f"deployment history is append-only: the latest event of {model!r} in {env!r} "
                f"is at {audit.iso(last.at)}, so a new event cannot be dated {audit.iso(at)}",
                details={"rule": "append_only", "latest_at": audit.iso(last.at),
                         "at": audit.iso(at)},
            )

    def _load_event(self, conn: Connection, eid: int) -> DeploymentEvent:
        row = dq.event_by_id(conn, eid)
        assert row is not None
        return _event(row)

    # ------------------------------------------------------------------ as of

    def served_at(self, actor: Actor, environment: str,
                  at: datetime | None = None) -> list[Deployment]:
        """What served in ``environment`` at ``at`` (default: now), one entry per model."""
        readable = self._readable(actor)
        when = at or self.clock()
        with self.db.read() as conn:
            try:
                env = self._env_ref(conn, environment)
            except _NotYetUsed:
                return []
            rows = dq.served_at(conn, env.id, when)
        return _deployments(env.name, rows, readable)

    def served(self, actor: Actor, environment: str, model: str,
               at: datetime | None = None) -> ServedAnswer:
        """Which version of ``model`` served in ``environment`` at ``at``, who approved it and
        on what evidence (the applied transition requests and their checks).

        With the environment's id known (cached after its first use), the model, what it
        served, that version and its stage changes come in one statement; the applied
        transitions and their approvals in a second, only when there were stage changes.
        """
        when = at or self.clock()
        validate_name(model)
        env = self._env_cache.get(environment)
        with self.db.read() as conn:
            if env is None:
                # Errors in their usual order: the model, the permission, the environment.
                m = self._model_row(conn, model)
                self.authz.require(actor, Permission.MODEL_READ, model=m.normalized_name,
                                   team=m.owner_team)
                try:
                    env = self._env_ref(conn, environment)
                except _NotYetUsed as exc:
                    return ServedAnswer(exc.name, m.name, when, None, None, None)
            rows = dq.served_one(conn, env.id, normalize_name(model), when)
            if not rows:
                raise NotFound(f"model {model!r} not found", details={"model": model})
            r = rows[0]
            self.authz.require(actor, Permission.MODEL_READ, model=r.normalized_name,
                               team=r.owner_team)
            if r.number is None:  # no event by then, an end event, or a version gone
                return ServedAnswer(env.name, r.model_name, when, None, None, None)
            history = [
                StageChange(from_stage=s.from_stage, to_stage=s.to_stage, at=s.stage_at,
                            actor=s.actor, request_id=s.request_id,
                            break_glass=bool(s.break_glass), reason=s.reason or "")
                for s in rows if s.stage_event_id is not None
            ]
            transitions = (_transitions(dq.applied_transitions(conn, r.version_id, when))
                           if history else [])
        # No recorded stage change by then: the version was in the stage it starts in.
        stage_at = history[-1].to_stage if history else INITIAL_STAGE
        return ServedAnswer(env.name, r.model_name, when, _deployment(env.name, r), stage_at,
                            r.stage, history, transitions)

    def version_deployments(self, actor: Actor, ref: str) -> list[ServingInterval]:
        """Where and when a version served: every interval, oldest first."""
        with self.db.read() as conn:
            vid = self.registry.resolve(conn, ref)
            v = dq.version_context(conn, vid)
            assert v is not None
            self.authz.require(actor, Permission.MODEL_READ, model=v.normalized_name,
                               team=v.owner_team)
            return [
                ServingInterval(environment=r.environment, model=v.model_name, version=v.number,
                                start=r.at, end=r.end_at, recorded_by=r.recorded_by,
                                ended_by=r.ended_by)
                for r in dq.version_intervals(conn, vid)
            ]

    def _page_size(self, page_size: int | None) -> int:
        size = self.page_default if page_size is None else page_size
        if not 1 <= size <= self.page_max:
            raise Invalid(f"page_size must be between 1 and {self.page_max}",
                          details={"field": "page_size"})
        return size

    def timeline(
        self, actor: Actor, environment: str, *, since: datetime | None = None,
        until: datetime | None = None, model: str | None = None, page_size: int | None = None,
        cursor: str | None = None, descending: bool = True,
    ) -> Page[DeploymentEvent]:
        """The history of one environment (newest first by default), keyset-paginated."""
        if since is not None and until is not None and until <= since:
            raise Invalid("until must be later than since", details={"field": "until"})
        size = self._page_size(page_size)
        after = _decode_cursor(cursor, descending) if cursor else None
        with self.db.read() as conn:
            model_id = None
            if model is not None:
                m = self._model_row(conn, model)
                self.authz.require(actor, Permission.MODEL_READ, model=m.normalized_name,
                                   team=m.owner_team)
                model_id = int(m.id)
                readable: Callable[[str], bool] = _everything
            else:
                readable = self._readable(actor)
            try:
                env = self._env_ref(conn, environment)
            except _NotYetUsed:
                return Page(items=[], next_cursor=None)
            rows = dq.timeline(conn, env.id, since=since, until=until, model_id=model_id,
                               after=after, descending=descending, limit=size + 1)
        page = rows[:size]
        nxt = (_encode_cursor(page[-1].at, int(page[-1].id), descending)
               if len(rows) > size else None)
        return Page(items=[_event(r) for r in page if readable(r.model_name)], next_cursor=nxt)

    def model_history(
        self, actor: Actor, model: str, *, page_size: int | None = None,
        cursor: str | None = None, descending: bool = True,
    ) -> Page[DeploymentEvent]:
        """Every deployment event of one model, across environments."""
        size = self._page_size(page_size)
        after = _decode_cursor(cursor, descending) if cursor else None
        with self.db.read() as conn:
            m = self._model_row(conn, model)
            self.authz.require(actor, Permission.MODEL_READ, model=m.normalized_name,
                               team=m.owner_team)
            rows = dq.model_history(conn, int(m.id), after=after, descending=descending,
                                    limit=size + 1)
        page = rows[:size]
        nxt = (_encode_cursor(page[-1].at, int(page[-1].id), descending)
               if len(rows) > size else None)
        return Page(items=[_event(r) for r in page], next_cursor=nxt)

    # ------------------------------------------------------------------ observations

    def report_observation(
        self, actor: Actor, environment: str, digest: str, *, at: datetime | None = None,
        instance: str = "",
    ) -> Observation:
        """A serving system reports the version digest it runs in ``environment`` (audited)."""
        validate_digest(digest)
        instance = instance or ""
        if len(instance) > MAX_INSTANCE or not instance.isprintable():
            raise Invalid(f"instance must be at most {MAX_INSTANCE} printable characters",
                          details={"field": "instance"})
        self.authz.require(actor, Permission.OBSERVATION_REPORT)
        now = self.clock()
        at = self._check_time(at, now, "observed_at")
        with self.db.write() as conn:
            env = self._environment(conn, environment, materialize=True)
            oid = dq.insert_observation(conn, {
                "environment_id": env.id, "digest": digest, "observed_at": at,
                "reported_by": actor.name, "instance": instance,
            })
            known = dq.versions_by_digest(conn, [digest]).get(digest, [])
            one = known[0] if len(known) == 1 else None
            audit.append(conn, actor, "observation.report", at=now,
                         model=normalize_name(one.model_name) if one is not None else None,
                         version=one.number if one is not None else None, target=env.name,
                         after={"digest": digest, "instance": instance,
                                "observed_at": audit.iso(at), "registered": bool(known)})
            return Observation(oid, env.name, digest, at, actor.name, instance)

    def drift(self, actor: Actor, *, environment: str | None = None,
              window: timedelta = DEFAULT_DRIFT_WINDOW) -> DriftReport:
        """Per environment: recorded deployments now against observations within ``window``."""
        if window <= timedelta(0) or window > timedelta(days=366):
            raise Invalid("window must be between 1 second and 366 days",
                          details={"field": "window"})
        readable = self._readable(actor)
        now = self.clock()
        out: list[EnvironmentDrift] = []
        with self.db.read() as conn:
            envs: list[Any]
            if environment is not None:
                try:
                    envs = [self._env_ref(conn, environment)]
                except _NotYetUsed as exc:
                    return DriftReport(now, window, [EnvironmentDrift(exc.name, True, [], [], [])])
            else:
                envs = dq.environment_rows(conn)
            for env in envs:
                out.append(self._env_drift(conn, env, now, window, readable))
        return DriftReport(now, window, out)

    @staticmethod
    def _env_drift(conn: Connection, env: Any, now: datetime, window: timedelta,
                   readable: Callable[[str], bool]) -> EnvironmentDrift:
        recorded = _deployments(env.name, dq.served_at(conn, env.id, now), readable)
        seen: dict[str, list[Row[Any]]] = {}
        for o in dq.fresh_observations(conn, env.id, now - window):
            seen.setdefault(o.digest, []).append(o)
        known = dq.versions_by_digest(conn, seen)
        by_digest = {d.digest: d for d in recorded}
        by_model = {normalize_name(d.model): d for d in recorded}
        observed: list[ObservedDigest] = []
        drift: list[DriftItem] = []
        mismatched: set[str] = set()
        for digest, obs in seen.items():
            versions = [v for v in known.get(digest, []) if readable(v.model_name)]
            if known.get(digest) and not versions:
                continue  # a version the actor may not see
            instances = tuple(o.instance for o in obs)
            last_seen = max(o.last_seen for o in obs)
            observed.append(ObservedDigest(digest, instances, last_seen,
                                           sum(int(o.reports) for o in obs),
                                           tuple(f"{v.model_name}/{v.number}" for v in versions)))
            if digest in by_digest:
                continue
            if not versions:
                drift.append(DriftItem("unregistered", digest, instances=instances,
                                       last_seen=last_seen))
                continue
            matched = False
            for v in versions:
                rec = by_model.get(normalize_name(v.model_name))
                if rec is not None:
                    matched = True
                    mismatched.add(normalize_name(v.model_name))
                    drift.append(DriftItem("mismatch", digest, model=v.model_name,
                                           version=v.number, expected_version=rec.version,
                                           expected_digest=rec.digest, instances=instances,
                                           last_seen=last_seen))
            if not matched:
                v = versions[0]
                drift.append(DriftItem("unrecorded", digest, model=v.model_name, version=v.number,
                                       instances=instances, last_seen=last_seen))
        for d in recorded:
            if d.digest not in seen and normalize_name(d.model) not in mismatched:
                drift.append(DriftItem("not_observed", d.digest, model=d.model, version=d.version,
                                       expected_version=d.version, expected_digest=d.digest))
        order = {"mismatch": 0, "unregistered": 1, "unrecorded": 2, "not_observed": 3}
        drift.sort(key=lambda i: (order[i.kind], i.model or "", i.digest))
        return EnvironmentDrift(env.name, not drift, recorded, observed, drift)


def _everything(_model: str) -> bool:
    return True


class _NotYetUsed(Exception):
    """The policy declares the environment but nothing was ever recorded there."""

    def __init__(self, declared: tuple[str, str, str]) -> None:
        super().__init__(declared[0])
        self.name = declared[0]


def deployment_json(d: Deployment) -> dict[str, Any]:
    return {"environment": d.environment, "model": d.model, "version": d.version,
            "ref": f"{d.model}/{d.version}", "digest": d.digest, "stage": d.stage,
            "since": d.since, "recorded_by": d.recorded_by, "note": d.note}
