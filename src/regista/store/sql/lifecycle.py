"""Queries of governance: policies, transition requests, approvals, stage events,
environments synced from the policy, and review dates.

Plain functions over a :class:`sqlalchemy.Connection`; the service layer decides the
rules and the transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, exists, func, insert, select, update

from regista.store.sql.tables import (
    approvals,
    environments,
    models,
    policies,
    stage_events,
    transition_requests,
    versions,
)


def _first(conn: Connection, query: Any) -> Row[Any] | None:
    row: Row[Any] | None = conn.execute(query).first()
    return row


# --------------------------------------------------------------------------- policies


def policy_head(conn: Connection) -> Row[Any] | None:
    """(version, digest) of the newest policy: one seek on the primary key."""
    q = select(policies.c.version, policies.c.digest).order_by(policies.c.version.desc()).limit(1)
    return _first(conn, q)


def policy_row(conn: Connection, version: int) -> Row[Any] | None:
    return conn.execute(select(policies).where(policies.c.version == version)).first()


def policy_history(conn: Connection, limit: int) -> list[Row[Any]]:
    q = (
        select(policies.c.version, policies.c.digest, policies.c.applied_at,
               policies.c.applied_by)
        .order_by(policies.c.version.desc())
        .limit(limit)
    )
    return list(conn.execute(q))


def insert_policy(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(policies).values(**values))


def stages_in_use_except(conn: Connection, stages: Sequence[str]) -> dict[str, int]:
    """How many versions sit in stages other than ``stages`` (only those with any)."""
    q = (
        select(versions.c.stage, func.count())
        .where(versions.c.stage.not_in(list(stages)))
        .group_by(versions.c.stage)
    )
    return {r[0]: int(r[1]) for r in conn.execute(q)}


# --------------------------------------------------------------------------- environments


def environment_rows(conn: Connection) -> dict[str, Row[Any]]:
    return {r.name: r for r in conn.execute(select(environments))}


def insert_environment(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(environments).values(**values))


def update_environment(conn: Connection, env_id: int, values: Mapping[str, Any]) -> None:
    conn.execute(update(environments).where(environments.c.id == env_id).values(**values))


# --------------------------------------------------------------------------- versions


def version_context(conn: Connection, version_id: int) -> Row[Any] | None:
    """A version with what governance needs of its model."""
    q = (
        select(
            versions.c.id, versions.c.number, versions.c.digest, versions.c.stage,
            versions.c.model_id, models.c.name.label("model_name"),
            models.c.normalized_name, models.c.owner_team, models.c.risk_tier,
            models.c.archived,
        )
        .join(models, models.c.id == versions.c.model_id)
        .where(versions.c.id == version_id)
    )
    return _first(conn, q)


def lock_model(conn: Connection, model_id: int) -> None:
    """Serialise stage changes of one model (row lock on PostgreSQL; SQLite writers are
    already serialised by BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(models.c.id).where(models.c.id == model_id).with_for_update())


def version_ids_in_stage(conn: Connection, model_id: int, stage: str) -> list[Row[Any]]:
    q = (
        select(versions.c.id, versions.c.number, versions.c.stage)
        .where(versions.c.model_id == model_id, versions.c.stage == stage)
        .order_by(versions.c.number)
    )
    return list(conn.execute(q))


def set_stage(conn: Connection, version_id: int, stage: str, at: datetime) -> None:
    conn.execute(
        update(versions).where(versions.c.id == version_id)
        .values(stage=stage, stage_changed_at=at, updated_at=at)
    )


def insert_stage_event(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(stage_events).values(**values))


def stage_event_rows(conn: Connection, version_id: int) -> list[Row[Any]]:
    q = (
        select(stage_events)
        .where(stage_events.c.version_id == version_id)
        .order_by(stage_events.c.at, stage_events.c.id)
    )
    return list(conn.execute(q))


def version_created(conn: Connection, version_id: int) -> Row[Any] | None:
    q = select(versions.c.created_at, versions.c.created_by).where(versions.c.id == version_id)
    return _first(conn, q)


# --------------------------------------------------------------------------- requests

