"""Blob upload (whole or resumable) and download by digest."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse

from regista.api import schemas as s
from regista.api.deps import ActorDep, ServicesDep, rule
from regista.api.downloads import stream_blob
from regista.api.lean import LeanRoute
from regista.api.responses import JSON
from regista.api.streams import consume_body
from regista.domain.names import validate_digest
from regista.errors import BadRequest, RangeNotSatisfiable
from regista.service.access import Permission

router = APIRouter(prefix="/api/v1", tags=["blobs"], route_class=LeanRoute)
ERRORS = s.error_responses(400, 401, 403, 404, 409, 411, 413, 416, 422)


def _content_length(value: str | None) -> int:
    if value is None or not value.isdigit() or len(value) > 19:
        raise BadRequest("Content-Length is required for uploads", details={"header": "content-length"})
    return int(value)


@router.post(
    "/blobs/check",
    dependencies=[rule(Permission.BLOB_UPLOAD)],
    responses={200: {"model": list[s.BlobStatusOut]}, **ERRORS},
)
def check_blobs(body: s.BlobCheck, actor: ActorDep, svc: ServicesDep) -> Response:
    """Which blobs the registry already holds, so a client uploads only the rest."""
    return JSON([s.blob_status_out(b) for b in svc.blobs.status(actor, body.digests)])


@router.put(
    "/blobs/{digest}",
    dependencies=[rule(Permission.BLOB_UPLOAD)],
    status_code=201,
    responses={201: {"model": s.BlobStatusOut}, 200: {"model": s.BlobStatusOut}, **ERRORS},
)
async def put_blob(
    digest: str,
    request: Request,
    actor: ActorDep,
    svc: ServicesDep,
    content_length: Annotated[str | None, Header()] = None,
) -> Response:
    """Upload one whole file; stored under its sha256 once verified (201, or 200 if known)."""
    validate_digest(digest)
    size = _content_length(content_length)
    svc.blobs.check_size(size)
    created = await consume_body(request, lambda chunks: svc.blobs.put(actor, digest, size, chunks))
    return JSON({"sha256": digest, "present": True, "size": size}, status_code=201 if created else 200)


@router.get(
    "/blobs/{digest}",
    dependencies=[rule(Permission.MODEL_READ)],
    responses={200: {"content": {"application/octet-stream": {}}}, **ERRORS},
)
def get_blob(digest: str, request: Request, actor: ActorDep, svc: ServicesDep) -> StreamingResponse:
    """Download a blob by digest (Range supported)."""
    status = svc.blobs.stat(actor, digest)
    return stream_blob(
        request,
        digest=digest,
        size=status.size,
        media_type="application/octet-stream",
        filename=None,
        opener=lambda a, b: svc.blobs.open(digest, a, b),
    )


@router.post(
    "/uploads",
    dependencies=[rule(Permission.BLOB_UPLOAD)],
    status_code=201,
    responses={201: {"model": s.UploadOut}, **ERRORS},
)
def start_upload(body: s.UploadCreate, actor: ActorDep, svc: ServicesDep) -> Response:
    """Begin a resumable upload of a large file. ``complete`` is true if already stored."""
    return JSON(s.upload_out(svc.blobs.start_upload(actor, body.sha256, body.size)), status_code=201)


@router.get(
    "/uploads/{upload_id}",
    dependencies=[rule(Permission.BLOB_UPLOAD)],
    responses={200: {"model": s.UploadOut}, **ERRORS},
)
def upload_status(upload_id: str, actor: ActorDep, svc: ServicesDep) -> Response:
    """Where a resumable upload stands (resume from ``offset``)."""
    return JSON(s.upload_out(svc.blobs.upload_status(actor, upload_id)))


def _content_range(value: str | None) -> int:
    # "bytes START-END/TOTAL": only START matters; the body length is what counts.
    if not value or not value.startswith("bytes ") or "-" not in value:
        raise RangeNotSatisfiable(
            "Content-Range 'bytes START-END/TOTAL' is required", details={"header": "content-range"}
        )
    start = value[6:].split("-", 1)[0]
    if not start.isdigit() or len(start) > 19:
        raise RangeNotSatisfiable("Content-Range start is not a number", details={"header": "content-range"})
    return int(start)


@router.patch(
    "/uploads/{upload_id}",
    dependencies=[rule(Permission.BLOB_UPLOAD)],
    responses={200: {"model": s.UploadOut}, **ERRORS},
)
async def append_upload(
    upload_id: str,
    request: Request,
    actor: ActorDep,
    svc: ServicesDep,
    content_range: Annotated[str | None, Header()] = None,
) -> Response:
    """Append one chunk at ``Content-Range`` start; a chunk not at the current offset is 416."""
    offset = _content_range(content_range)
    upload = await consume_body(
        request, lambda chunks: svc.blobs.append_upload(actor, upload_id, offset, chunks)
    )
    return JSON(s.upload_out(upload))


@router.delete(
    "/uploads/{upload_id}", dependencies=[rule(Permission.BLOB_UPLOAD)], status_code=204, responses=ERRORS
)
def abort_upload(upload_id: str, actor: ActorDep, svc: ServicesDep) -> Response:
    svc.blobs.abort_upload(actor, upload_id)
    return Response(status_code=204)
