"""Models, versions, aliases and files."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from regista.api import schemas as s
from regista.api.deps import ActorDep, ServicesDep, rule
from regista.api.downloads import stream_blob
from regista.api.lean import LeanRoute, inline
from regista.api.responses import JSON
from regista.domain.names import normalize_name
from regista.service.access import Permission
from regista.service.clock import parse_instant
from regista.service.registry import NewFile

router = APIRouter(prefix="/api/v1", tags=["models"], route_class=LeanRoute)
ERRORS = s.error_responses(400, 401, 403, 404, 409, 413, 416, 422)

Filter = Annotated[str | None, Query(max_length=4096, description="Filter expression")]
OrderBy = Annotated[str | None, Query(max_length=512)]
PageSize = Annotated[int | None, Query(ge=1, le=100_000)]
Cursor = Annotated[str | None, Query(max_length=2048)]
Number = Annotated[int, Query(ge=1)]
#: Registrations of at most this many files run inline (see regista.api.lean); larger
#: manifests take long enough to validate and insert that they go to the thread pool.
INLINE_MAX_FILES = 64


def _json(body: object, status: int = 200) -> JSON:
    return JSON(body, status_code=status)


@router.post(
    "/models",
    dependencies=[rule(Permission.MODEL_CREATE)],
    status_code=201,
    responses={201: {"model": s.ModelOut}, **ERRORS},
)
def create_model(body: s.ModelCreate, actor: ActorDep, svc: ServicesDep) -> Response:
    """Create a model (a named family of versions)."""
    m = svc.registry.create_model(
        actor,
        body.name,
        description=body.description,
        owner_team=body.owner_team,
        risk_tier=body.risk_tier,
        tags=body.tags,
    )
    return _json(s.model_out(m), 201)


@router.get(
    "/models", dependencies=[rule(Permission.MODEL_READ)], responses={200: {"model": s.PageOut}, **ERRORS}
)
def list_models(
    actor: ActorDep,
    svc: ServicesDep,
    filter: Filter = None,
    order_by: OrderBy = None,
    page_size: PageSize = None,
    cursor: Cursor = None,
) -> Response:
    """List or search models (filter language: see docs/search.md); keyset-paginated."""
    page = svc.registry.search_models(
        actor, filter=filter, order_by=order_by, page_size=page_size, cursor=cursor
    )
    return _json({"items": [s.model_out(m) for m in page.items], "next_cursor": page.next_cursor})


@router.get(
    "/models/{name}",
    dependencies=[rule(Permission.MODEL_READ)],
    responses={200: {"model": s.ModelOut}, **ERRORS},
)
@inline()
def get_model(name: str, actor: ActorDep, svc: ServicesDep) -> Response:
    return _json(s.model_out(svc.registry.get_model(actor, name)))


@router.patch(
    "/models/{name}",
    dependencies=[rule(Permission.MODEL_UPDATE)],
    responses={200: {"model": s.ModelOut}, **ERRORS},
)
def update_model(name: str, body: s.ModelPatch, actor: ActorDep, svc: ServicesDep) -> Response:
    """Edit description, owner team, risk tier or tags (audited)."""
    m = svc.registry.update_model(
        actor,
        name,
        description=body.description,
        owner_team=body.owner_team,
        risk_tier=body.risk_tier,
        tags=body.tags,
    )
    return _json(s.model_out(m))


@router.post(
    "/models/{name}/archive",
    dependencies=[rule(Permission.MODEL_ARCHIVE)],
    responses={200: {"model": s.ModelOut}, **ERRORS},
)
def archive_model(name: str, actor: ActorDep, svc: ServicesDep) -> Response:
    return _json(s.model_out(svc.registry.archive_model(actor, name)))


@router.post(
    "/models/{name}/versions",
    dependencies=[rule(Permission.VERSION_REGISTER)],
    status_code=201,
    responses={201: {"model": s.VersionOut}, 200: {"model": s.VersionOut}, **ERRORS},
)
@inline(lambda kw: len(kw["body"].files) <= INLINE_MAX_FILES)
def register_version(
    name: str,
    body: s.VersionCreate,
    actor: ActorDep,
    svc: ServicesDep,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> Response:
    """Register a version atomically from already-uploaded blobs.

    Returns 201 for a new version, 200 when an idempotency key replays an earlier one.
    """
    files = [
        NewFile(path=f.path, digest=f.sha256, size=f.size, role=f.role, media_type=f.media_type)
        for f in body.files
    ]
    version, created = svc.registry.register_version(
        actor,
        name,
        files=files,
        metadata=body.metadata,
        description=body.description,
        tags=body.tags,
        aliases=body.aliases,
        idempotency_key=body.idempotency_key or idempotency_key,
        create_model=body.create_model,
    )
    return _json(s.version_out(version), 201 if created else 200)


@router.get(
    "/models/{name}/versions",
    dependencies=[rule(Permission.MODEL_READ)],
    responses={200: {"model": s.PageOut}, **ERRORS},
)
def list_versions(
    name: str,
    actor: ActorDep,
    svc: ServicesDep,
    filter: Filter = None,
    order_by: OrderBy = None,
    page_size: PageSize = None,
    cursor: Cursor = None,
) -> Response:
    """Versions of one model, newest first by default; keyset-paginated."""
    page = svc.registry.search_versions(
        actor, filter=filter, order_by=order_by, page_size=page_size, cursor=cursor, model=name
    )
    return _json({"items": [s.version_out(v) for v in page.items], "next_cursor": page.next_cursor})


@router.get(
    "/versions", dependencies=[rule(Permission.MODEL_READ)], responses={200: {"model": s.PageOut}, **ERRORS}
)
def search_versions(
    actor: ActorDep,
    svc: ServicesDep,
    filter: Filter = None,
    order_by: OrderBy = None,
    page_size: PageSize = None,
    cursor: Cursor = None,
) -> Response:
    """Search versions across all models (filter language: see docs/search.md)."""
    page = svc.registry.search_versions(
        actor, filter=filter, order_by=order_by, page_size=page_size, cursor=cursor
    )
    return _json({"items": [s.version_out(v) for v in page.items], "next_cursor": page.next_cursor})


@router.get(
    "/resolve", dependencies=[rule(Permission.MODEL_READ)], responses={200: {"model": s.VersionOut}, **ERRORS}
)
@inline()
def resolve(
    actor: ActorDep,
    svc: ServicesDep,
    ref: Annotated[str, Query(max_length=300, description="NAME/7, NAME@alias")],
    as_of: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Resolve a version reference, optionally as of a past instant (aliases)."""
    at = parse_instant(as_of, field="as_of") if as_of else None
    return _json(s.version_out(svc.registry.get_version(actor, ref, as_of=at)))


