"""Read-only queries behind the portfolio views of the web UI (dashboard, catalogue).

Every query is an index seek or a scan of the small ``models`` table (one row per model),
never a scan of ``versions``: the dashboard must stay fast with 100,000 versions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, func, select

from regista.store.sql.tables import (
    approvals,
    blobs,
    models,
    transition_requests,
    version_files,
    versions,
)


def versions_in_stage(conn: Connection, model_ids: Sequence[int], stage: str) -> dict[int, list[int]]:
    """Numbers of the versions of these models in ``stage`` (seeks on (model_id, stage))."""
    out: dict[int, list[int]] = defaultdict(list)
    if not model_ids:
        return out
    q = (
        select(versions.c.model_id, versions.c.number)
        .where(versions.c.model_id.in_(model_ids), versions.c.stage == stage)
        .order_by(versions.c.model_id, versions.c.number.desc())
    )
    for r in conn.execute(q):
        out[r.model_id].append(r.number)
    return out


def versions_in_stage_everywhere(conn: Connection, stage: str, limit: int) -> list[Row[Any]]:
    """(id, owner_team, risk_tier) of versions in ``stage`` across all models.

    Driving the join from ``models`` lets every database seek (model_id, stage) once per
    model instead of scanning the versions table.
    """
    q = (
        select(versions.c.id, models.c.owner_team, models.c.risk_tier)
        .select_from(models)
        .join(versions, and_(versions.c.model_id == models.c.id, versions.c.stage == stage))
        .order_by(models.c.normalized_name, versions.c.number.desc())
        .limit(limit)
    )
    return list(conn.execute(q))


def files_with_roles(conn: Connection, version_ids: Sequence[int],
                     roles: Sequence[str]) -> dict[int, list[tuple[str, str]]]:
    """(path, role) of these versions' files that have one of ``roles``."""
    out: dict[int, list[tuple[str, str]]] = defaultdict(list)
    if not version_ids:
        return out
    q = select(version_files.c.version_id, version_files.c.path, version_files.c.role).where(
        version_files.c.version_id.in_(version_ids), version_files.c.role.in_(roles))
    for r in conn.execute(q):
        out[int(r.version_id)].append((r.path, r.role))
    return out


def count_in_stage(conn: Connection, stage: str) -> int:
    q = (
        select(func.count())
        .select_from(models)
        .join(versions, and_(versions.c.model_id == models.c.id, versions.c.stage == stage))
    )
    return int(conn.execute(q).scalar_one())


def totals(conn: Connection) -> dict[str, int]:
    """Models, archived models and versions (from the per-model counters, not a count(*))."""
    row = conn.execute(
        select(
            func.count().label("models"),
            func.coalesce(func.sum(models.c.version_counter), 0).label("versions"),
        )
    ).one()
    archived = conn.execute(
        select(func.count()).select_from(models).where(models.c.archived.is_(True))
    ).scalar_one()
    return {"models": int(row.models), "versions": int(row.versions), "archived": int(archived)}


def overdue_reviews(conn: Connection, now: datetime, limit: int) -> tuple[list[Any], int]:
    """Unarchived models whose next review date has passed, most overdue first, and their count."""
    cond = and_(models.c.next_review_at.is_not(None), models.c.next_review_at < now,
                models.c.archived.is_(False))
    rows = list(conn.execute(
        select(models.c.id, models.c.name, models.c.owner_team, models.c.risk_tier,
               models.c.next_review_at)
        .where(cond).order_by(models.c.next_review_at).limit(limit)
    ))
    count = int(conn.execute(select(func.count()).select_from(models).where(cond)).scalar_one())
    return rows, count


def recent_version_ids(conn: Connection, limit: int) -> list[int]:
    """The most recently registered versions (index on (created_at, id))."""
    q = select(versions.c.id).order_by(versions.c.created_at.desc(), versions.c.id.desc()).limit(limit)
    return [int(r.id) for r in conn.execute(q)]


def teams(conn: Connection, limit: int = 500) -> list[str]:
    """Owner teams in use (a scan of the models table only)."""
    q = (select(models.c.owner_team).where(models.c.owner_team.is_not(None))
         .group_by(models.c.owner_team).order_by(models.c.owner_team).limit(limit))
    return [r.owner_team for r in conn.execute(q)]


@dataclass(frozen=True, slots=True)
class Superseded:
    """A version still in staging or production although a newer one is in production."""

    name: str
    number: int
    stage: str
    successor: int


