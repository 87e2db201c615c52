"""The audit log: list, export (JSON Lines), verify the hash chain, checkpoints."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from regista.api.deps import ActorDep, ServicesDep, rule
from regista.api.lean import LeanRoute
from regista.api.responses import JSON
from regista.api.schemas import error_responses
from regista.service.access import Permission
from regista.service.audit import AuditEvent, EventFilter, checkpoints_from_json, make_filter
from regista.service.clock import parse_instant

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], route_class=LeanRoute)
ERRORS = error_responses(400, 401, 403, 409, 422)
NDJSON = "application/x-ndjson"


class AuditEventOut(BaseModel):
    seq: int
    at: str
    actor: str
    action: str
    outcome: str
    model: str | None
    version: int | None
    target: str | None
    request_id: str | None
    before: Any
    after: Any
    prev_hash: str
    hash: str


class AuditPageOut(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None


class CheckpointIn(BaseModel):
    model_config = ConfigDict(extra="ignore")  # an exported line also carries "at"
    seq: int = Field(ge=1)
    hash: str = Field(min_length=64, max_length=64)


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    checkpoints: list[CheckpointIn] = Field(default_factory=list, max_length=100_000)
    use_stored_checkpoints: bool = True


class BadEventOut(BaseModel):
    seq: int
    reason: str
    message: str


class HeadOut(BaseModel):
    seq: int
    hash: str


class VerifyOut(BaseModel):
    ok: bool
    events: int
    first_bad: BadEventOut | None
    head: HeadOut
    checkpoints_checked: int
    from_seq: int


class CheckpointOut(BaseModel):
    seq: int
    hash: str
    at: str | None


class CheckpointListOut(BaseModel):
    items: list[CheckpointOut]


def _filter(model: str | None, version: int | None, actor: str | None, action: str | None,
            outcome: str | None, since: str | None, until: str | None) -> EventFilter:
    return make_filter(
        model=model, version=version, actor=actor, action=action, outcome=outcome,
        since=parse_instant(since, field="since") if since is not None else None,
        until=parse_instant(until, field="until") if until is not None else None,
    )


def _event_out(e: AuditEvent) -> dict[str, Any]:
    return e.to_json()


@router.get(
    "/events",
    dependencies=[rule(Permission.AUDIT_READ)],
    responses={200: {"model": AuditPageOut}, **ERRORS},
)
def list_events(
    actor: ActorDep,
    svc: ServicesDep,
    model: Annotated[str | None, Query(max_length=200, description="Model name")] = None,
    version: Annotated[int | None, Query(ge=1, description="Version number (with model)")] = None,
    by: Annotated[str | None, Query(alias="actor", max_length=128, description="Who acted")] = None,
    action: Annotated[str | None, Query(max_length=64, description="Exact, or a family: version.*")] = None,
    outcome: Annotated[str | None, Query(max_length=16, description="ok | denied | break_glass")] = None,
    since: Annotated[str | None, Query(max_length=64, description="ISO-8601, inclusive")] = None,
    until: Annotated[str | None, Query(max_length=64, description="ISO-8601, exclusive")] = None,
    order: Annotated[Literal["desc", "asc"], Query(description="By seq")] = "desc",
    page_size: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """Events matching the filters, newest first by default; keyset-paginated on seq."""
    f = _filter(model, version, by, action, outcome, since, until)
    page = svc.audit.list_events(actor, f, page_size=page_size, cursor=cursor,
                                 descending=order == "desc")
    return JSON({"items": [_event_out(e) for e in page.items], "next_cursor": page.next_cursor})


@router.get(
    "/export",
    dependencies=[rule(Permission.AUDIT_READ)],
    responses={200: {"content": {NDJSON: {}}}, **ERRORS},
)
def export_events(
    actor: ActorDep,
    svc: ServicesDep,
    model: Annotated[str | None, Query(max_length=200, description="Model name")] = None,
    version: Annotated[int | None, Query(ge=1, description="Version number (with model)")] = None,
    by: Annotated[str | None, Query(alias="actor", max_length=128, description="Who acted")] = None,
    action: Annotated[str | None, Query(max_length=64, description="Exact, or a family: version.*")] = None,
    outcome: Annotated[str | None, Query(max_length=16, description="ok | denied | break_glass")] = None,
    since: Annotated[str | None, Query(max_length=64, description="ISO-8601, inclusive")] = None,
    until: Annotated[str | None, Query(max_length=64, description="ISO-8601, exclusive")] = None,
) -> StreamingResponse:
    """The matching events as JSON Lines, oldest first, streamed (one event per line).

    Each line carries ``prev_hash`` and ``hash``, so an unfiltered export can be
    verified offline (``regista audit verify --file``).
    """
    f = _filter(model, version, by, action, outcome, since, until)
    return StreamingResponse(
        svc.audit.export(actor, f), media_type=NDJSON,
        headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
    )


@router.post(
    "/verify",
    dependencies=[rule(Permission.AUDIT_READ)],
    responses={200: {"model": VerifyOut}, **ERRORS},
)
def verify(actor: ActorDep, svc: ServicesDep, body: VerifyIn | None = None) -> Response:
    """Verify the hash chain; ``ok`` false names the first bad event and why.

    Pass checkpoints kept outside the database to detect a truncated tail.
    """
    body = body or VerifyIn()
    pins = checkpoints_from_json([c.model_dump() for c in body.checkpoints])
    result = svc.audit.verify(actor, checkpoints=pins,
                              use_stored_checkpoints=body.use_stored_checkpoints)
    return JSON(result.to_json())


@router.post(
    "/checkpoints",
    dependencies=[rule(Permission.AUDIT_READ)],
    status_code=201,
    responses={201: {"model": CheckpointOut}, **ERRORS},
)
def create_checkpoint(actor: ActorDep, svc: ServicesDep) -> Response:
    """Verify the chain since the last checkpoint, then pin the current head (409 if bad)."""
    return JSON(svc.audit.checkpoint(actor).to_json(), status_code=201)


@router.get(
    "/checkpoints",
    dependencies=[rule(Permission.AUDIT_READ)],
    responses={200: {"model": CheckpointListOut, "content": {NDJSON: {}}}, **ERRORS},
)
def list_checkpoints(
    actor: ActorDep,
    svc: ServicesDep,
    format: Annotated[Literal["json", "jsonl"], Query(description="jsonl: one per line")] = "json",
) -> Response:
    """Stored checkpoints, oldest first; ``format=jsonl`` to keep them outside the registry."""
    if format == "jsonl":
        return Response(svc.audit.export_checkpoints(actor), media_type=NDJSON)
    return JSON({"items": [c.to_json() for c in svc.audit.checkpoints(actor)]})