@router.get(
    "/models/{name}/versions/{number}",
    dependencies=[rule(Permission.MODEL_READ)],
    responses={200: {"model": s.VersionOut}, **ERRORS},
)
@inline()
def get_version(name: str, number: int, actor: ActorDep, svc: ServicesDep) -> Response:
    return _json(s.version_out(svc.registry.get_version(actor, f"{name}/{number}")))


@router.patch(
    "/models/{name}/versions/{number}",
    dependencies=[rule(Permission.VERSION_UPDATE)],
    responses={200: {"model": s.VersionOut}, **ERRORS},
)
def update_version(
    name: str, number: int, body: s.VersionPatch, actor: ActorDep, svc: ServicesDep
) -> Response:
    """Edit a sealed version's description or tags (files and provenance are frozen)."""
    v = svc.registry.update_version(actor, f"{name}/{number}", description=body.description, tags=body.tags)
    return _json(s.version_out(v))


@router.get(
    "/models/{name}/versions/{number}/files/{path:path}",
    dependencies=[rule(Permission.MODEL_READ)],
    responses={200: {"content": {"application/octet-stream": {}}}, **ERRORS},
)
def download_file(
    name: str, number: int, path: str, request: Request, actor: ActorDep, svc: ServicesDep
) -> StreamingResponse:
    """Download one file of a version (Range supported; digest in ETag and Repr-Digest)."""
    _, entry = svc.registry.file_entry(actor, f"{name}/{number}", path)
    return stream_blob(
        request,
        digest=entry.digest,
        size=entry.size,
        media_type=entry.media_type,
        filename=entry.path,
        opener=lambda a, b: svc.blobs.open(entry.digest, a, b),
    )


@router.get(
    "/models/{name}/aliases/{alias}",
    dependencies=[rule(Permission.MODEL_READ)],
    responses={200: {"model": s.VersionOut}, **ERRORS},
)
@inline()
def get_alias(
    name: str,
    alias: str,
    actor: ActorDep,
    svc: ServicesDep,
    as_of: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The version an alias points at, now or as of a past instant."""
    at = parse_instant(as_of, field="as_of") if as_of else None
    return _json(s.version_out(svc.registry.get_version(actor, f"{name}@{alias}", as_of=at)))


@router.put(
    "/models/{name}/aliases/{alias}",
    dependencies=[rule(Permission.ALIAS_SET)],
    responses={200: {"model": s.AliasOut}, **ERRORS},
)
def set_alias(name: str, alias: str, body: s.AliasSet, actor: ActorDep, svc: ServicesDep) -> Response:
    """Point an alias at a version (every move is kept)."""
    return _json(s.alias_out(svc.registry.set_alias(actor, name, alias, body.version)))


@router.delete(
    "/models/{name}/aliases/{alias}",
    dependencies=[rule(Permission.ALIAS_SET)],
    status_code=204,
    responses=ERRORS,
)
def delete_alias(name: str, alias: str, actor: ActorDep, svc: ServicesDep) -> Response:
    svc.registry.delete_alias(actor, name, alias)
    return Response(status_code=204)


@router.get(
    "/models/{name}/alias-history",
    dependencies=[rule(Permission.MODEL_READ)],
    responses={200: {"model": s.PageOut}, **ERRORS},
)
def alias_history(
    name: str,
    actor: ActorDep,
    svc: ServicesDep,
    alias: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Every alias move of a model, newest first."""
    items = svc.registry.alias_history(actor, name, alias, limit)
    return _json(
        {"items": [s.alias_out(a) for a in items], "next_cursor": None, "model": normalize_name(name)}
    )