def superseded_unarchived(conn: Connection, limit: int, *, scan: int = 1500
                          ) -> tuple[list[Superseded], int, bool]:
    """Versions older than their model's newest production version, still in staging or
    production (they should have been archived when their successor went live).

    Reads at most ``scan`` (model, version) rows in staging or production, walking the
    models by name with one seek on (model_id, stage) each; returns the first ``limit``
    findings, how many were found, and whether the scan stopped before the last model.
    """
    q = (
        select(versions.c.model_id, versions.c.number, versions.c.stage)
        .select_from(models)
        .join(versions, and_(versions.c.model_id == models.c.id,
                             versions.c.stage.in_(("staging", "production"))))
        .order_by(models.c.normalized_name)
        .limit(scan + 1)
    )
    rows = conn.execute(q).all()
    partial = len(rows) > scan
    if partial:
        last = rows[scan][0]
        rows = [r for r in rows[:scan] if r[0] != last]  # drop the model cut in two
    by_model: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for model_id, number, stage in rows:
        by_model[model_id].append((number, stage))
    found: list[tuple[int, int, str, int]] = []
    for model_id, group in by_model.items():
        live = [n for n, stage in group if stage == "production"]
        if live:
            newest = max(live)
            found.extend((model_id, n, stage, newest) for n, stage in sorted(group) if n < newest)
    shown = found[:limit]
    names = dict(conn.execute(select(models.c.id, models.c.name)
                              .where(models.c.id.in_({f[0] for f in shown}))).all()) if shown else {}
    return ([Superseded(names[m], n, stage, newest) for m, n, stage, newest in shown],
            len(found), partial)


def unverified_files(conn: Connection, limit: int) -> tuple[list[Any], int]:
    """Files of versions whose blob was never verified (``blobs.verified_at`` NULL)."""
    pending = select(blobs.c.digest).where(blobs.c.verified_at.is_(None)).limit(1000).subquery()
    q = (
        select(models.c.name, versions.c.number, version_files.c.path, version_files.c.digest)
        .select_from(pending)
        .join(version_files, version_files.c.digest == pending.c.digest)
        .join(versions, versions.c.id == version_files.c.version_id)
        .join(models, models.c.id == versions.c.model_id)
        .limit(limit)
    )
    rows = list(conn.execute(q))
    return rows, len(rows)



def approvers_of_current_stage(conn: Connection, refs: Sequence[tuple[str, int]]
                               ) -> dict[tuple[str, int], list[str]]:
    """Who approved the move that put each version (normalised name, number) in its stage.

    Three indexed queries whatever the number of versions: the versions, their applied
    requests, and the approvals of the latest request into the current stage of each.
    """
    if not refs:
        return {}
    wanted = set(refs)
    # Two IN lists (both indexed) and an exact filter here: portable, and a seek per pair.
    rows = [r for r in conn.execute(
        select(versions.c.id, versions.c.stage, models.c.normalized_name, versions.c.number)
        .join(models, models.c.id == versions.c.model_id)
        .where(models.c.normalized_name.in_({m for m, _ in wanted}),
               versions.c.number.in_({n for _, n in wanted}))
    ) if (r.normalized_name, int(r.number)) in wanted]
    by_id = {int(r.id): r for r in rows}
    if not by_id:
        return {}
    latest: dict[int, int] = {}
    q = (select(transition_requests.c.id, transition_requests.c.version_id,
                transition_requests.c.to_stage)
         .where(transition_requests.c.version_id.in_(list(by_id)),
                transition_requests.c.status == "applied")
         .order_by(transition_requests.c.id))
    for r in conn.execute(q):
        if r.to_stage == by_id[int(r.version_id)].stage:
            latest[int(r.version_id)] = int(r.id)
    out: dict[tuple[str, int], list[str]] = {}
    if not latest:
        return out
    request_to_version = {rid: vid for vid, rid in latest.items()}
    q2 = (select(approvals.c.request_id, approvals.c.approver)
          .where(approvals.c.request_id.in_(list(request_to_version)),
                 approvals.c.decision == "approve")
          .order_by(approvals.c.at, approvals.c.id))
    for a in conn.execute(q2):
        v = by_id[request_to_version[int(a.request_id)]]
        out.setdefault((v.normalized_name, int(v.number)), []).append(a.approver)
    return out
