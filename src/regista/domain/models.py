"""Plain domain objects: what the service layer returns. No SQL, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class FileRole(StrEnum):
    MODEL = "model"
    CONFIG = "config"
    EVAL_REPORT = "eval_report"
    MODEL_CARD = "model_card"
    OTHER = "other"


class PrincipalKind(StrEnum):
    USER = "user"
    TEAM = "team"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting. Built by the HTTP layer (or CLI) from a token, session or proxy header."""

    name: str
    kind: PrincipalKind = PrincipalKind.USER
    principal_id: int | None = None
    # Token restrictions: None means the principal's full rights.
    token_scopes: tuple[str, ...] | None = None
    token_models: tuple[str, ...] | None = None
    request_id: str | None = None
    local_mode: bool = False

    @classmethod
    def system(cls, request_id: str | None = None) -> Actor:
        return cls(name="system", kind=PrincipalKind.SERVICE, request_id=request_id)


@dataclass(frozen=True, slots=True)
class Model:
    id: int
    name: str
    normalized_name: str
    description: str
    owner_team: str | None
    risk_tier: str | None
    tags: dict[str, str]
    archived: bool
    latest_version: int | None
    version_count: int
    next_review_at: datetime | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str
    digest: str
    size: int
    media_type: str
    role: FileRole

    def manifest_item(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.digest,
            "size": self.size,
            "media_type": self.media_type,
            "role": str(self.role),
        }


@dataclass(frozen=True, slots=True)
class Version:
    id: int
    model: str
    number: int
    digest: str
    description: str
    stage: str
    stage_changed_at: datetime
    provenance: dict[str, Any]
    tags: dict[str, str]
    aliases: list[str]
    files: list[FileEntry]
    file_count: int
    total_size: int
    parent: str | None
    created_at: datetime
    created_by: str
    updated_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.number}"

    @property
    def metrics(self) -> dict[str, float]:
        m = self.provenance.get("metrics") or {}
        return dict(m)


@dataclass(frozen=True, slots=True)
class Alias:
    model: str
    name: str
    version: int | None
    at: datetime
    actor: str


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    digest: str
    size: int
    offset: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class BlobStatus:
    digest: str
    size: int
    present: bool
