"""Environments, deployments (recorded history and "as of" questions), observations, drift."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from regista.api.deps import ActorDep, ServicesDep, rule
from regista.api.lean import LeanRoute
from regista.api.responses import JSON
from regista.api.schemas import error_responses
from regista.domain.names import VersionRef
from regista.errors import Invalid
from regista.service.access import Permission
from regista.service.clock import parse_instant
from regista.service.deployments import (
    DeploymentEvent,
    DriftItem,
    DriftReport,
    Environment,
    ServedAnswer,
    ServingInterval,
    deployment_json,
)

router = APIRouter(prefix="/api/v1", tags=["deployments"], route_class=LeanRoute)
ERRORS = error_responses(400, 401, 403, 404, 409, 422)
Instant = Annotated[str | None, Query(max_length=64, description="ISO-8601 with a time zone")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeploymentRecord(_Strict):
    """Either ``ref`` (``model/7``, ``model@alias``) or ``model`` + ``version``."""

    environment: str = Field(max_length=200)
    ref: str | None = Field(default=None, max_length=300)
    model: str | None = Field(default=None, max_length=200)
    version: int | None = Field(default=None, ge=1)
    at: str | None = Field(default=None, max_length=64, description="ISO-8601; default now")
    note: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _one_reference(self) -> DeploymentRecord:
        if (self.ref is None) == (self.model is None or self.version is None):
            raise ValueError("give either ref (e.g. fraud-scorer/12) or model and version")
        return self

    def version_ref(self) -> str:
        return self.ref or str(VersionRef(model=self.model or "", number=self.version))


class DeploymentEnd(_Strict):
    environment: str = Field(max_length=200)
    model: str = Field(max_length=200)
    at: str | None = Field(default=None, max_length=64, description="ISO-8601; default now")
    note: str = Field(default="", max_length=2000)


class EnvironmentIn(_Strict):
    name: str = Field(max_length=200)
    min_stage: str = Field(max_length=32)
    description: str = Field(default="", max_length=2000)


class ObservationIn(_Strict):
    environment: str = Field(max_length=200)
    digest: str = Field(max_length=128, description="sha256 of the version (its manifest digest)")
    at: str | None = Field(default=None, max_length=64, description="When it was seen; default now")
    instance: str = Field(default="", max_length=255, description="Which replica/host saw it")


class EventOut(BaseModel):
    id: int
    kind: Literal["deploy", "end"]
    environment: str
    model: str
    version: int | None
    previous_version: int | None
    at: datetime
    recorded_at: datetime
    recorded_by: str
    note: str


class DeploymentOut(BaseModel):
    environment: str
    model: str
    version: int
    ref: str
    digest: str
    stage: str
    since: datetime
    recorded_by: str
    note: str


class EnvironmentOut(BaseModel):
    name: str
    min_stage: str
    description: str
    created_at: datetime | None


def _at(text: str | None, field: str = "at") -> datetime | None:
    return parse_instant(text, field=field) if text is not None else None


def event_json(e: DeploymentEvent) -> dict[str, Any]:
    return {"id": e.id, "kind": e.kind, "environment": e.environment, "model": e.model,
            "version": e.version, "previous_version": e.previous_version, "at": e.at,
            "recorded_at": e.recorded_at, "recorded_by": e.recorded_by, "note": e.note}


def environment_json(e: Environment) -> dict[str, Any]:
    return {"name": e.name, "min_stage": e.min_stage, "description": e.description,
            "created_at": e.created_at}


def interval_json(i: ServingInterval) -> dict[str, Any]:
    return {"environment": i.environment, "model": i.model, "version": i.version,
            "start": i.start, "end": i.end, "recorded_by": i.recorded_by, "ended_by": i.ended_by}


def drift_item_json(d: DriftItem) -> dict[str, Any]:
    return {"kind": d.kind, "digest": d.digest, "model": d.model, "version": d.version,
            "expected_version": d.expected_version, "expected_digest": d.expected_digest,
            "instances": list(d.instances), "last_seen": d.last_seen}


def drift_json(r: DriftReport) -> dict[str, Any]:
    return {
        "generated_at": r.generated_at,
        "window_seconds": int(r.window.total_seconds()),
        "in_sync": all(e.in_sync for e in r.environments),
        "environments": [
            {"environment": e.environment, "in_sync": e.in_sync,
             "recorded": [deployment_json(d) for d in e.recorded],
             "observed": [{"digest": o.digest, "instances": list(o.instances),
                           "last_seen": o.last_seen, "reports": o.reports,
                           "versions": list(o.versions)} for o in e.observed],
             "drift": [drift_item_json(d) for d in e.drift]}
            for e in r.environments
        ],
    }


def served_json(a: ServedAnswer) -> dict[str, Any]:
    d = a.deployment
    return {
        "environment": a.environment, "model": a.model, "at": a.at,
        "serving": d is not None,
        "version": d.version if d else None,
        "ref": f"{d.model}/{d.version}" if d else None,
        "digest": d.digest if d else None,
        "since": d.since if d else None,
        "recorded_by": d.recorded_by if d else None,
        "note": d.note if d else None,
        "stage_at": a.stage_at, "stage_now": a.stage_now,
        "approved_by": a.approvers,
        "transitions": [
            {"request_id": t.request_id, "from_stage": t.from_stage, "to_stage": t.to_stage,
             "justification": t.justification, "requested_by": t.requested_by,
             "requested_at": t.requested_at, "decided_at": t.decided_at,
             "policy_version": t.policy_version, "checks": t.checks,
             "approvals": [{"approver": x.approver, "decision": x.decision, "comment": x.comment,
                            "at": x.at, "version_digest": x.version_digest} for x in t.approvals]}
            for t in a.transitions
        ],
        "stage_history": [
            {"from_stage": s.from_stage, "to_stage": s.to_stage, "at": s.at, "actor": s.actor,
             "request_id": s.request_id, "break_glass": s.break_glass, "reason": s.reason}
            for s in a.stage_history
        ],
    }


# --------------------------------------------------------------------------- recording


@router.post(
    "/deployments",
    dependencies=[rule(Permission.DEPLOYMENT_RECORD)],
    status_code=201,
    responses={201: {"model": EventOut}, 200: {"model": EventOut}, **ERRORS},
)
def record_deployment(body: DeploymentRecord, actor: ActorDep, svc: ServicesDep) -> Response:
    """Record that a version serves in an environment from ``at`` (default now).

    201 for a new event; 200 when that version already serves there (nothing recorded).
    409 when the version is below the environment's minimum stage, or ``at`` is earlier
    than the latest event of that model there (history is append-only).
    """
    event, created = svc.deployments.record_deployment(
        actor, body.version_ref(), body.environment, at=_at(body.at), note=body.note)
    return JSON(event_json(event), status_code=201 if created else 200)


@router.post(
    "/deployments/end",
    dependencies=[rule(Permission.DEPLOYMENT_RECORD)],
    status_code=201,
    responses={201: {"model": EventOut}, **ERRORS},
)
def end_deployment(body: DeploymentEnd, actor: ActorDep, svc: ServicesDep) -> Response:
    """Record that a model stopped serving in an environment at ``at`` (default now)."""
    event = svc.deployments.end_deployment(actor, body.model, body.environment, at=_at(body.at),
                                           note=body.note)
    return JSON(event_json(event), status_code=201)


# --------------------------------------------------------------------------- environments


@router.get(
    "/environments",
    dependencies=[rule(Permission.MODEL_READ)],
    responses={200: {"model": list[EnvironmentOut]}, **ERRORS},
)
def list_environments(actor: ActorDep, svc: ServicesDep) -> Response:
    """Every environment (recorded, or declared by the policy) and its minimum stage."""
    return JSON({"items": [environment_json(e) for e in svc.deployments.environments(actor)]})


@router.post(
    "/environments",
    dependencies=[rule(Permission.ENVIRONMENT_MANAGE)],
    status_code=201,
    responses={201: {"model": EnvironmentOut}, 200: {"model": EnvironmentOut}, **ERRORS},
)
def put_environment(body: EnvironmentIn, actor: ActorDep, svc: ServicesDep) -> Response:
    """Create an environment or change its minimum stage (admin; normally the policy does)."""
    env, created = svc.deployments.ensure_environment(
        actor, body.name, min_stage=body.min_stage, description=body.description)
    return JSON(environment_json(env), status_code=201 if created else 200)


@router.get(
    "/environments/{env}/deployments",
    dependencies=[rule(Permission.MODEL_READ)],
    responses={200: {"model": list[DeploymentOut]}, **ERRORS},
)
def served_at(env: str, actor: ActorDep, svc: ServicesDep, at: Instant = None) -> Response:
    """What served in the environment at ``at`` (default now): one entry per model."""
    when = _at(at)
    items = svc.deployments.served_at(actor, env, when)
    return JSON({"environment": env, "at": when, "items": [deployment_json(d) for d in items]})


@router.get(
    "/environments/{env}/served",
    dependencies=[rule(Permission.MODEL_READ)],
    responses=ERRORS,
)
def served(
    env: str,
    actor: ActorDep,
    svc: ServicesDep,
    model: Annotated[str, Query(max_length=200, description="Model name")],
    at: Instant = None,
) -> Response:
    """The auditor's question: which version of ``model`` served here at ``at``, its digest,
    who approved it and on what evidence (the applied transitions and their checks)."""
    return JSON(served_json(svc.deployments.served(actor, env, model, _at(at))))


@router.get(
    "/environments/{env}/timeline",
    dependencies=[rule(Permission.MODEL_READ)],
    responses={200: {"model": list[EventOut]}, **ERRORS},
)
def timeline(
    env: str,
    actor: ActorDep,
    svc: ServicesDep,
    since: Instant = None,
    until: Instant = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    order: Annotated[Literal["desc", "asc"], Query()] = "desc",
    page_size: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """Every deployment event of the environment (newest first by default), paginated."""
    page = svc.deployments.timeline(
        actor, env, since=_at(since, "since"), until=_at(until, "until"), model=model,
        page_size=page_size, cursor=cursor, descending=order == "desc")
    return JSON({"items": [event_json(e) for e in page.items], "next_cursor": page.next_cursor})


# --------------------------------------------------------------------------- models


@router.get(
    "/models/{name}/versions/{number}/deployments",
    dependencies=[rule(Permission.MODEL_READ)],
    responses=ERRORS,
)
def version_deployments(name: str, number: int, actor: ActorDep, svc: ServicesDep) -> Response:
    """Where and when this version served: each interval ``[start, end)``; end null: still."""
    if number < 1:
        raise Invalid("version number must be positive", details={"field": "number"})
    ref = str(VersionRef(model=name, number=number))
    items = svc.deployments.version_deployments(actor, ref)
    return JSON({"ref": ref, "items": [interval_json(i) for i in items]})


@router.get(
    "/models/{name}/deployments",
    dependencies=[rule(Permission.MODEL_READ)],
    responses=ERRORS,
)
def model_deployments(
    name: str,
    actor: ActorDep,
    svc: ServicesDep,
    order: Annotated[Literal["desc", "asc"], Query()] = "desc",
    page_size: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """The deployment history of one model across every environment."""
    page = svc.deployments.model_history(actor, name, page_size=page_size, cursor=cursor,
                                         descending=order == "desc")
    return JSON({"items": [event_json(e) for e in page.items], "next_cursor": page.next_cursor})


# --------------------------------------------------------------------------- observed state


@router.post(
    "/observations",
    dependencies=[rule(Permission.OBSERVATION_REPORT)],
    status_code=201,
    responses=ERRORS,
)
def report_observation(body: ObservationIn, actor: ActorDep, svc: ServicesDep) -> Response:
    """A serving system reports the version digest it runs (drift compares it with records)."""
    o = svc.deployments.report_observation(actor, body.environment, body.digest,
                                           at=_at(body.at), instance=body.instance)
    return JSON({"id": o.id, "environment": o.environment, "digest": o.digest,
                 "observed_at": o.observed_at, "reported_by": o.reported_by,
                 "instance": o.instance}, status_code=201)


@router.get(
    "/drift",
    dependencies=[rule(Permission.MODEL_READ)],
    responses=ERRORS,
)
def drift(
    actor: ActorDep,
    svc: ServicesDep,
    environment: Annotated[str | None, Query(max_length=200)] = None,
    window: Annotated[int, Query(ge=1, le=366 * 86400,
                                 description="Freshness window of observations, seconds")] = 3600,
) -> Response:
    """Per environment: recorded deployments against fresh observations, and the differences."""
    report = svc.deployments.drift(actor, environment=environment,
                                   window=timedelta(seconds=window))
    return JSON(drift_json(report))
