"""Queries of environments, deployment history and observations.

``deployment_events`` is append-only: each row says "from ``at``, model M serves version V
in environment E" (version NULL: M stopped serving there), and a deployment ends at the
next event of the same (E, M). "What served in E at T" is therefore, for each model that
ever served in E (``environment_models``), the last event of (E, M) at or before T: one
seek on ``ix_deployment_events_env_model_at`` per model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, func, insert, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from regista.domain.names import normalize_name
from regista.store.sql.tables import (
    approvals,
    deployment_events,
    environment_models,
    environments,
    models,
    observations,
    stage_events,
    transition_requests,
    versions,
)
from regista.store.sql.types import UTCDateTime

de = deployment_events

# --------------------------------------------------------------------------- environments


def environment_row(conn: Connection, name: str) -> Row[Any] | None:
    """An environment by name (exact, else by normal form, as policy names are matched)."""
    row = conn.execute(select(environments).where(environments.c.name == name)).first()
    if row is not None:
        return row
    wanted = normalize_name(name)
    for r in conn.execute(select(environments)):
        if normalize_name(r.name) == wanted:
            return r
    return None


def environment_rows(conn: Connection) -> list[Row[Any]]:
    return list(conn.execute(select(environments).order_by(environments.c.name)))


def insert_environment(conn: Connection, values: Mapping[str, Any]) -> int:
    q = insert(environments).values(**values).returning(environments.c.id)
    return int(conn.execute(q).scalar_one())


def update_environment(conn: Connection, env_id: int, values: Mapping[str, Any]) -> None:
    conn.execute(update(environments).where(environments.c.id == env_id).values(**values))


# --------------------------------------------------------------------------- versions


def version_context(conn: Connection, version_id: int) -> Row[Any] | None:
    """A version with its model (what a deployment needs to check and record)."""
    q: Any = (
        select(versions.c.id, versions.c.number, versions.c.digest, versions.c.stage,
               versions.c.model_id, models.c.name.label("model_name"),
               models.c.normalized_name, models.c.owner_team)
        .join(models, models.c.id == versions.c.model_id)
        .where(versions.c.id == version_id)
    )
    row: Row[Any] | None = conn.execute(q).first()
    return row


def versions_by_digest(conn: Connection, digests: Iterable[str]) -> dict[str, list[Row[Any]]]:
    """Registered versions carrying each digest (a manifest may be registered more than once)."""
    out: dict[str, list[Row[Any]]] = {}
    ds = sorted(set(digests))
    for i in range(0, len(ds), 500):
        q = (
            select(versions.c.id, versions.c.digest, versions.c.number, versions.c.model_id,
                   models.c.name.label("model_name"))
            .join(models, models.c.id == versions.c.model_id)
            .where(versions.c.digest.in_(ds[i:i + 500]))
            .order_by(models.c.name, versions.c.number)
        )
        rows: list[Row[Any]] = list(conn.execute(q))
        for r in rows:
            out.setdefault(r.digest, []).append(r)
    return out


# --------------------------------------------------------------------------- recording


def lock_environment_model(conn: Connection, env_id: int, model_id: int) -> None:
    """Make (E, M) known to ``environment_models`` and lock it until commit.

    The lock serialises recorders of one (E, M) across server processes on PostgreSQL,
    so "no event earlier than the latest" is checked against the true latest; SQLite
    writers are already serialised.
    """
    values = {"environment_id": env_id, "model_id": model_id}
    if conn.dialect.name == "postgresql":
        conn.execute(pg_insert(environment_models).values(**values).on_conflict_do_nothing())
        conn.execute(
            select(environment_models.c.model_id)
            .where(environment_models.c.environment_id == env_id,
                   environment_models.c.model_id == model_id)
            .with_for_update()
        )
    else:
        conn.execute(sqlite_insert(environment_models).values(**values).on_conflict_do_nothing())


def latest_event(conn: Connection, env_id: int, model_id: int,
                 at: datetime | None = None) -> Row[Any] | None:
    """The last event of (E, M), or the last at or before ``at`` (one index seek)."""
    q: Any = select(de.c.id, de.c.version_id, de.c.at, de.c.recorded_by, de.c.note).where(
        de.c.environment_id == env_id, de.c.model_id == model_id)
    if at is not None:
        q = q.where(de.c.at <= at)
    q = q.order_by(de.c.at.desc(), de.c.id.desc()).limit(1)
    row: Row[Any] | None = conn.execute(q).first()
    return row


def insert_event(conn: Connection, values: Mapping[str, Any]) -> int:
    return int(conn.execute(insert(de).values(**values).returning(de.c.id)).scalar_one())


# --------------------------------------------------------------------------- as of


def _join_last_event(left: Any, dialect: str, *, env: Any, model: Any, at: Any,
                     columns: tuple[str, ...], outer: bool) -> tuple[Any, Any]:
    """``left`` joined to the last deployment event of (``env``, ``model``) at or before
    ``at``: one backward index seek. Returns (the join, the event's selectable).

    PostgreSQL runs the seek as a LATERAL subquery (once per row of ``left``) returning
    the event's ``columns`` itself; SQLite as a correlated subquery in the join condition,
    whose event row is then read by primary key.
    """
    inner = de.alias("latest")
    where = (inner.c.environment_id == env, inner.c.model_id == model, inner.c.at <= at)
    order = (inner.c.at.desc(), inner.c.id.desc())
    join = left.outerjoin if outer else left.join
    if dialect == "postgresql":
        event = (select(*(inner.c[c] for c in columns))
                 .where(*where).order_by(*order).limit(1).lateral("latest_event"))
        return join(event, true()), event
    seek = select(inner.c.id).where(*where).order_by(*order).limit(1)
    return join(de, de.c.id == seek.correlate(left).scalar_subquery()), de


def _served_at_statement(dialect: str) -> Any:
    """The "as of" statement, built once per dialect (building it costs more than running it).

    For each model of ``environment_models``, the last event of (E, M) at or before
    ``:at`` (:func:`_join_last_event`), joined by primary key to its version and model.
    """
    em = environment_models
    at = bindparam("at", type_=UTCDateTime())
    source, event = _join_last_event(
        em, dialect, env=em.c.environment_id, model=em.c.model_id, at=at,
        columns=("version_id", "at", "recorded_by", "note"), outer=False)
    # Columns in the order of a Deployment's fields after its environment.
    return (
        select(models.c.name, versions.c.number, versions.c.digest, versions.c.stage,
               event.c.at, event.c.recorded_by, event.c.note)
        .select_from(source
                     .join(versions, versions.c.id == event.c.version_id)  # inner: drops "ended"
                     .join(models, models.c.id == em.c.model_id))
        .where(em.c.environment_id == bindparam("env_id"))
    )


_SERVED_AT = {d: _served_at_statement(d) for d in ("postgresql", "sqlite")}


def served_at(conn: Connection, env_id: int, at: datetime) -> list[Row[Any]]:
    """What served in E at ``at``: one row per model whose last event by then names a version
    (in no particular order), as (model name, version number, digest, stage, since,
    recorded_by, note)."""
    dialect = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
    return list(conn.execute(_SERVED_AT[dialect], {"env_id": env_id, "at": at}))


def _served_one_statement(dialect: str) -> Any:
    """The auditor's question for one model in one statement: the model (by normal name),
    the last event of (E, M) at or before ``:at`` (one backward seek), its version, and
    that version's stage changes up to ``:at`` (one row each, in order).

    Outer joins all the way: the model row comes back even when nothing served (``number``
    None: no event by then, an *end* event, or a version that is gone), and with NULL
    stage columns when the version had no stage change by then.
    """
    at = bindparam("at", type_=UTCDateTime())
    source, event = _join_last_event(
        models, dialect, env=bindparam("env_id"), model=models.c.id, at=at,
        columns=("id", "version_id", "at", "recorded_by", "note"), outer=True)
    se = stage_events.c
    return (
        select(models.c.name.label("model_name"), models.c.normalized_name,
               models.c.owner_team, event.c.id, event.c.at, event.c.recorded_by,
               event.c.note, event.c.version_id, versions.c.number, versions.c.digest,
               versions.c.stage, se.id.label("stage_event_id"), se.from_stage, se.to_stage,
               se.at.label("stage_at"), se.actor, se.request_id, se.break_glass, se.reason)
        .select_from(source
                     .outerjoin(versions, versions.c.id == event.c.version_id)
                     .outerjoin(stage_events, and_(se.version_id == versions.c.id,
                                                   se.at <= at)))
        .where(models.c.normalized_name == bindparam("name"))
        .order_by(se.at, se.id)
    )


_SERVED_ONE = {d: _served_one_statement(d) for d in ("postgresql", "sqlite")}


def served_one(conn: Connection, env_id: int, normalized_name: str,
               at: datetime) -> list[Row[Any]]:
    """The model ``normalized_name`` with what it served in E at ``at`` and that version's
    stage changes by then (see :func:`_served_one_statement`); no rows: no such model."""
    dialect = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
    return list(conn.execute(_SERVED_ONE[dialect],
                             {"env_id": env_id, "name": normalized_name, "at": at}))


# Aliases are built once: building one costs more than the query it serves.
_NXT = de.alias("nxt")
_PRV = de.alias("prv")
_PV = versions.alias("pv")


def _next_event_subqueries() -> tuple[Any, Any]:
    """Correlated (at, recorded_by) of the event that follows each ``de`` row in its (E, M)."""
    nxt = _NXT
    following = and_(
        nxt.c.environment_id == de.c.environment_id,
        nxt.c.model_id == de.c.model_id,
        or_(nxt.c.at > de.c.at, and_(nxt.c.at == de.c.at, nxt.c.id > de.c.id)),
    )
    base = select().where(following).order_by(nxt.c.at, nxt.c.id).limit(1).correlate(de)
    end_at = base.add_columns(nxt.c.at).scalar_subquery()
    end_by = base.add_columns(nxt.c.recorded_by).scalar_subquery()
    return end_at, end_by


def _previous_version_subquery() -> Any:
    prv = _PRV
    before = and_(
        prv.c.environment_id == de.c.environment_id,
        prv.c.model_id == de.c.model_id,
        or_(prv.c.at < de.c.at, and_(prv.c.at == de.c.at, prv.c.id < de.c.id)),
    )
    pv = _PV
    return (
        select(pv.c.number)
        .select_from(prv.outerjoin(pv, pv.c.id == prv.c.version_id))
        .where(before)
        .order_by(prv.c.at.desc(), prv.c.id.desc())
        .limit(1)
        .correlate(de)
        .scalar_subquery()
    )


def version_intervals(conn: Connection, version_id: int) -> list[Row[Any]]:
    """Every time this version started serving somewhere, with the end of each interval."""
    end_at, end_by = _next_event_subqueries()
    q = (
        select(de.c.id, de.c.at, de.c.recorded_by, de.c.note,
               environments.c.name.label("environment"),
               end_at.label("end_at"), end_by.label("ended_by"))
        .join(environments, environments.c.id == de.c.environment_id)
        .where(de.c.version_id == version_id)
        .order_by(de.c.at, de.c.id)
        .limit(10_000)
    )
    return list(conn.execute(q))


def _event_columns() -> list[Any]:
    return [
        de.c.id, de.c.at, de.c.recorded_at, de.c.recorded_by, de.c.note, de.c.version_id,
        versions.c.number, models.c.name.label("model_name"),
        environments.c.name.label("environment"),
        _previous_version_subquery().label("previous_number"),
    ]


def _events_query() -> Any:
    return (
        select(*_event_columns())
        .select_from(de)
        .join(models, models.c.id == de.c.model_id)
        .join(environments, environments.c.id == de.c.environment_id)
        .outerjoin(versions, versions.c.id == de.c.version_id)
    )


def event_by_id(conn: Connection, event_id: int) -> Row[Any] | None:
    """One event with its model, environment, version number and the version before it."""
    row: Row[Any] | None = conn.execute(_events_query().where(de.c.id == event_id)).first()
    return row


def _keyset(after: tuple[datetime, int] | None, descending: bool) -> Any:
    if after is None:
        return None
    at, eid = after
    if descending:
        return or_(de.c.at < at, and_(de.c.at == at, de.c.id < eid))
    return or_(de.c.at > at, and_(de.c.at == at, de.c.id > eid))


def timeline(
    conn: Connection, env_id: int, *, since: datetime | None, until: datetime | None,
    model_id: int | None, after: tuple[datetime, int] | None, descending: bool, limit: int,
) -> list[Row[Any]]:
    """Events of one environment in time order (keyset on (at, id))."""
    q = _events_query().where(de.c.environment_id == env_id)
    if model_id is not None:
        q = q.where(de.c.model_id == model_id)
    if since is not None:
        q = q.where(de.c.at >= since)
    if until is not None:
        q = q.where(de.c.at < until)
    cond = _keyset(after, descending)
    if cond is not None:
        q = q.where(cond)
    order = (de.c.at.desc(), de.c.id.desc()) if descending else (de.c.at, de.c.id)
    return list(conn.execute(q.order_by(*order).limit(limit)))


def model_history(
    conn: Connection, model_id: int, *, after: tuple[datetime, int] | None, descending: bool,
    limit: int,
) -> list[Row[Any]]:
    """Events of one model across every environment, in time order (keyset on (at, id))."""
    env_ids = select(environment_models.c.environment_id).where(
        environment_models.c.model_id == model_id)
    q = _events_query().where(de.c.model_id == model_id, de.c.environment_id.in_(env_ids))
    cond = _keyset(after, descending)
    if cond is not None:
        q = q.where(cond)
    order = (de.c.at.desc(), de.c.id.desc()) if descending else (de.c.at, de.c.id)
    return list(conn.execute(q.order_by(*order).limit(limit)))


# --------------------------------------------------------------------------- observations


def insert_observation(conn: Connection, values: Mapping[str, Any]) -> int:
    q = insert(observations).values(**values).returning(observations.c.id)
    return int(conn.execute(q).scalar_one())


def fresh_observations(conn: Connection, env_id: int, since: datetime) -> list[Row[Any]]:
    """Per (digest, instance): the latest observation of E since ``since``."""
    o = observations.c
    q = (
        select(o.digest, o.instance, func.max(o.observed_at).label("last_seen"),
               func.count().label("reports"))
        .where(o.environment_id == env_id, o.observed_at >= since)
        .group_by(o.digest, o.instance)
        .order_by(o.digest, o.instance)
    )
    return list(conn.execute(q))


# --------------------------------------------------------------------------- evidence


def _transitions_statement() -> Any:
    """Applied transition requests of a version decided by ``:upto``, each with its votes
    (LEFT JOIN: one row per approval, one row with NULL approval columns when none), in
    decision order then vote order: one statement instead of one per table."""
    t, a = transition_requests.c, approvals.c
    return (
        select(t.id, t.from_stage, t.to_stage, t.justification, t.requested_by, t.requested_at,
               t.decided_at, t.policy_version, t.checks,
               a.id.label("approval_id"), a.approver, a.decision, a.comment,
               a.version_digest, a.at.label("approval_at"))
        .select_from(transition_requests.outerjoin(approvals, a.request_id == t.id))
        .where(t.version_id == bindparam("version_id"), t.status == "applied",
               t.decided_at <= bindparam("upto", type_=UTCDateTime()))
        .order_by(t.decided_at, t.id, a.at, a.id)
    )


_TRANSITIONS = _transitions_statement()


def applied_transitions(conn: Connection, version_id: int, upto: datetime) -> list[Row[Any]]:
    """Transition requests of the version applied by ``upto``, joined with their approvals
    (``approval_id`` None: a request nobody voted on)."""
    return list(conn.execute(_TRANSITIONS, {"version_id": version_id, "upto": upto}))
