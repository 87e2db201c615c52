"""Registry hygiene: the debt report, garbage collection, blob verification."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from regista.api.deps import ActorDep, ServicesDep, rule
from regista.api.lean import LeanRoute
from regista.api.responses import JSON
from regista.api.schemas import error_responses
from regista.service.access import Permission
from regista.service.hygiene import DEFAULT_GRACE_SECONDS, DEFAULT_LIMIT, DEFAULT_VERIFY_WINDOW, MAX_LIMIT

router = APIRouter(prefix="/api/v1/hygiene", tags=["hygiene"], route_class=LeanRoute)
ERRORS = error_responses(401, 403, 409, 422)


class GCIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = Field(default=False, description="Report what would be removed; change nothing")
    grace_seconds: int = Field(default=DEFAULT_GRACE_SECONDS, ge=0, le=100 * 365 * 86_400,
                               description="Only orphaned blobs older than this are deleted")


class VerifyBlobsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int | None = Field(default=None, ge=1, le=10_000_000,
                              description="Re-hash at most this many blobs (default: all)")
    older_than_seconds: int | None = Field(
        default=None, ge=0, le=100 * 365 * 86_400,
        description="Skip blobs verified more recently than this")


class ModelCountOut(BaseModel):
    model: str
    count: int


class BlobFailureOut(BaseModel):
    digest: str
    problem: str
    versions: list[dict[str, Any]]


class HygieneReportOut(BaseModel):
    generated_at: str
    orphaned_blobs: dict[str, Any]
    stale_uploads: dict[str, Any]
    superseded_versions: dict[str, Any]
    unverified_versions: dict[str, Any]
    verification_failures: dict[str, Any]


class GCOut(BaseModel):
    dry_run: bool
    grace_seconds: int
    blobs: int
    bytes_freed: int
    digests: list[str]
    uploads: int
    upload_bytes: int
    upload_files: int
    staging_files: int | None
    skipped: int
    truncated: bool
    repaired: list[str]
    audit_seq: int | None


class VerifyBlobsOut(BaseModel):
    checked: int
    ok: int
    missing: list[BlobFailureOut]
    corrupt: list[BlobFailureOut]
    errors: int
    audit_seq: int


@router.get(
    "/report",
    dependencies=[rule(Permission.AUDIT_READ)],
    responses={200: {"model": HygieneReportOut}, **ERRORS},
)
def report(
    actor: ActorDep,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Longest list per section")]
    = DEFAULT_LIMIT,
    verify_window_seconds: Annotated[int, Query(
        ge=0, le=100 * 365 * 86_400,
        description="A blob not verified for this long counts as unverified")]
    = int(DEFAULT_VERIFY_WINDOW.total_seconds()),
) -> Response:
    """Hygiene debt: orphaned blobs, stale uploads, superseded-but-unarchived versions,
    versions with unverified files, and the open failures of the last blob verification.

    Needs ``audit:read`` at registry scope (the report spans every model).
    """
    result = svc.hygiene.report(actor, limit=limit,
                                verify_window=timedelta(seconds=verify_window_seconds))
    return JSON(result.to_json())


@router.post(
    "/gc",
    dependencies=[rule(Permission.HYGIENE_RUN)],
    responses={200: {"model": GCOut}, **ERRORS},
)
def collect_garbage(actor: ActorDep, svc: ServicesDep, body: GCIn | None = None) -> Response:
    """Delete orphaned blobs older than the grace period and stale resumable uploads.

    Safe against concurrent registrations (a blob being registered is skipped). Audited
    as one ``hygiene.gc`` event; a dry run changes nothing.
    """
    body = body or GCIn()
    result = svc.hygiene.collect_garbage(actor, grace_seconds=body.grace_seconds,
                                         dry_run=body.dry_run)
    return JSON(result.to_json())


@router.post(
    "/verify-blobs",
    dependencies=[rule(Permission.HYGIENE_RUN)],
    responses={200: {"model": VerifyBlobsOut}, **ERRORS},
)
def verify_blobs(actor: ActorDep, svc: ServicesDep, body: VerifyBlobsIn | None = None) -> Response:
    """Re-hash stored blobs (never verified first); report missing and corrupt ones with
    the versions that reference them. Audited as ``hygiene.verify``."""
    body = body or VerifyBlobsIn()
    older = timedelta(seconds=body.older_than_seconds) if body.older_than_seconds is not None \
        else None
    result = svc.hygiene.verify_blobs(actor, limit=body.limit, older_than=older)
    return JSON(result.to_json())
