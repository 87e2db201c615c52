"""Policy, transitions and approvals, break-glass, stage history, reviews."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from regista.api.deps import ActorDep, ServicesDep, rule
from regista.api.lean import LeanRoute
from regista.api.responses import JSON
from regista.api.schemas import error_responses, model_out
from regista.domain.policy import (
    ApprovalRecord,
    CheckResult,
    StageEvent,
    TransitionRequest,
)
from regista.errors import BadRequest, Invalid
from regista.service.access import Permission
from regista.service.clock import parse_instant
from regista.service.policy import CurrentPolicy, PolicyApplied, PolicyVersionInfo

router = APIRouter(prefix="/api/v1", tags=["lifecycle"], route_class=LeanRoute)
ERRORS = error_responses(400, 401, 403, 404, 409, 422)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")

Number = Annotated[int, Path(ge=1, le=2_000_000_000)]
RequestId = Annotated[int, Path(ge=1, le=2**62)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TransitionIn(_Strict):
    to_stage: str = Field(max_length=64, description="Target stage (a stage of the policy)")
    justification: str = Field(max_length=20_000, description="Why (required)")


class DecisionIn(_Strict):
    comment: str = Field(default="", max_length=20_000)


class BreakGlassIn(_Strict):
    to_stage: str = Field(max_length=64)
    reason: str = Field(max_length=20_000, description="Mandatory reason, kept in the audit log")


class PolicyIn(_Strict):
    document: str = Field(max_length=256 * 1024, description="The policy YAML text")


# --------------------------------------------------------------------------- wire forms


def check_out(c: CheckResult) -> dict[str, Any]:
    return c.to_json()


def approval_out(a: ApprovalRecord) -> dict[str, Any]:
    return {"approver": a.approver, "decision": a.decision, "comment": a.comment,
            "version_digest": a.version_digest, "at": a.at}


def request_out(r: TransitionRequest) -> dict[str, Any]:
    return {
        "id": r.id, "model": r.model, "version": r.version, "ref": r.ref,
        "version_digest": r.version_digest, "from_stage": r.from_stage,
        "to_stage": r.to_stage, "justification": r.justification, "status": r.status,
        "checks": [check_out(c) for c in r.checks], "checks_passed": r.checks_passed,
        "approvals": [approval_out(a) for a in r.approvals],
        "approval_count": r.approval_count, "required_approvals": r.required_approvals,
        "approver_role": r.approver_role, "missing": r.missing(),
        "policy_version": r.policy_version, "requested_by": r.requested_by,
        "requested_at": r.requested_at, "decided_at": r.decided_at,
    }


def stage_event_out(e: StageEvent) -> dict[str, Any]:
    return {"from_stage": e.from_stage, "to_stage": e.to_stage, "at": e.at, "actor": e.actor,
            "break_glass": e.break_glass, "reason": e.reason,
            "request": request_out(e.request) if e.request else None}


def policy_out(c: CurrentPolicy, *, with_document: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"version": c.version, "digest": c.digest, "applied_at": c.applied_at,
                           "applied_by": c.applied_by, "embedded_default": c.version == 0}
    if with_document:
        out["document"] = c.document
        out["policy"] = c.policy.to_json()
    return out


def history_out(h: PolicyVersionInfo) -> dict[str, Any]:
    return {"version": h.version, "digest": h.digest, "applied_at": h.applied_at,
            "applied_by": h.applied_by}


def applied_out(a: PolicyApplied) -> dict[str, Any]:
    return {"version": a.version, "digest": a.digest, "changed": a.changed,
            "applied_at": a.applied_at, "applied_by": a.applied_by,
            "environments": a.environments}


# --------------------------------------------------------------------------- policy


async def _policy_text(request: Request) -> str:
    """The policy from the body: raw YAML, or JSON ``{"document": "..."}``."""
    raw = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or ctype.endswith("+json"):
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"request body is not valid JSON: {str(exc)[:200]}") from None
        if not isinstance(body, dict) or set(body) != {"document"} \
                or not isinstance(body["document"], str):
            raise Invalid('a JSON body must be {"document": "<policy YAML text>"}',
                          details={"field": "document"})
        return body["document"]
    if ctype and ctype not in YAML_TYPES and not ctype.startswith("text/"):
        raise BadRequest(f"send the policy as YAML ({', '.join(YAML_TYPES[:3])}) or as JSON "
                         '{"document": "..."}', details={"content_type": ctype[:100]})
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the policy document must be UTF-8 text") from None


@router.put(
    "/policy",
    dependencies=[rule(Permission.POLICY_APPLY)],
    responses={200: {"description": "Applied (or unchanged)"}, **ERRORS},
    openapi_extra={"requestBody": {"content": {
        "application/yaml": {"schema": {"type": "string"}},
        "application/json": {"schema": PolicyIn.model_json_schema()},
    }, "required": True}},
)
async def apply_policy(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    """Validate and apply a policy (YAML body, or JSON ``{"document": ...}``).

    An identical document is a no-op (``changed: false``); otherwise it becomes the next
    policy version, audited as ``policy.apply``. Invalid documents get a 422 whose
    ``details.errors`` name the line and field of each problem.
    """
    text = await _policy_text(request)
    applied = await run_in_threadpool(svc.policy.apply, actor, text)
    return JSON(applied_out(applied))


@router.get("/policy", dependencies=[rule(Permission.MODEL_READ)], responses=ERRORS)
def show_policy(
    actor: ActorDep, svc: ServicesDep,
    history: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The policy in effect (version 0: the embedded default) and the applied versions."""
    current, versions = svc.policy.show(actor, history_limit=history)
    return JSON({"current": policy_out(current), "history": [history_out(h) for h in versions]})