_REQUEST_COLUMNS = (
    transition_requests,
    versions.c.number.label("version_number"),
    models.c.name.label("model_name"),
    models.c.normalized_name,
    versions.c.model_id,
)


def _requests_query() -> Any:
    return (
        select(*_REQUEST_COLUMNS)
        .join(versions, versions.c.id == transition_requests.c.version_id)
        .join(models, models.c.id == versions.c.model_id)
    )


def insert_request(conn: Connection, values: Mapping[str, Any]) -> int:
    return int(conn.execute(
        insert(transition_requests).values(**values).returning(transition_requests.c.id)
    ).scalar_one())


def request_row(conn: Connection, request_id: int, *, for_update: bool = False) -> Row[Any] | None:
    if for_update and conn.dialect.name == "postgresql":
        conn.execute(
            select(transition_requests.c.id)
            .where(transition_requests.c.id == request_id)
            .with_for_update()
        )
    return _first(conn, _requests_query().where(transition_requests.c.id == request_id))


def request_rows(conn: Connection, ids: Sequence[int]) -> list[Row[Any]]:
    if not ids:
        return []
    rows = {r.id: r for r in conn.execute(
        _requests_query().where(transition_requests.c.id.in_(list(ids))))}
    return [rows[i] for i in ids if i in rows]


def list_request_ids(
    conn: Connection, *, status: str | None, model_id: int | None, before_id: int | None,
    limit: int,
) -> list[int]:
    """Newest first; keyset on id."""
    q = select(transition_requests.c.id)
    if model_id is not None:
        q = q.join(versions, versions.c.id == transition_requests.c.version_id).where(
            versions.c.model_id == model_id)
    if status is not None:
        q = q.where(transition_requests.c.status == status)
    if before_id is not None:
        q = q.where(transition_requests.c.id < before_id)
    q = q.order_by(transition_requests.c.id.desc()).limit(limit)
    return [int(r[0]) for r in conn.execute(q)]


def pending_request_rows(conn: Connection, version_id: int) -> list[Row[Any]]:
    q = select(transition_requests.c.id, transition_requests.c.to_stage).where(
        transition_requests.c.version_id == version_id,
        transition_requests.c.status == "pending",
    ).order_by(transition_requests.c.id)
    return list(conn.execute(q))


def update_request(conn: Connection, request_id: int, values: Mapping[str, Any]) -> None:
    conn.execute(
        update(transition_requests).where(transition_requests.c.id == request_id).values(**values)
    )


def insert_approval(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(approvals).values(**values))


def approval_rows(conn: Connection, request_ids: Sequence[int]) -> dict[int, list[Row[Any]]]:
    out: dict[int, list[Row[Any]]] = defaultdict(list)
    if request_ids:
        q = (
            select(approvals)
            .where(approvals.c.request_id.in_(list(request_ids)))
            .order_by(approvals.c.at, approvals.c.id)
        )
        for r in conn.execute(q):
            out[r.request_id].append(r)
    return out


def has_decided(conn: Connection, request_id: int, approver: str) -> bool:
    q = select(exists().where(approvals.c.request_id == request_id,
                              approvals.c.approver == approver))
    return bool(conn.execute(q).scalar())


# --------------------------------------------------------------------------- reviews


def model_for_review(conn: Connection, normalized: str) -> Row[Any] | None:
    q = select(models.c.id, models.c.name, models.c.normalized_name, models.c.owner_team,
               models.c.risk_tier, models.c.next_review_at, models.c.archived).where(
        models.c.normalized_name == normalized)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return _first(conn, q)


def set_next_review(conn: Connection, model_id: int, at: datetime | None, now: datetime) -> None:
    conn.execute(update(models).where(models.c.id == model_id)
                 .values(next_review_at=at, updated_at=now))


def overdue_model_ids(conn: Connection, now: datetime, limit: int) -> list[int]:
    q = (
        select(models.c.id)
        .where(models.c.next_review_at.is_not(None), models.c.next_review_at < now,
               models.c.archived.is_(False))
        .order_by(models.c.next_review_at, models.c.id)
        .limit(limit)
    )
    return [int(r[0]) for r in conn.execute(q)]
