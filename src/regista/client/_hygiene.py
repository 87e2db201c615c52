"""Registry hygiene: the debt report, garbage collection, blob verification."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from regista.client._base import BaseClient
from regista.client.types import parse_time


@dataclass(frozen=True, slots=True)
class HygieneReport:
    """Hygiene debt in counts; every section, with its lists, is in ``raw``."""

    generated_at: datetime
    orphaned_blobs: int
    orphaned_bytes: int
    stale_uploads: int
    superseded_versions: int
    unverified_versions: int
    verification_failures: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> HygieneReport:
        return cls(
            generated_at=parse_time(d["generated_at"]),
            orphaned_blobs=int(d["orphaned_blobs"]["count"]),
            orphaned_bytes=int(d["orphaned_blobs"]["bytes"]),
            stale_uploads=int(d["stale_uploads"]["count"]),
            superseded_versions=int(d["superseded_versions"]["count"]),
            unverified_versions=int(d["unverified_versions"]["count"]),
            verification_failures=int(d["verification_failures"]["count"]),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class GCResult:
    """What a garbage collection removed (or would remove, when ``dry_run``)."""

    dry_run: bool
    grace_seconds: int
    blobs: int
    bytes_freed: int
    uploads: int
    upload_files: int
    staging_files: int | None
    skipped: int
    truncated: bool
    digests: list[str]
    audit_seq: int | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GCResult:
        return cls(dry_run=bool(d["dry_run"]), grace_seconds=int(d["grace_seconds"]),
                   blobs=int(d["blobs"]), bytes_freed=int(d["bytes_freed"]),
                   uploads=int(d["uploads"]), upload_files=int(d["upload_files"]),
                   staging_files=d.get("staging_files"), skipped=int(d.get("skipped") or 0),
                   truncated=bool(d.get("truncated")), digests=list(d.get("digests") or []),
                   audit_seq=d.get("audit_seq"), raw=d)


@dataclass(frozen=True, slots=True)
class BlobVerification:
    """The outcome of re-hashing stored blobs; ``missing``/``corrupt`` hold digests.

    Each failure, with the versions referencing the blob, is in ``raw``.
    """

    checked: int
    ok: int
    missing: list[str]
    corrupt: list[str]
    errors: int
    audit_seq: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def failed(self) -> bool:
        return bool(self.missing or self.corrupt)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BlobVerification:
        return cls(checked=int(d["checked"]), ok=int(d["ok"]),
                   missing=[f["digest"] for f in d.get("missing") or []],
                   corrupt=[f["digest"] for f in d.get("corrupt") or []],
                   errors=int(d.get("errors") or 0), audit_seq=int(d["audit_seq"]), raw=d)


class HygieneMixin(BaseClient):
    """Report hygiene debt, collect garbage, verify stored blobs."""

    def hygiene_report(self, *, limit: int | None = None,
                       verify_window_seconds: int | None = None) -> HygieneReport:
        """The registry's hygiene debt (needs ``audit:read``); ``limit`` caps every list."""
        params = {"limit": limit, "verify_window_seconds": verify_window_seconds}
        return HygieneReport.from_json(self._json("GET", "/api/v1/hygiene/report", params=params))

    def hygiene_gc(self, *, dry_run: bool = False, grace_seconds: int | None = None) -> GCResult:
        """Delete orphaned blobs older than ``grace_seconds`` (server default: a day) and
        stale uploads; ``dry_run`` only reports what would go (needs ``hygiene:run``)."""
        body: dict[str, Any] = {"dry_run": dry_run}
        if grace_seconds is not None:
            body["grace_seconds"] = grace_seconds
        return GCResult.from_json(self._json("POST", "/api/v1/hygiene/gc", json=body))

    def hygiene_verify_blobs(self, *, limit: int | None = None,
                             older_than_seconds: int | None = None) -> BlobVerification:
        """Re-hash stored blobs on the server (never-verified first; needs ``hygiene:run``)."""
        body = {"limit": limit, "older_than_seconds": older_than_seconds}
        return BlobVerification.from_json(
            self._json("POST", "/api/v1/hygiene/verify-blobs", json=body))
