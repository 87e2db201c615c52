"""Wire schemas of REST API v1 (requests validated by pydantic; responses documented)."""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from regista.domain.models import Alias, BlobStatus, FileEntry, Model, Upload, Version


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorOut(BaseModel):
    error: ErrorBody


ERROR_REF = "#/components/schemas/ErrorOut"


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A route's error answers for the OpenAPI document: every one an :class:`ErrorOut`.

    References, not ``{"model": ErrorOut}``: FastAPI builds a pydantic field for every
    model answer of every route when the route is declared (some 580 of them, a tenth of
    the server's start-up). ``regista.api.app`` puts ``ErrorOut``'s schema in the
    document's components once.
    """
    return {c: {"description": HTTPStatus(c).phrase,
                "content": {"application/json": {"schema": {"$ref": ERROR_REF}}}}
            for c in codes}


class ModelCreate(Strict):
    name: str = Field(max_length=200)
    description: str = ""
    owner_team: str | None = None
    risk_tier: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class ModelPatch(Strict):
    description: str | None = None
    owner_team: str | None = None
    risk_tier: str | None = None
    tags: dict[str, str] | None = None


class ModelOut(BaseModel):
    name: str
    normalized_name: str
    description: str
    owner_team: str | None
    risk_tier: str | None
    tags: dict[str, str]
    archived: bool
    latest_version: int | None
    version_count: int
    aliases: dict[str, int]
    next_review_at: datetime | None
    created_at: datetime
    created_by: str
    updated_at: datetime


class FileIn(Strict):
    path: str = Field(max_length=2048)
    sha256: str = Field(max_length=128)
    size: int = Field(ge=0)
    role: str = "other"
    media_type: str = "application/octet-stream"


class FileOut(BaseModel):
    path: str
    sha256: str
    size: int
    media_type: str
    role: str


class VersionCreate(Strict):
    files: list[FileIn] = Field(max_length=10_000)
    metadata: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list, max_length=20)
    idempotency_key: str | None = Field(default=None, max_length=128)
    create_model: bool = False


class VersionPatch(Strict):
    description: str | None = None
    tags: dict[str, str] | None = None


class VersionOut(BaseModel):
    model: str
    version: int
    ref: str
    digest: str
    description: str
    stage: str
    stage_changed_at: datetime
    metadata: dict[str, Any]
    tags: dict[str, str]
    aliases: list[str]
    files: list[FileOut]
    file_count: int
    total_size: int
    parent: str | None
    created_at: datetime
    created_by: str
    updated_at: datetime


class PageOut(BaseModel):
    items: list[Any]
    next_cursor: str | None


class AliasSet(Strict):
    version: int = Field(ge=1)


class AliasOut(BaseModel):
    model: str
    alias: str
    version: int | None
    at: datetime
    actor: str


class BlobCheck(Strict):
    digests: list[str] = Field(max_length=10_000)


class BlobStatusOut(BaseModel):
    sha256: str
    present: bool
    size: int


class UploadCreate(Strict):
    sha256: str = Field(max_length=128)
    size: int = Field(ge=0)


class UploadOut(BaseModel):
    upload_id: str
    sha256: str
    size: int
    offset: int
    complete: bool


def model_out(m: Model) -> dict[str, Any]:
    return {
        "name": m.name,
        "normalized_name": m.normalized_name,
        "description": m.description,
        "owner_team": m.owner_team,
        "risk_tier": m.risk_tier,
        "tags": m.tags,
        "archived": m.archived,
        "latest_version": m.latest_version,
        "version_count": m.version_count,
        "aliases": m.aliases,
        "next_review_at": m.next_review_at,
        "created_at": m.created_at,
        "created_by": m.created_by,
        "updated_at": m.updated_at,
    }


def file_out(f: FileEntry) -> dict[str, Any]:
    return {"path": f.path, "sha256": f.digest, "size": f.size, "media_type": f.media_type,
            "role": str(f.role)}


def version_out(v: Version) -> dict[str, Any]:
    return {
        "model": v.model,
        "version": v.number,
        "ref": v.ref,
        "digest": v.digest,
        "description": v.description,
        "stage": v.stage,
        "stage_changed_at": v.stage_changed_at,
        "metadata": v.provenance,
        "tags": v.tags,
        "aliases": v.aliases,
        "files": [file_out(f) for f in v.files],
        "file_count": v.file_count,
        "total_size": v.total_size,
        "parent": v.parent,
        "created_at": v.created_at,
        "created_by": v.created_by,
        "updated_at": v.updated_at,
    }


def alias_out(a: Alias) -> dict[str, Any]:
    return {"model": a.model, "alias": a.name, "version": a.version, "at": a.at,
            "actor": a.actor}


def blob_status_out(b: BlobStatus) -> dict[str, Any]:
    return {"sha256": b.digest, "present": b.present, "size": b.size}


def upload_out(u: Upload) -> dict[str, Any]:
    return {"upload_id": u.id, "sha256": u.digest, "size": u.size, "offset": u.offset,
            "complete": u.offset == u.size}
