"""What the client returns: small frozen dataclasses mirroring the wire schemas of API v1.

Field names are the JSON field names (``api/schemas.py``), instants are timezone-aware
``datetime`` objects, and every object keeps the JSON it was built from in ``.raw``
(handy for ``--json`` output and for fields a newer server adds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def parse_time(value: Any) -> datetime:
    """An ISO-8601 instant from the wire ('Z' or an offset) as an aware datetime."""
    return datetime.fromisoformat(str(value))


def _opt_time(value: Any) -> datetime | None:
    return parse_time(value) if value else None


@dataclass(frozen=True, slots=True)
class Model:
    """A named family of versions."""

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
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Model:
        return cls(
            name=d["name"],
            normalized_name=d["normalized_name"],
            description=d.get("description") or "",
            owner_team=d.get("owner_team"),
            risk_tier=d.get("risk_tier"),
            tags=dict(d.get("tags") or {}),
            archived=bool(d.get("archived")),
            latest_version=d.get("latest_version"),
            version_count=int(d.get("version_count") or 0),
            aliases=dict(d.get("aliases") or {}),
            next_review_at=_opt_time(d.get("next_review_at")),
            created_at=parse_time(d["created_at"]),
            created_by=d.get("created_by") or "",
            updated_at=parse_time(d["updated_at"]),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One entry of a version's manifest."""

    path: str
    sha256: str
    size: int
    media_type: str
    role: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FileInfo:
        return cls(path=d["path"], sha256=d["sha256"], size=int(d["size"]),
                   media_type=d.get("media_type") or "application/octet-stream",
                   role=d.get("role") or "other")

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size,
                "media_type": self.media_type, "role": self.role}


@dataclass(frozen=True, slots=True)
class Version:
    """One sealed registration: a number, a manifest of files and provenance metadata."""

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
    files: list[FileInfo]
    file_count: int
    total_size: int
    parent: str | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def number(self) -> int:
        """The version number (same as ``version``)."""
        return self.version

    @property
    def metrics(self) -> dict[str, float]:
        """Evaluation metrics from the provenance metadata."""
        return dict(self.metadata.get("metrics") or {})

    def file(self, path: str) -> FileInfo:
        """The manifest entry at ``path`` (KeyError if there is none)."""
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Version:
        return cls(
            model=d["model"],
            version=int(d["version"]),
            ref=d.get("ref") or f"{d['model']}/{d['version']}",
            digest=d["digest"],
            description=d.get("description") or "",
            stage=d.get("stage") or "",
            stage_changed_at=parse_time(d["stage_changed_at"]),
            metadata=dict(d.get("metadata") or {}),
            tags=dict(d.get("tags") or {}),
            aliases=list(d.get("aliases") or []),
            files=[FileInfo.from_json(f) for f in d.get("files") or []],
            file_count=int(d.get("file_count") or 0),
            total_size=int(d.get("total_size") or 0),
            parent=d.get("parent"),
            created_at=parse_time(d["created_at"]),
            created_by=d.get("created_by") or "",
            updated_at=parse_time(d["updated_at"]),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One alias move: ``version`` is None when the alias was deleted."""

    model: str
    alias: str
    version: int | None
    at: datetime
    actor: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AliasEvent:
        return cls(model=d["model"], alias=d["alias"], version=d.get("version"),
                   at=parse_time(d["at"]), actor=d.get("actor") or "", raw=d)


@dataclass(frozen=True, slots=True)
class BlobStatus:
    """Whether the registry already holds a blob."""

    sha256: str
    present: bool
    size: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BlobStatus:
        return cls(sha256=d["sha256"], present=bool(d["present"]), size=int(d.get("size") or 0))


@dataclass(frozen=True, slots=True)
class UploadState:
    """Where a resumable upload stands; ``complete`` once every byte is stored."""

    upload_id: str
    sha256: str
    size: int
    offset: int
    complete: bool

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> UploadState:
        return cls(upload_id=d.get("upload_id") or "", sha256=d["sha256"], size=int(d["size"]),
                   offset=int(d["offset"]), complete=bool(d["complete"]))


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What a server runs on (``GET /api/v1/info``)."""

    version: str
    database: str
    blob_store: str
    auth_mode: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ServerInfo:
        return cls(version=str(d.get("version", "")), database=str(d.get("database", "")),
                   blob_store=str(d.get("blob_store", "")), auth_mode=str(d.get("auth_mode", "")),
                   raw=d)
