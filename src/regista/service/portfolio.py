"""The portfolio at a glance: read-only views for the dashboard and the catalogue.

Everything here is a bounded, indexed read (see :mod:`regista.store.sql.portfolio`), so
the dashboard stays fast however many versions the registry holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from regista.domain.models import Actor, Version
from regista.domain.names import normalize_name
from regista.domain.policy import Policy, metadata_subject
from regista.domain.provenance import missing_fields
from regista.service.access import Authorizer, Permission
from regista.service.hooks import GovernanceHooks
from regista.store.sql import portfolio as pq
from regista.store.sql import registry as rq
from regista.store.sql.engine import Database

DOCUMENT_ROLES = ("model_card", "eval_report")


@dataclass(frozen=True, slots=True)
class Completeness:
    """How complete a production version's metadata is against the policy."""

    version: Version
    missing: list[str]
    required: int

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def percent(self) -> int:
        if self.required == 0:
            return 100
        return round(100 * (self.required - len(self.missing)) / self.required)


@dataclass(frozen=True, slots=True)
class Overview:
    """What the dashboard shows that does not come from the governance services."""

    totals: dict[str, int]
    production_count: int
    overdue: list[Any]
    overdue_count: int
    recent: list[Version]
    completeness: list[Completeness]
    superseded: list[Any]
    superseded_count: int
    superseded_partial: bool
    unverified: list[Any]
    production_shown: int = 0
    production_limit: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class PortfolioService:
    """Read-only portfolio views; every method checks ``model:read``."""

    def __init__(self, db: Database, authz: Authorizer, hooks: GovernanceHooks) -> None:
        self.db = db
        self.authz = authz
        self.hooks = hooks

    def _require(self, actor: Actor) -> None:
        self.authz.require(actor, Permission.MODEL_READ)

    def production_numbers(self, actor: Actor, model_ids: Sequence[int]) -> dict[int, list[int]]:
        """Numbers of each model's versions in production."""
        self._require(actor)
        with self.db.read() as conn:
            return dict(pq.versions_in_stage(conn, model_ids, "production"))

    def approvers(self, actor: Actor, refs: Sequence[tuple[str, int]]
                  ) -> dict[tuple[str, int], list[str]]:
        """Who approved each version (model, number) into its current stage."""
        self._require(actor)
        wanted = {(normalize_name(m), n): (m, n) for m, n in refs}
        with self.db.read() as conn:
            found = pq.approvers_of_current_stage(conn, list(wanted))
        return {wanted[key]: names for key, names in found.items() if key in wanted}

    def teams(self, actor: Actor) -> list[str]:
        """Owner teams in use, for the catalogue's filter."""
        self._require(actor)
        with self.db.read() as conn:
            return pq.teams(conn)

    def overview(self, actor: Actor, now: datetime, *, policy: Policy | None = None,
                 limit: int = 15, production_limit: int = 25) -> Overview:
        """Totals, overdue reviews, recent versions, completeness and hygiene debt.

        Completeness is checked against ``policy``'s production schema when given (the
        document :func:`~regista.domain.policy.metadata_subject` builds), else against
        the required fields the governance hooks name.
        """
        self._require(actor)
        with self.db.read() as conn:
            totals = pq.totals(conn)
            production_count = pq.count_in_stage(conn, "production")
            overdue, overdue_count = pq.overdue_reviews(conn, now, limit)
            recent = rq.load_versions(conn, pq.recent_version_ids(conn, limit), with_files=False)
            prod_rows = pq.versions_in_stage_everywhere(conn, "production", production_limit)
            prod_ids = [int(r.id) for r in prod_rows]
            prod = rq.load_versions(conn, prod_ids, with_files=False)
            documents = pq.files_with_roles(conn, prod_ids, DOCUMENT_ROLES)
            superseded, superseded_count, superseded_partial = pq.superseded_unarchived(
                conn, limit)
            unverified, _ = pq.unverified_files(conn, limit)
        models = {int(r.id): r for r in prod_rows}
        completeness = [self._completeness(v, models[v.id], documents.get(v.id, []), policy)
                        for v in prod]
        completeness.sort(key=lambda c: (c.complete, c.percent, c.version.model.lower()))
        return Overview(
            totals=totals, production_count=production_count, overdue=overdue,
            overdue_count=overdue_count, recent=recent, completeness=completeness,
            superseded=superseded, superseded_count=superseded_count,
            superseded_partial=superseded_partial, unverified=unverified,
            production_shown=len(prod), production_limit=production_limit,
        )

    def _completeness(self, version: Version, model: Any, files: list[tuple[str, str]],
                      policy: Policy | None) -> Completeness:
        if policy is not None:
            subject = metadata_subject(version.provenance, owner_team=model.owner_team,
                                       risk_tier=model.risk_tier, files=files)
            report = policy.check_metadata("production", subject)
            required = policy.required_metadata("production")
            missing = list(report.missing) + list(report.problems)
            return Completeness(version, missing, max(len(required), len(missing)))
        required = list(dict.fromkeys(self.hooks.required_metadata("production")))
        roles = {role for _, role in files}
        missing = missing_fields(version.provenance, required)
        missing += [f"file with role {role}" for role in DOCUMENT_ROLES if role not in roles]
        return Completeness(version, missing, len(required) + len(DOCUMENT_ROLES))
