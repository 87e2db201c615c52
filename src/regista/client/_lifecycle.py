"""Policy, transitions and approvals, break-glass, stage history, review dates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from regista.client._base import BaseClient, Pager, quote
from regista.client.types import Model, Version, parse_time
from regista.domain.names import VersionRef


def _opt_time(value: Any) -> datetime | None:
    return parse_time(value) if value else None


def _instant(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """One check of a transition request (``missing`` lists what failed, when known)."""

    check: str
    passed: bool
    detail: str
    missing: list[str]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CheckOutcome:
        return cls(check=d["check"], passed=bool(d["passed"]), detail=d.get("detail") or "",
                   missing=list(d.get("missing") or []))


@dataclass(frozen=True, slots=True)
class Approval:
    """An approver's decision (``approve`` | ``reject``), bound to the version digest."""

    approver: str
    decision: str
    comment: str
    version_digest: str
    at: datetime

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Approval:
        return cls(approver=d["approver"], decision=d["decision"], comment=d.get("comment") or "",
                   version_digest=d["version_digest"], at=parse_time(d["at"]))


@dataclass(frozen=True, slots=True)
class TransitionRequest:
    """"Move version V to stage S": its checks, approvals and what is still missing."""

    id: int
    model: str
    version: int
    ref: str
    version_digest: str
    from_stage: str
    to_stage: str
    justification: str
    status: str  # pending | applied | rejected | cancelled | superseded
    checks: list[CheckOutcome]
    checks_passed: bool
    approvals: list[Approval]
    approval_count: int
    required_approvals: int | None
    approver_role: str | None
    missing: list[str]
    policy_version: int
    requested_by: str
    requested_at: datetime
    decided_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TransitionRequest:
        return cls(
            id=int(d["id"]), model=d["model"], version=int(d["version"]), ref=d["ref"],
            version_digest=d["version_digest"], from_stage=d["from_stage"],
            to_stage=d["to_stage"], justification=d.get("justification") or "",
            status=d["status"], checks=[CheckOutcome.from_json(c) for c in d.get("checks", [])],
            checks_passed=bool(d.get("checks_passed")),
            approvals=[Approval.from_json(a) for a in d.get("approvals", [])],
            approval_count=int(d.get("approval_count") or 0),
            required_approvals=d.get("required_approvals"), approver_role=d.get("approver_role"),
            missing=list(d.get("missing") or []), policy_version=int(d["policy_version"]),
            requested_by=d["requested_by"], requested_at=parse_time(d["requested_at"]),
            decided_at=_opt_time(d.get("decided_at")), raw=d,
        )


@dataclass(frozen=True, slots=True)
class StageChange:
    """One move of a version's stage; ``request`` is the approved request behind it."""

    from_stage: str | None
    to_stage: str
    at: datetime
    actor: str
    break_glass: bool
    reason: str
    request: TransitionRequest | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StageChange:
        req = d.get("request")
        return cls(from_stage=d.get("from_stage"), to_stage=d["to_stage"], at=parse_time(d["at"]),
                   actor=d["actor"], break_glass=bool(d.get("break_glass")),
                   reason=d.get("reason") or "",
                   request=TransitionRequest.from_json(req) if req else None, raw=d)


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    version: int
    digest: str
    applied_at: datetime
    applied_by: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PolicyVersion:
        return cls(version=int(d["version"]), digest=d["digest"],
                   applied_at=parse_time(d["applied_at"]), applied_by=d["applied_by"])


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """A policy version with its YAML ``document`` and parsed form (``policy``).

    Version 0 is the default policy shipped with Regista (never applied). ``history``
    (newest first) is filled by :meth:`LifecycleMixin.get_policy`.
    """

    version: int
    digest: str
    applied_at: datetime | None
    applied_by: str
    embedded_default: bool
    document: str
    policy: dict[str, Any]
    history: list[PolicyVersion]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any], history: list[PolicyVersion] | None = None) -> PolicyInfo:
        return cls(version=int(d["version"]), digest=d["digest"],
                   applied_at=_opt_time(d.get("applied_at")), applied_by=d["applied_by"],
                   embedded_default=bool(d.get("embedded_default")),
                   document=d.get("document") or "", policy=dict(d.get("policy") or {}),
                   history=list(history or []), raw=d)


@dataclass(frozen=True, slots=True)
class PolicyApplyResult:
    """Outcome of applying a policy; ``changed`` is False when it was already current."""

    version: int
    digest: str
    changed: bool
    applied_at: datetime | None
    applied_by: str
    environments: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PolicyApplyResult:
        return cls(version=int(d["version"]), digest=d["digest"], changed=bool(d["changed"]),
                   applied_at=_opt_time(d.get("applied_at")), applied_by=d["applied_by"],
                   environments=dict(d.get("environments") or {}), raw=d)