@router.get("/policy/versions/{version}", dependencies=[rule(Permission.MODEL_READ)],
            responses=ERRORS)
def get_policy_version(
    version: Annotated[int, Path(ge=0, le=2**31)], actor: ActorDep, svc: ServicesDep,
) -> Response:
    """One applied version of the policy, with its document."""
    return JSON(policy_out(svc.policy.get_version(actor, version)))


# --------------------------------------------------------------------------- transitions


@router.post(
    "/models/{name}/versions/{number}/transitions",
    dependencies=[rule(Permission.TRANSITION_REQUEST)],
    status_code=201,
    responses=ERRORS,
)
def request_transition(name: str, number: Number, body: TransitionIn, actor: ActorDep,
                       svc: ServicesDep) -> Response:
    """Request a stage transition; the policy's checks are evaluated and shown.

    A transition that needs no approval is applied at once when its checks pass
    (``status: applied``); otherwise the request is ``pending`` and ``missing`` says
    what stands between it and its application.
    """
    r = svc.lifecycle.request_transition(actor, f"{name}/{number}", body.to_stage,
                                         body.justification)
    return JSON(request_out(r), status_code=201)


@router.get("/transitions", dependencies=[rule(Permission.MODEL_READ)], responses=ERRORS)
def list_transitions(
    actor: ActorDep, svc: ServicesDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    page_size: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Transition requests, newest first (the approvals queue: ``status=pending``)."""
    page = svc.lifecycle.list_requests(actor, status=status, model=model, page_size=page_size,
                                       cursor=cursor)
    return JSON({"items": [request_out(r) for r in page.items], "next_cursor": page.next_cursor})


@router.get("/transitions/{request_id}", dependencies=[rule(Permission.MODEL_READ)],
            responses=ERRORS)
def get_transition(request_id: RequestId, actor: ActorDep, svc: ServicesDep) -> Response:
    """One request with its checks and approvals."""
    return JSON(request_out(svc.lifecycle.get_request(actor, request_id)))


@router.post("/transitions/{request_id}/approve",
             dependencies=[rule(Permission.TRANSITION_APPROVE)], responses=ERRORS)
def approve_transition(request_id: RequestId, actor: ActorDep, svc: ServicesDep,
                       body: DecisionIn | None = None) -> Response:
    """Approve (never one's own request); applies the transition once approvals suffice."""
    r = svc.lifecycle.approve(actor, request_id, body.comment if body else "")
    return JSON(request_out(r))


@router.post("/transitions/{request_id}/reject",
             dependencies=[rule(Permission.TRANSITION_APPROVE)], responses=ERRORS)
def reject_transition(request_id: RequestId, body: DecisionIn, actor: ActorDep,
                      svc: ServicesDep) -> Response:
    """Reject with a comment; the request is closed."""
    return JSON(request_out(svc.lifecycle.reject(actor, request_id, body.comment)))


@router.post("/transitions/{request_id}/cancel",
             dependencies=[rule(Permission.TRANSITION_REQUEST)], responses=ERRORS)
def cancel_transition(request_id: RequestId, actor: ActorDep, svc: ServicesDep) -> Response:
    """Withdraw one's own pending request."""
    return JSON(request_out(svc.lifecycle.cancel(actor, request_id)))


@router.post("/models/{name}/versions/{number}/break-glass",
             dependencies=[rule(Permission.TRANSITION_BREAK_GLASS)], responses=ERRORS)
def break_glass(name: str, number: Number, body: BreakGlassIn, actor: ActorDep,
                svc: ServicesDep) -> Response:
    """Force a stage (admins only, reason required); audited as ``transition.break_glass``."""
    from regista.api.schemas import version_out

    v = svc.lifecycle.break_glass(actor, f"{name}/{number}", body.to_stage, body.reason)
    return JSON(version_out(v))


@router.get("/models/{name}/versions/{number}/stage-history",
            dependencies=[rule(Permission.MODEL_READ)], responses=ERRORS)
def stage_history(name: str, number: Number, actor: ActorDep, svc: ServicesDep) -> Response:
    """Every stage of the version, oldest first, with the request and approvals of each move."""
    events = svc.lifecycle.stage_history(actor, f"{name}/{number}")
    return JSON({"ref": f"{name}/{number}", "items": [stage_event_out(e) for e in events]})


# --------------------------------------------------------------------------- reviews


@router.get("/reviews/overdue", dependencies=[rule(Permission.MODEL_READ)], responses=ERRORS)
def overdue_reviews(
    actor: ActorDep, svc: ServicesDep,
    at: Annotated[str | None, Query(max_length=64, description="ISO-8601 instant; default now")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    """Models whose next review date has passed, most overdue first."""
    when = parse_instant(at, field="at") if at else None
    models = svc.lifecycle.overdue(actor, when, limit=limit)
    return JSON({"items": [model_out(m) for m in models]})


@router.post("/models/{name}/reviewed", dependencies=[rule(Permission.TRANSITION_APPROVE)],
             responses=ERRORS)
def mark_reviewed(name: str, actor: ActorDep, svc: ServicesDep) -> Response:
    """Record a periodic review: the next is due after the model's risk-tier interval."""
    return JSON(model_out(svc.lifecycle.mark_reviewed(actor, name)))
