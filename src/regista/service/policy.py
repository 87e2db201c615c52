"""Policy as code: validate, apply (versioned and audited), show; and the governance
hooks the registry asks of the current policy.

The current policy is the row of ``policies`` with the highest version. When none was
ever applied, the policy shipped in the package (``regista/policy/default.yaml``) is in
effect as version 0, so the embedded default works out of the box.

Caching: each process keeps the parsed current policy keyed by its version. A cached
read re-checks the head version (one seek on the primary key of ``policies``) at most
once every :attr:`PolicyService.recheck_seconds`, so every server process converges on a
newly applied policy within about a second without parsing YAML per request. Decisions
taken inside a write transaction (transitions, approvals) pass their connection to
:meth:`PolicyService.current`, which then always checks the head inside that
transaction: a transition never applies under a stale policy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from regista.config import Settings
from regista.domain.models import Actor
from regista.domain.names import normalize_name
from regista.domain.policy import Policy, document_digest, load_policy, normalize_document
from regista.errors import Conflict, Invalid, NotFound, Unavailable
from regista.service import audit
from regista.service.access import Authorizer, Permission
from regista.service.clock import utcnow
from regista.store.sql import lifecycle as q
from regista.store.sql.engine import Database

log = logging.getLogger("regista.policy")

EMBEDDED_DEFAULT = "regista (embedded default)"


@lru_cache(maxsize=1)
def default_document() -> str:
    """The text of the policy shipped in the package."""
    return normalize_document(
        resources.files("regista").joinpath("policy", "default.yaml").read_text("utf-8")
    )


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    return load_policy(default_document())


@dataclass(frozen=True, slots=True)
class CurrentPolicy:
    """The policy in effect: version 0 is the embedded default (never applied)."""

    version: int
    digest: str
    document: str
    policy: Policy
    applied_at: datetime | None
    applied_by: str


@dataclass(frozen=True, slots=True)
class PolicyVersionInfo:
    version: int
    digest: str
    applied_at: datetime
    applied_by: str


@dataclass(frozen=True, slots=True)
class PolicyApplied:
    """Outcome of :meth:`PolicyService.apply`; ``changed`` is False for an identical document."""

    version: int
    digest: str
    changed: bool
    applied_at: datetime | None
    applied_by: str
    environments: dict[str, Any] = field(default_factory=dict)


def sync_environments(conn: Connection, policy: Policy, now: datetime) -> dict[str, Any]:
    """Insert or update the environments the policy declares; never delete one (deployment
    history refers to them). Returns what changed, for the audit event."""
    existing = {normalize_name(name): row for name, row in q.environment_rows(conn).items()}
    created: list[str] = []
    updated: list[dict[str, Any]] = []
    for env in policy.document.environments:
        row = existing.get(normalize_name(env.name))
        if row is None:
            q.insert_environment(conn, {"name": env.name, "min_stage": env.min_stage,
                                        "description": env.description, "created_at": now})
            created.append(env.name)
        elif (row.min_stage, row.description) != (env.min_stage, env.description):
            q.update_environment(conn, row.id, {"min_stage": env.min_stage,
                                                "description": env.description})
            updated.append({"name": row.name, "before": {"min_stage": row.min_stage},
                            "after": {"min_stage": env.min_stage}})
    return {"created": created, "updated": updated}


class PolicyService:
    """Load, validate, apply and show the policy; cache the current one per process."""

    recheck_seconds: float = 1.0

    def __init__(self, db: Database, authz: Authorizer, settings: Settings, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.authz = authz
        self.settings = settings
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: CurrentPolicy | None = None
        self._checked_at = float("-inf")

    # ------------------------------------------------------------------ reading

    @staticmethod
    def validate(text: str) -> Policy:
        """Parse and validate a policy without applying it (errors name line and field)."""
        return load_policy(text)

    def current(self, conn: Connection | None = None) -> CurrentPolicy:
        """The policy in effect.

        Without ``conn``: the per-process cache, re-checked at most once a second. With
        ``conn``: checked against the head row inside that transaction (exact).
        """
        if conn is None:
            cached = self._cached
            if cached is not None and self._monotonic() - self._checked_at < self.recheck_seconds:
                return cached
            with self.db.read() as c:
                return self._refresh(c)
        return self._refresh(conn)

    def _refresh(self, conn: Connection) -> CurrentPolicy:
        checked = self._monotonic()
        head = q.policy_head(conn)
        cached = self._cached
        if head is None:
            result = self._embedded()
        elif cached is not None and (cached.version, cached.digest) == (head.version, head.digest):
            result = cached
        else:
            row = q.policy_row(conn, head.version)
            assert row is not None
            result = self._from_row(row)
        with self._lock:
            # Versions only grow: never let a slower reader put an older policy back.
            if self._cached is None or result.version >= self._cached.version:
                self._cached = result
                self._checked_at = checked
        return result

    @staticmethod
    def _embedded() -> CurrentPolicy:
        text = default_document()
        return CurrentPolicy(version=0, digest=document_digest(text), document=text,
                             policy=default_policy(), applied_at=None, applied_by=EMBEDDED_DEFAULT)

    @staticmethod
    def _from_row(row: Any) -> CurrentPolicy:
        try:
            policy = load_policy(row.document)
        except Invalid as exc:
            # Fail closed: governance does not guess which rules to apply.
            log.error("stored policy version %s cannot be loaded: %s", row.version, exc.message)
            raise Unavailable(f"the current policy (version {row.version}) cannot be loaded: "
                              f"{exc.message}", details=exc.details) from None
        return CurrentPolicy(version=row.version, digest=row.digest, document=row.document,
                             policy=policy, applied_at=row.applied_at, applied_by=row.applied_by)

    def show(self, actor: Actor, *, history_limit: int = 100) -> tuple[CurrentPolicy,
                                                                        list[PolicyVersionInfo]]:
        """The current policy and the history of applied versions (newest first)."""
        self.authz.require(actor, Permission.MODEL_READ)
        with self.db.read() as conn:
            current = self.current(conn)
            history = [
                PolicyVersionInfo(version=r.version, digest=r.digest, applied_at=r.applied_at,
                                  applied_by=r.applied_by)
                for r in q.policy_history(conn, max(1, min(history_limit, 1000)))
            ]
        return current, history

    def get_version(self, actor: Actor, version: int) -> CurrentPolicy:
        """One applied version of the policy (0: the embedded default)."""
        self.authz.require(actor, Permission.MODEL_READ)
        if version == 0:
            return self._embedded()
        with self.db.read() as conn:
            row = q.policy_row(conn, version)
        if row is None:
            raise NotFound(f"policy version {version} not found", details={"version": version})
        text: str = row.document
        return CurrentPolicy(version=row.version, digest=row.digest, document=text,
                             policy=self._parse_lenient(text), applied_at=row.applied_at,
                             applied_by=row.applied_by)

    def _parse_lenient(self, text: str) -> Policy:
        try:
            return load_policy(text)
        except Invalid:
            return default_policy()  # only for display of an old, no longer valid version

    # ------------------------------------------------------------------ applying

    def apply(self, actor: Actor, text: str) -> PolicyApplied:
        """Validate and apply a policy document.

        An identical document (same text, line endings aside) is a no-op. Otherwise the
        policy becomes version N+1, the environments it declares are synced, and one
        ``policy.apply`` audit event records the before/after digests, all in one
        transaction.
        """
        self.authz.require(actor, Permission.POLICY_APPLY)
        return self._apply(actor, text, source=None)

    def apply_startup_file(self, path: Path) -> PolicyApplied:
        """Apply ``Settings.policy_file`` at start-up (as the system actor) if it differs.

        The file is the operator's configuration, so no permission is asked; the apply is
        audited like any other. Several processes starting at once converge on one version.
        """
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise Invalid(f"policy file {str(path)!r} cannot be read: {exc}",
                          details={"field": "policy_file"}) from None
        return self._apply(Actor.system(), text, source=str(path))

    def _apply(self, actor: Actor, text: str, *, source: str | None) -> PolicyApplied:
        if not isinstance(text, str) or not text.strip():
            raise Invalid("the policy document is empty",
                          details={"errors": [{"line": 1, "field": "", "message": "empty"}]})
        document = normalize_document(text)
        policy = load_policy(document)
        digest = document_digest(document)
        for attempt in range(5):
            try:
                with self.db.write() as conn:
                    result = self._apply_in(conn, actor, document, digest, policy, source)
            except IntegrityError:
                # Another process took the same version number first (PostgreSQL); retry
                # against the new head: identical → no-op, different → next number.
                if attempt == 4:
                    raise Conflict("the policy was changed concurrently; try again") from None
                continue
            if result.changed:
                log.info("policy version %s applied by %s", result.version, actor.name)
                self._remember(result.version, digest, document, policy, result)
            return result
        raise AssertionError("unreachable")

    def _apply_in(self, conn: Connection, actor: Actor, document: str, digest: str,
                  policy: Policy, source: str | None) -> PolicyApplied:
        head = q.policy_head(conn)
        if head is not None and head.digest == digest:
            row = q.policy_row(conn, head.version)
            assert row is not None
            return PolicyApplied(version=row.version, digest=row.digest, changed=False,
                                 applied_at=row.applied_at, applied_by=row.applied_by)
        try:
            previous = self._refresh(conn)
            before = {"version": previous.version, "digest": previous.digest}
        except Unavailable:
            # The stored policy no longer loads: applying a valid one is how to repair that.
            assert head is not None
            before = {"version": head.version, "digest": head.digest}
        in_use = q.stages_in_use_except(conn, policy.stages)
        if in_use:
            listing = ", ".join(f"{stage!r} ({n} version{'s' if n > 1 else ''})"
                                for stage, n in in_use.items())
            raise Invalid(
                f"policy is not valid: it removes stages that versions are in: {listing}; "
                "move those versions first",
                details={"errors": [{"line": 1, "field": "stages",
                                     "message": f"stage {stage!r} is removed but {n} "
                                                "version(s) are in it"}
                                    for stage, n in in_use.items()]},
            )
        now = utcnow()
        version = (head.version if head is not None else 0) + 1
        q.insert_policy(conn, {"version": version, "document": document, "digest": digest,
                               "applied_at": now, "applied_by": actor.name})
        envs = sync_environments(conn, policy, now)
        after: dict[str, Any] = {"version": version, "digest": digest, "environments": envs}
        if source is not None:
            after["source"] = source
        audit.append(conn, actor, "policy.apply", at=now, target=f"policy/{version}",
                     before=before, after=after)
        return PolicyApplied(version=version, digest=digest, changed=True, applied_at=now,
                             applied_by=actor.name, environments=envs)

    def _remember(self, version: int, digest: str, document: str, policy: Policy,
                  applied: PolicyApplied) -> None:
        current = CurrentPolicy(version=version, digest=digest, document=document, policy=policy,
                                applied_at=applied.applied_at, applied_by=applied.applied_by)
        with self._lock:
            if self._cached is None or version >= self._cached.version:
                self._cached = current
                self._checked_at = self._monotonic()


class PolicyHooks:
    """:class:`~regista.service.hooks.GovernanceHooks` answered from the current policy."""

    def __init__(self, policy: PolicyService, settings: Settings) -> None:
        self.policy = policy
        self._settings = settings

    def required_metadata(self, stage: str) -> list[str]:
        current = self.policy.current()
        fields = current.policy.required_metadata(stage)
        if current.version == 0 and stage == "registered":
            # Settings.required_metadata holds until a policy of one's own is applied.
            fields = list(dict.fromkeys([*fields, *self._settings.required_metadata]))
        return fields

    def protected_aliases(self) -> frozenset[str]:
        return self.policy.current().policy.protected_aliases

    def review_interval(self, risk_tier: str | None) -> timedelta | None:
        return self.policy.current().policy.review_interval(risk_tier)