class LifecycleMixin(BaseClient):
    """Governance of stages: policy as code, transition requests and approvals."""

    # ------------------------------------------------------------------ policy

    def apply_policy(self, document: str | Path) -> PolicyApplyResult:
        """Validate and apply a policy (YAML text, or a :class:`~pathlib.Path` to a file).

        Raises :class:`regista.errors.Invalid` whose ``details["errors"]`` list each
        problem's ``line``, ``field`` and ``message``.
        """
        text = document.read_text("utf-8") if isinstance(document, Path) else document
        return PolicyApplyResult.from_json(self._json(
            "PUT", "/api/v1/policy", content=text.encode("utf-8"),
            headers={"content-type": "application/yaml"}))

    def get_policy(self, version: int | None = None) -> PolicyInfo:
        """The policy in effect with its history, or one applied ``version`` (0: the default)."""
        if version is not None:
            return PolicyInfo.from_json(self._json("GET", f"/api/v1/policy/versions/{int(version)}"))
        body = self._json("GET", "/api/v1/policy")
        return PolicyInfo.from_json(body["current"],
                                    [PolicyVersion.from_json(h) for h in body.get("history", [])])

    # ------------------------------------------------------------------ transitions

    def _version_path(self, ref: str) -> str:
        parsed = VersionRef.parse(ref)
        if parsed.number is not None:
            model, number = parsed.model, parsed.number
        else:
            v = self._json("GET", "/api/v1/resolve", params={"ref": ref})
            model, number = v["model"], int(v["version"])
        return f"/api/v1/models/{quote(model)}/versions/{number}"

    def request_transition(self, ref: str, stage: str, justification: str) -> TransitionRequest:
        """Ask to move ``ref`` (``NAME/7`` or ``NAME@alias``) to ``stage``; see ``.missing``."""
        return TransitionRequest.from_json(self._json(
            "POST", f"{self._version_path(ref)}/transitions",
            json={"to_stage": stage, "justification": justification}, expected=(201,)))

    def approve_transition(self, request_id: int, comment: str = "") -> TransitionRequest:
        """Approve a request (never one's own); it applies once approvals suffice."""
        return TransitionRequest.from_json(self._json(
            "POST", f"/api/v1/transitions/{int(request_id)}/approve", json={"comment": comment}))

    def reject_transition(self, request_id: int, comment: str) -> TransitionRequest:
        """Reject a request; a comment saying why is required."""
        return TransitionRequest.from_json(self._json(
            "POST", f"/api/v1/transitions/{int(request_id)}/reject", json={"comment": comment}))

    def cancel_transition(self, request_id: int) -> TransitionRequest:
        """Withdraw one's own pending request."""
        return TransitionRequest.from_json(self._json(
            "POST", f"/api/v1/transitions/{int(request_id)}/cancel"))

    def get_transition(self, request_id: int) -> TransitionRequest:
        return TransitionRequest.from_json(self._json("GET", f"/api/v1/transitions/{int(request_id)}"))

    def list_transitions(self, *, status: str | None = None, model: str | None = None,
                         page_size: int | None = None,
                         limit: int | None = None) -> Pager[TransitionRequest]:
        """Requests, newest first (``status="pending"``: the approvals queue), lazily."""
        if page_size is None and limit is not None:
            page_size = max(1, min(limit, 500))
        params = {"status": status, "model": model, "page_size": page_size}
        return self._pages("/api/v1/transitions", params, TransitionRequest.from_json, limit=limit)

    def break_glass(self, ref: str, stage: str, reason: str) -> Version:
        """Force ``ref`` into ``stage`` (admins only; audited as ``transition.break_glass``)."""
        return Version.from_json(self._json(
            "POST", f"{self._version_path(ref)}/break-glass",
            json={"to_stage": stage, "reason": reason}))

    def stage_history(self, ref: str) -> list[StageChange]:
        """Every stage of ``ref``, oldest first, with the request and approvals of each move."""
        body = self._json("GET", f"{self._version_path(ref)}/stage-history")
        return [StageChange.from_json(e) for e in body["items"]]

    # ------------------------------------------------------------------ reviews

    def overdue_reviews(self, at: datetime | str | None = None) -> list[Model]:
        """Models whose next review date is before ``at`` (default now), most overdue first."""
        body = self._json("GET", "/api/v1/reviews/overdue", params={"at": _instant(at)})
        return [Model.from_json(m) for m in body["items"]]

    def mark_reviewed(self, model: str) -> Model:
        """Record a periodic review of ``model``; the next one is due after its tier's interval."""
        return Model.from_json(self._json("POST", f"/api/v1/models/{quote(model)}/reviewed"))
