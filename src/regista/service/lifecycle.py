"""Lifecycle: transition requests, approvals, break-glass, stage history, review dates.

Rules come from the current policy (``service/policy.py``), never from ``if``s here:
which moves are allowed, which checks and approvals each needs, whether superseded
versions are archived, and which stages hold a single version per model.

Nothing else moves a stage. A request is applied, in one transaction, only when its
checks pass (re-evaluated at that moment) and enough approvals bound to the version's
digest are recorded; an admin may force a move only through :meth:`break_glass`, which
is audited as a distinct ``transition.break_glass`` event.

Concurrency: every stage change of a model takes the model's row lock first (PostgreSQL;
SQLite serialises writers anyway), then the request's, then the audit head, so
concurrent approvals of competing requests apply one after the other and the policy's
invariants hold. Blob re-hashing (``integrity_verified``) runs before the transaction,
never while holding a lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row
from sqlalchemy.exc import IntegrityError

from regista.domain.models import Actor, FileRole, Model, Page, Version
from regista.domain.names import normalize_name, validate_name
from regista.domain.policy import (
    REGISTERED,
    REQUEST_STATUSES,
    ApprovalRecord,
    CheckResult,
    Policy,
    StageEvent,
    Threshold,
    TransitionRequest,
    TransitionSpec,
    metadata_subject,
)
from regista.errors import (
    Conflict,
    Forbidden,
    Invalid,
    InvalidCursor,
    NotFound,
    RegistryError,
)
from regista.service import audit
from regista.service.access import Authorizer, Permission
from regista.service.clock import utcnow
from regista.service.policy import CurrentPolicy, PolicyService
from regista.service.registry import RegistryService, manifest_digest
from regista.store.blobs.base import BlobStore
from regista.store.sql import lifecycle as q
from regista.store.sql import registry as rq
from regista.store.sql.engine import Database

MAX_TEXT = 20_000
INTEGRITY = "integrity_verified"
ARCHIVED_BY_SUPERSEDE = "transition.archive_superseded"


def _text(value: str | None, what: str, *, required: bool) -> str:
    """A free-text field (justification, comment, reason), stripped and bounded."""
    if value is not None and not isinstance(value, str):
        raise Invalid(f"{what} must be text", details={"field": what})
    text = (value or "").strip()
    if required and not text:
        raise Invalid(f"{what} must not be empty", details={"field": what})
    if len(text) > MAX_TEXT:
        raise Invalid(f"{what} is longer than {MAX_TEXT} characters", details={"field": what})
    return text


class LifecycleService:
    """Transitions between stages, their approvals, and periodic model reviews."""

    def __init__(
        self,
        db: Database,
        authz: Authorizer,
        policy: PolicyService,
        registry: RegistryService,
        blob_store: BlobStore,
        *,
        page_default: int = 50,
        page_max: int = 500,
    ) -> None:
        self.db = db
        self.authz = authz
        self.policy = policy
        self.registry = registry
        self.blob_store = blob_store
        self.page_default = page_default
        self.page_max = page_max

    # ------------------------------------------------------------------ requests

    def request_transition(
        self, actor: Actor, ref: str, to_stage: str, justification: str
    ) -> TransitionRequest:
        """Ask to move a version to ``to_stage``; evaluate and store the policy's checks.

        The request is ``pending`` until enough approvals arrive. A move that needs no
        approval is applied at once when its checks pass (there is nobody to wait for);
        otherwise it stays pending and shows what is missing.
        """
        justification = _text(justification, "justification", required=True)
        with self.db.read() as conn:
            vid = self.registry.resolve(conn, ref)
            ctx = self._context(conn, vid)
            version = rq.load_versions(conn, [vid])[0]
            current = self.policy.current(conn)
        self.authz.require(actor, Permission.TRANSITION_REQUEST, model=ctx.normalized_name,
                           team=ctx.owner_team)
        rule = self._rule(current, ctx.stage, to_stage, version.ref)
        integrity = self._verify_integrity(version) if INTEGRITY in rule.checks else None

        with self.db.write() as conn:
            q.lock_model(conn, ctx.model_id)
            ctx = self._context(conn, vid)
            current = self.policy.current(conn)
            rule = self._rule(current, ctx.stage, to_stage, version.ref)
            if ctx.archived and to_stage != current.policy.archive_stage:
                raise Conflict(f"model {ctx.model_name!r} is archived; its versions can only be "
                               "archived", details={"model": ctx.model_name, "rule": "model_archived"})
            for pending in q.pending_request_rows(conn, vid):
                if pending.to_stage == to_stage:
                    raise Conflict(
                        f"request {pending.id} to move {version.ref} to {to_stage!r} is already "
                        "pending; approve or cancel it first",
                        details={"request_id": pending.id, "rule": "duplicate_request"},
                    )
            checks = self._evaluate(conn, current.policy, to_stage, rule, ctx, version, integrity)
            now = utcnow()
            rid = q.insert_request(conn, {
                "version_id": vid, "version_digest": ctx.digest, "from_stage": ctx.stage,
                "to_stage": to_stage, "justification": justification, "status": "pending",
                "checks": [c.to_json() for c in checks], "policy_version": current.version,
                "requested_by": actor.name, "requested_at": now,
            })
            audit.append(
                conn, actor, "transition.request", at=now, model=ctx.normalized_name,
                version=ctx.number, target=f"transition/{rid}",
                after={"from": ctx.stage, "to": to_stage, "justification": justification,
                       "policy_version": current.version,
                       "failing_checks": [c.check for c in checks if not c.passed],
                       "required_approvals": rule.approvals.count},
            )
            if rule.approvals.count == 0 and all(c.passed for c in checks):
                self._apply(conn, actor, rid, ctx, to_stage, current.policy, rule, checks, now,
                            approvers=[], justification=justification)
            return self._requests(conn, [rid], current.policy)[0]

    def approve(self, actor: Actor, request_id: int, comment: str = "") -> TransitionRequest:
        """Approve a pending request; apply it when approvals suffice and checks pass."""
        return self._decide(actor, request_id, "approve", comment)

    def reject(self, actor: Actor, request_id: int, comment: str) -> TransitionRequest:
        """Reject a pending request (a comment saying why is required); it is then closed."""
        return self._decide(actor, request_id, "reject", comment)

    def _decide(self, actor: Actor, request_id: int, decision: str,
                comment: str) -> TransitionRequest:
        comment = _text(comment, "comment", required=decision == "reject")
        with self.db.read() as conn:
            row = self._request_row(conn, request_id)
            ctx = self._context(conn, row.version_id)
            version = rq.load_versions(conn, [row.version_id])[0]
            current = self.policy.current(conn)
        self.authz.require(actor, Permission.TRANSITION_APPROVE, model=ctx.normalized_name,
                           team=ctx.owner_team)
        self._require_pending(row, decision)
        self._refuse_self(actor, row, ctx, decision)  # before re-hashing anything
        rule = current.policy.transition(row.from_stage, row.to_stage)
        integrity = None
        if decision == "approve" and rule is not None and INTEGRITY in rule.checks:
            integrity = self._verify_integrity(version)
        try:
            with self.db.write() as conn:
                return self._decide_in(conn, actor, request_id, decision, comment, version,
                                       integrity)
        except IntegrityError:
            # The unique (request, approver) constraint: the same approver raced themselves.
            raise self._already_decided(actor, request_id) from None

    def _decide_in(self, conn: Connection, actor: Actor, request_id: int, decision: str,
                   comment: str, version: Version, integrity: CheckResult | None,
                   ) -> TransitionRequest:
        first = self._request_row(conn, request_id)
        q.lock_model(conn, first.model_id)
        row = self._request_row(conn, request_id, for_update=True)
        self._require_pending(row, decision)
        ctx = self._context(conn, row.version_id)
        current = self.policy.current(conn)
        target = f"transition/{row.id}"
        self._refuse_self(actor, row, ctx, decision)
        rule = current.policy.transition(row.from_stage, row.to_stage)
        if rule is None:
            raise Conflict(
                f"the current policy (version {current.version}) no longer allows "
                f"{row.from_stage} → {row.to_stage}; request {row.id} cannot be {decision}d",
                details={"rule": "transition_not_allowed", "request_id": row.id,
                         "policy_version": current.version})
        role = rule.approvals.role
        if not self._holds_role(actor, role, ctx):
            raise Forbidden(f"{actor.name} does not hold role {role!r} required to {decision} "
                            f"{row.from_stage} → {row.to_stage} of {ctx.model_name}",
                            details={**self._denial(ctx, row.id, "approver_role"), "role": role})
        if q.has_decided(conn, row.id, actor.name):
            raise self._already_decided(actor, row.id)
        if ctx.stage != row.from_stage or ctx.digest != row.version_digest:
            # Defensive: stage moves supersede pending requests, and versions are immutable.
            raise Conflict(f"version {ctx.model_name}/{ctx.number} no longer matches request "
                           f"{row.id}; it cannot be {decision}d",
                           details={"rule": "request_stale", "request_id": row.id})
        now = utcnow()
        if decision == "reject":
            q.insert_approval(conn, {"request_id": row.id, "approver": actor.name,
                                     "decision": "reject", "comment": comment,
                                     "version_digest": ctx.digest, "at": now})
            q.update_request(conn, row.id, {"status": "rejected", "decided_at": now})
            audit.append(conn, actor, "transition.reject", at=now, model=ctx.normalized_name,
                         version=ctx.number, target=target, before={"status": "pending"},
                         after={"status": "rejected", "comment": comment})
            return self._requests(conn, [row.id], current.policy)[0]

        checks = self._evaluate(conn, current.policy, row.to_stage, rule, ctx, version,
                                integrity)
        failing = [c for c in checks if not c.passed]
        if failing:
            raise Conflict(
                f"request {row.id} cannot be approved while checks fail: "
                + "; ".join(f"{c.check} ({c.detail})" if c.detail else c.check for c in failing),
                details={"rule": "checks_failing", "request_id": row.id,
                         "checks": [c.to_json() for c in failing]},
            )
        q.insert_approval(conn, {"request_id": row.id, "approver": actor.name,
                                 "decision": "approve", "comment": comment,
                                 "version_digest": ctx.digest, "at": now})
        approvers = [a.approver for a in q.approval_rows(conn, [row.id]).get(row.id, [])
                     if a.decision == "approve" and a.version_digest == ctx.digest]
        audit.append(conn, actor, "transition.approve", at=now, model=ctx.normalized_name,
                     version=ctx.number, target=target,
                     after={"comment": comment, "version_digest": ctx.digest,
                            "approvals": len(approvers), "required": rule.approvals.count})
        if len(approvers) >= rule.approvals.count:
            self._apply(conn, actor, row.id, ctx, row.to_stage, current.policy, rule, checks, now,
                        approvers=approvers, justification=row.justification)
        else:
            q.update_request(conn, row.id, {"checks": [c.to_json() for c in checks]})
        return self._requests(conn, [row.id], current.policy)[0]

    def cancel(self, actor: Actor, request_id: int) -> TransitionRequest:
        """Withdraw a pending request; only its requester may."""
        with self.db.write() as conn:
            first = self._request_row(conn, request_id)
            q.lock_model(conn, first.model_id)
            row = self._request_row(conn, request_id, for_update=True)
            ctx = self._context(conn, row.version_id)
            self.authz.require(actor, Permission.TRANSITION_REQUEST,
                               model=ctx.normalized_name, team=ctx.owner_team)
            if row.requested_by != actor.name:
                raise Forbidden(f"only the requester ({row.requested_by}) may cancel "
                                f"transition {row.id}",
                                details={**self._denial(ctx, row.id, "requester_only"),
                                         "permission": Permission.TRANSITION_REQUEST.value})
            self._require_pending(row, "cancel")
            now = utcnow()
            q.update_request(conn, row.id, {"status": "cancelled", "decided_at": now})
            audit.append(conn, actor, "transition.cancel", at=now, model=ctx.normalized_name,
                         version=ctx.number, target=f"transition/{row.id}",
                         before={"status": "pending"}, after={"status": "cancelled"})
            return self._requests(conn, [row.id], self.policy.current(conn).policy)[0]

    # ------------------------------------------------------------------ break-glass

    def break_glass(self, actor: Actor, ref: str, to_stage: str, reason: str) -> Version:
        """Force a version into ``to_stage``, bypassing checks and approvals (admins only).

        The reason is mandatory. The move is recorded as a ``transition.break_glass``
        audit event with outcome ``break_glass`` (listing the checks it bypassed) and a
        stage event flagged ``break_glass``. Invariants still hold: when the target stage
        holds a single version, or the policy's rule for this move archives what it
        supersedes, the versions already there are archived in the same transaction.
        """
        reason = _text(reason, "reason", required=True)
        with self.db.read() as conn:
            vid = self.registry.resolve(conn, ref)
            ctx = self._context(conn, vid)
        self.authz.require(actor, Permission.TRANSITION_BREAK_GLASS, model=ctx.normalized_name,
                           team=ctx.owner_team)
        with self.db.write() as conn:
            q.lock_model(conn, ctx.model_id)
            ctx = self._context(conn, vid)
            version = rq.load_versions(conn, [vid])[0]
            current = self.policy.current(conn)
            policy = current.policy
            self._known_stage(policy, to_stage)
            if ctx.stage == to_stage:
                raise Conflict(f"{version.ref} is already in stage {to_stage!r}",
                               details={"rule": "same_stage", "stage": to_stage})
            rule = policy.transition(ctx.stage, to_stage)
            bypassed = [c.check for c in self._evaluate(conn, policy, to_stage, rule, ctx, version,
                                                        None, cheap_only=True) if not c.passed]
            now = utcnow()
            archived = self._move(conn, actor, ctx, to_stage, policy, now, request_id=None,
                                  archive_others=rule is not None and rule.archive_superseded,
                                  break_glass=True, reason=reason)
            audit.append(
                conn, actor, "transition.break_glass", at=now, model=ctx.normalized_name,
                version=ctx.number, target=f"stage/{to_stage}", outcome="break_glass",
                before={"stage": ctx.stage},
                after={"stage": to_stage, "reason": reason, "bypassed_checks": bypassed,
                       "allowed_by_policy": rule is not None,
                       "required_approvals": rule.approvals.count if rule else None,
                       "archived": archived, "policy_version": current.version},
            )
            return rq.load_versions(conn, [vid])[0]

    # ------------------------------------------------------------------ reading

    def get_request(self, actor: Actor, request_id: int) -> TransitionRequest:
        with self.db.read() as conn:
            row = self._request_row(conn, request_id)
            self.authz.require(actor, Permission.MODEL_READ, model=row.normalized_name)
            return self._requests(conn, [row.id], self.policy.current(conn).policy)[0]

    def list_requests(
        self, actor: Actor, *, status: str | None = None, model: str | None = None,
        page_size: int | None = None, cursor: str | None = None,
    ) -> Page[TransitionRequest]:
        """Requests, newest first, optionally of one status and one model."""
        if status is not None and status not in REQUEST_STATUSES:
            raise Invalid(f"status must be one of {', '.join(REQUEST_STATUSES)}",
                          details={"field": "status", "value": str(status)[:40]})
        size = self.page_default if page_size is None else page_size
        if size < 1 or size > self.page_max:
            raise Invalid(f"page_size must be between 1 and {self.page_max}",
                          details={"field": "page_size"})
        before = None
        if cursor:
            if not cursor.isdigit() or len(cursor) > 18:
                raise InvalidCursor("cursor is not valid", details={"field": "cursor"})
            before = int(cursor)
        with self.db.read() as conn:
            model_id = None
            if model is not None:
                validate_name(model)
                mrow = rq.model_row(conn, normalize_name(model))
                if mrow is None:
                    raise NotFound(f"model {model!r} not found", details={"model": model})
                self.authz.require(actor, Permission.MODEL_READ, model=mrow.normalized_name,
                                   team=mrow.owner_team)
                model_id = mrow.id
            else:
                self.authz.require(actor, Permission.MODEL_READ)
            ids = q.list_request_ids(conn, status=status, model_id=model_id, before_id=before,
                                     limit=size + 1)
            items = self._requests(conn, ids[:size], self.policy.current(conn).policy)
        return Page(items=items, next_cursor=str(ids[size - 1]) if len(ids) > size else None)

    def stage_history(self, actor: Actor, ref: str) -> list[StageEvent]:
        """Every stage of a version, oldest first, with the request and approvals behind
        each move (registration is the first entry)."""
        with self.db.read() as conn:
            vid = self.registry.resolve(conn, ref)
            ctx = self._context(conn, vid)
            self.authz.require(actor, Permission.MODEL_READ, model=ctx.normalized_name,
                               team=ctx.owner_team)
            created = q.version_created(conn, vid)
            assert created is not None
            rows = q.stage_event_rows(conn, vid)
            rids = sorted({r.request_id for r in rows if r.request_id is not None})
            policy = self.policy.current(conn).policy
            requests = {r.id: r for r in self._requests(conn, rids, policy)}
        events = [StageEvent(from_stage=None, to_stage=REGISTERED, at=created.created_at,
                             actor=created.created_by, break_glass=False, reason="registered")]
        events.extend(
            StageEvent(from_stage=r.from_stage, to_stage=r.to_stage, at=r.at, actor=r.actor,
                       break_glass=bool(r.break_glass), reason=r.reason,
                       request=requests.get(r.request_id) if r.request_id else None)
            for r in rows
        )
        return events

    # ------------------------------------------------------------------ reviews

    def mark_reviewed(self, actor: Actor, model: str) -> Model:
        """Record a periodic review of a model: the next one is due after its tier's interval.

        A review is a governance sign-off, so it needs ``transition:approve`` on the model.
        """
        validate_name(model)
        with self.db.write() as conn:
            row = q.model_for_review(conn, normalize_name(model))
            if row is None:
                raise NotFound(f"model {model!r} not found", details={"model": model})
            self.authz.require(actor, Permission.TRANSITION_APPROVE, model=row.normalized_name,
                               team=row.owner_team)
            interval = self.policy.current(conn).policy.review_interval(row.risk_tier)
            now = utcnow()
            nxt = now + interval if interval else None
            q.set_next_review(conn, row.id, nxt, now)
            audit.append(conn, actor, "model.review", at=now, model=row.normalized_name,
                         before={"next_review_at": row.next_review_at},
                         after={"reviewed_at": now, "next_review_at": nxt,
                                "risk_tier": row.risk_tier})
            return self.registry.models_by_id(conn, [row.id])[0]

    def overdue(self, actor: Actor, now: datetime | None = None, *,
                limit: int = 1000) -> list[Model]:
        """Models (not archived) whose next review date is before ``now``, most overdue first."""
        self.authz.require(actor, Permission.MODEL_READ)
        at = now or utcnow()
        with self.db.read() as conn:
            ids = q.overdue_model_ids(conn, at, max(1, min(limit, 10_000)))
            return self.registry.models_by_id(conn, ids)

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _context(conn: Connection, version_id: int) -> Row[Any]:
        ctx = q.version_context(conn, version_id)
        if ctx is None:
            raise NotFound("version not found", details={"version_id": version_id})
        return ctx

    @staticmethod
    def _request_row(conn: Connection, request_id: int, *, for_update: bool = False) -> Row[Any]:
        if not isinstance(request_id, int) or isinstance(request_id, bool) or request_id < 1:
            raise Invalid("a transition request id is a positive integer",
                          details={"field": "request_id"})
        row = q.request_row(conn, request_id, for_update=for_update)
        if row is None:
            raise NotFound(f"transition request {request_id} not found",
                           details={"request_id": request_id})
        return row

    @staticmethod
    def _require_pending(row: Row[Any], action: str) -> None:
        if row.status == "pending":
            return
        why = {
            "applied": "it was already applied",
            "rejected": "it was rejected",
            "cancelled": "it was cancelled by its requester",
            "superseded": "it was superseded: the version changed stage since it was requested",
        }.get(row.status, f"its status is {row.status}")
        done = {"approve": "approved", "reject": "rejected", "cancel": "cancelled"}[action]
        raise Conflict(f"transition request {row.id} cannot be {done}: {why}",
                       details={"rule": "request_not_pending", "request_id": row.id,
                                "status": row.status})

    @staticmethod
    def _known_stage(policy: Policy, stage: str) -> None:
        if not isinstance(stage, str) or not policy.has_stage(stage):
            raise Invalid(f"unknown stage {str(stage)[:40]!r}; stages: {', '.join(policy.stages)}",
                          details={"field": "to_stage", "rule": "unknown_stage",
                                   "stages": list(policy.stages)})

    def _rule(self, current: CurrentPolicy, from_stage: str, to_stage: str,
              ref: str) -> TransitionSpec:
        policy = current.policy
        self._known_stage(policy, to_stage)
        if from_stage == to_stage:
            raise Conflict(f"{ref} is already in stage {to_stage!r}",
                           details={"rule": "same_stage", "stage": to_stage})
        rule = policy.transition(from_stage, to_stage)
        if rule is None:
            allowed = policy.allowed_from(from_stage)
            raise Conflict(
                f"the policy (version {current.version}) does not allow {from_stage} → "
                f"{to_stage}; from {from_stage!r} a version may move to: "
                f"{', '.join(allowed) if allowed else 'nowhere'}",
                details={"rule": "transition_not_allowed", "from": from_stage, "to": to_stage,
                         "allowed": allowed, "policy_version": current.version},
            )
        return rule

    def _holds_role(self, actor: Actor, role: str, ctx: Row[Any]) -> bool:
        has_role = getattr(self.authz, "has_role", None)
        if has_role is None:
            # No role-aware authorizer wired yet: only the local single-user mode passes.
            return bool(actor.local_mode)
        return bool(has_role(actor, role, model=ctx.normalized_name, team=ctx.owner_team))

    def _already_decided(self, actor: Actor, request_id: int) -> Conflict:
        return Conflict(f"{actor.name} has already decided on transition request {request_id}; "
                        "an approver approves (or rejects) once",
                        details={"rule": "already_decided", "request_id": request_id})

    def _refuse_self(self, actor: Actor, row: Row[Any], ctx: Row[Any], decision: str) -> None:
        if row.requested_by == actor.name:
            raise Forbidden(f"{actor.name} requested transition {row.id} and cannot "
                            f"{decision} it: self-approval is forbidden",
                            details=self._denial(ctx, row.id, "self_approval"))

    @staticmethod
    def _denial(ctx: Row[Any], request_id: int, rule: str) -> dict[str, Any]:
        # "permission" and "model" let the API's Forbidden handler audit the refusal
        # (in its own transaction: this one rolls back).
        return {"rule": rule, "request_id": request_id,
                "permission": Permission.TRANSITION_APPROVE.value,
                "model": ctx.normalized_name}

    def _verify_integrity(self, version: Version) -> CheckResult:
        """Re-hash the version's blobs and its manifest (outside any transaction)."""
        if manifest_digest(version.files) != version.digest:
            return CheckResult(INTEGRITY, False,
                               "the manifest no longer hashes to the version digest")
        bad: list[str] = []
        for digest in sorted({f.digest for f in version.files}):
            try:
                ok = self.blob_store.verify(digest)
            except RegistryError:
                ok = False
            if not ok:
                bad.extend(f.path for f in version.files if f.digest == digest)
        if bad:
            return CheckResult(INTEGRITY, False,
                               f"{len(bad)} file(s) missing or not matching their digest",
                               missing=sorted(bad)[:100])
        n = len({f.digest for f in version.files})
        return CheckResult(INTEGRITY, True, f"{n} blob(s) re-hashed")

    def _evaluate(
        self, conn: Connection, policy: Policy, to_stage: str, rule: TransitionSpec | None,
        ctx: Row[Any], version: Version, integrity: CheckResult | None, *,
        cheap_only: bool = False,
    ) -> list[CheckResult]:
        """The checks of ``rule`` for moving ``version`` to ``to_stage``.

        ``cheap_only`` skips blob re-hashing and the invariant (break-glass records which
        checks it bypassed, and keeps the invariant by archiving).
        """
        names = list(rule.checks) if rule is not None else []
        # A stage's required metadata always applies on entering it.
        if policy.has_metadata_schema(to_stage) and "metadata_complete" not in names:
            names.insert(0, "metadata_complete")
        roles = {f.role for f in version.files}
        out: list[CheckResult] = []
        for name in names:
            if name == "metadata_complete":
                subject = metadata_subject(
                    version.provenance, owner_team=ctx.owner_team, risk_tier=ctx.risk_tier,
                    files=[(f.path, str(f.role)) for f in version.files])
                report = policy.check_metadata(to_stage, subject)
                detail = "; ".join(
                    ([f"missing: {', '.join(report.missing)}"] if report.missing else [])
                    + report.problems) if not report.ok else f"satisfies {to_stage} schema"
                out.append(CheckResult(name, report.ok, detail[:2000], missing=report.missing))
            elif name == "model_card_present":
                ok = FileRole.MODEL_CARD in roles
                out.append(CheckResult(name, ok, "" if ok else "no file with role model_card"))
            elif name == "eval_report_present":
                ok = FileRole.EVAL_REPORT in roles
                out.append(CheckResult(name, ok, "" if ok else "no file with role eval_report"))
            elif name == INTEGRITY:
                if cheap_only:
                    continue
                out.append(integrity or CheckResult(
                    name, False, "not evaluated (the policy changed meanwhile); request again"))
            else:
                threshold = Threshold.parse(name)
                assert threshold is not None  # validated when the policy was loaded
                ok, detail = threshold.evaluate(version.metrics)
                out.append(CheckResult(str(threshold), ok, detail))
        if not cheap_only and not (rule is not None and rule.archive_superseded):
            spec = policy.stage(to_stage)
            if spec is not None and spec.single_in_stage:
                others = [r.number for r in q.version_ids_in_stage(conn, ctx.model_id, to_stage)
                          if r.id != ctx.id]
                detail = (f"{ctx.model_name}/{others[0]} is already in {to_stage}; "
                          "it must leave first" if others else f"no other version in {to_stage}")
                out.append(CheckResult("single_in_stage", not others, detail))
        return out


    def _apply(
        self, conn: Connection, actor: Actor, request_id: int, ctx: Row[Any], to_stage: str,
        policy: Policy, rule: TransitionSpec, checks: Sequence[CheckResult], now: datetime, *,
        approvers: list[str], justification: str,
    ) -> None:
        """Move the version, archive what it supersedes, close the request: one transaction."""
        archived = self._move(conn, actor, ctx, to_stage, policy, now, request_id=request_id,
                              archive_others=rule.archive_superseded, break_glass=False,
                              reason=justification)
        q.update_request(conn, request_id, {"status": "applied", "decided_at": now,
                                            "checks": [c.to_json() for c in checks]})
        audit.append(
            conn, actor, "transition.apply", at=now, model=ctx.normalized_name,
            version=ctx.number, target=f"transition/{request_id}",
            before={"stage": ctx.stage},
            after={"stage": to_stage, "request_id": request_id, "approvers": approvers,
                   "version_digest": ctx.digest, "archived": archived},
        )

    def _move(
        self, conn: Connection, actor: Actor, ctx: Row[Any], to_stage: str, policy: Policy,
        now: datetime, *, request_id: int | None, archive_others: bool, break_glass: bool,
        reason: str,
    ) -> list[int]:
        """Set the stage, write stage events, supersede stale requests, keep invariants.

        Returns the numbers of the versions archived because this one superseded them.
        """
        spec = policy.stage(to_stage)
        single = spec is not None and spec.single_in_stage
        others = [r for r in q.version_ids_in_stage(conn, ctx.model_id, to_stage)
                  if r.id != ctx.id]
        archive = policy.archive_stage
        archived: list[int] = []
        if others and (archive_others or (break_glass and single)):
            if archive is None:
                raise Conflict(f"{to_stage!r} holds a single version and the policy has no "
                               "archive stage to move the current one to",
                               details={"rule": "single_in_stage", "stage": to_stage})
            outcome = "break_glass" if break_glass else "ok"
            for other in others:
                q.set_stage(conn, other.id, archive, now)
                q.insert_stage_event(conn, {
                    "version_id": other.id, "from_stage": to_stage, "to_stage": archive,
                    "at": now, "actor": actor.name, "request_id": request_id,
                    "break_glass": break_glass,
                    "reason": f"superseded by {ctx.model_name}/{ctx.number}",
                })
                self._supersede_pending(conn, actor, ctx, other.id, other.number, now, None)
                audit.append(conn, actor, ARCHIVED_BY_SUPERSEDE, at=now,
                             model=ctx.normalized_name, version=other.number,
                             target=f"stage/{archive}", outcome=outcome,
                             before={"stage": to_stage},
                             after={"stage": archive, "superseded_by": ctx.number,
                                    "request_id": request_id})
                archived.append(other.number)
        elif others and single:
            raise Conflict(
                f"stage {to_stage!r} holds at most one version per model and "
                f"{ctx.model_name}/{others[0].number} is there; the policy does not archive "
                "superseded versions on this transition",
                details={"rule": "single_in_stage", "stage": to_stage,
                         "occupant": others[0].number})
        q.set_stage(conn, ctx.id, to_stage, now)
        q.insert_stage_event(conn, {
            "version_id": ctx.id, "from_stage": ctx.stage, "to_stage": to_stage, "at": now,
            "actor": actor.name, "request_id": request_id, "break_glass": break_glass,
            "reason": reason,
        })
        self._supersede_pending(conn, actor, ctx, ctx.id, ctx.number, now, request_id)
        if single:
            holders = q.version_ids_in_stage(conn, ctx.model_id, to_stage)
            if len(holders) != 1:  # the invariant, checked where it is enforced
                raise Conflict(f"invariant violated: {len(holders)} versions in {to_stage!r}",
                               details={"rule": "single_in_stage", "stage": to_stage})
        return archived

    def _supersede_pending(self, conn: Connection, actor: Actor, ctx: Row[Any], version_id: int,
                           number: int, now: datetime, keep: int | None) -> None:
        """Pending requests of a version that just changed stage no longer apply."""
        for pending in q.pending_request_rows(conn, version_id):
            if pending.id == keep:
                continue
            q.update_request(conn, pending.id, {"status": "superseded", "decided_at": now})
            audit.append(conn, actor, "transition.supersede", at=now, model=ctx.normalized_name,
                         version=number, target=f"transition/{pending.id}",
                         before={"status": "pending"}, after={"status": "superseded"})

    def _requests(self, conn: Connection, ids: Sequence[int],
                  policy: Policy) -> list[TransitionRequest]:
        rows = q.request_rows(conn, ids)
        decisions = q.approval_rows(conn, [r.id for r in rows])
        out = []
        for r in rows:
            rule = policy.transition(r.from_stage, r.to_stage)
            out.append(TransitionRequest(
                id=r.id, model=r.model_name, version=r.version_number,
                version_digest=r.version_digest, from_stage=r.from_stage, to_stage=r.to_stage,
                justification=r.justification, status=r.status,
                checks=[CheckResult.from_json(c) for c in (r.checks or [])],
                policy_version=r.policy_version, requested_by=r.requested_by,
                requested_at=r.requested_at, decided_at=r.decided_at,
                approvals=[ApprovalRecord(approver=a.approver, decision=a.decision,
                                          comment=a.comment, version_digest=a.version_digest,
                                          at=a.at) for a in decisions.get(r.id, [])],
                required_approvals=rule.approvals.count if rule else None,
                approver_role=rule.approvals.role if rule else None,
            ))
        return out
