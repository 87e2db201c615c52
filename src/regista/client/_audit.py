"""The audit log: list, export (JSON Lines), verify the hash chain, checkpoints."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from regista.client._base import BaseClient, Pager
from regista.client.types import parse_time


def _instant(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One event of the hash-chained log."""

    seq: int
    at: datetime
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
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AuditEvent:
        return cls(seq=int(d["seq"]), at=parse_time(d["at"]), actor=d["actor"],
                   action=d["action"], outcome=d.get("outcome") or "ok", model=d.get("model"),
                   version=d.get("version"), target=d.get("target"),
                   request_id=d.get("request_id"), before=d.get("before"), after=d.get("after"),
                   prev_hash=d["prev_hash"], hash=d["hash"], raw=d)


@dataclass(frozen=True, slots=True)
class AuditCheckpoint:
    """A pinned (seq, hash) of the chain; keep these outside the registry."""

    seq: int
    hash: str
    at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AuditCheckpoint:
        return cls(seq=int(d["seq"]), hash=d["hash"],
                   at=parse_time(d["at"]) if d.get("at") else None, raw=d)


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """The outcome of verifying the chain; ``first_bad_*`` name the first bad event."""

    ok: bool
    events: int
    head_seq: int
    head_hash: str
    checkpoints_checked: int
    first_bad_seq: int | None
    first_bad_reason: str | None
    first_bad_message: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AuditVerification:
        bad = d.get("first_bad") or {}
        head = d.get("head") or {}
        return cls(ok=bool(d["ok"]), events=int(d["events"]), head_seq=int(head.get("seq", 0)),
                   head_hash=str(head.get("hash", "")),
                   checkpoints_checked=int(d.get("checkpoints_checked") or 0),
                   first_bad_seq=bad.get("seq"), first_bad_reason=bad.get("reason"),
                   first_bad_message=bad.get("message"), raw=d)


class AuditMixin(BaseClient):
    """Read, export and verify the audit log."""

    @staticmethod
    def _audit_params(
        model: str | None, version: int | None, actor: str | None, action: str | None,
        outcome: str | None, since: datetime | str | None, until: datetime | str | None,
    ) -> dict[str, str | int | None]:
        return {"model": model, "version": version, "actor": actor, "action": action,
                "outcome": outcome, "since": _instant(since), "until": _instant(until)}

    def audit_events(
        self,
        *,
        model: str | None = None,
        version: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        oldest_first: bool = False,
        page_size: int | None = None,
        limit: int | None = None,
    ) -> Pager[AuditEvent]:
        """Events matching the filters (newest first unless ``oldest_first``), lazily paged.

        ``action`` is exact (``version.register``) or a family (``version.*``).
        """
        params: dict[str, str | int | None] = self._audit_params(
            model, version, actor, action, outcome, since, until)
        params.update(order="asc" if oldest_first else "desc", page_size=page_size)
        return self._pages("/api/v1/audit/events", params, AuditEvent.from_json, limit=limit)

    def audit_export(
        self,
        *,
        model: str | None = None,
        version: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> Iterator[bytes]:
        """The matching events as JSON Lines (oldest first), streamed in chunks of bytes."""
        params = self._audit_params(model, version, actor, action, outcome, since, until)
        with self._stream("GET", "/api/v1/audit/export", params=params) as response:
            yield from response.iter_bytes()

    def audit_verify(
        self,
        checkpoints: Sequence[Mapping[str, Any]] = (),
        *,
        use_stored_checkpoints: bool = True,
    ) -> AuditVerification:
        """Verify the chain on the server; pass checkpoints kept elsewhere to catch truncation."""
        body = {"checkpoints": [{"seq": int(c["seq"]), "hash": str(c["hash"])} for c in checkpoints],
                "use_stored_checkpoints": use_stored_checkpoints}
        return AuditVerification.from_json(self._json("POST", "/api/v1/audit/verify", json=body))

    def audit_checkpoint(self) -> AuditCheckpoint:
        """Verify the chain since the last checkpoint and pin its head."""
        return AuditCheckpoint.from_json(
            self._json("POST", "/api/v1/audit/checkpoints", expected=(201,)))

    def audit_checkpoints(self) -> list[AuditCheckpoint]:
        """Every stored checkpoint, oldest first."""
        body = self._json("GET", "/api/v1/audit/checkpoints")
        return [AuditCheckpoint.from_json(c) for c in body["items"]]
