"""Queries of registry hygiene: orphaned blobs, stale uploads, superseded and unverified versions.

Every question is answered by an aggregate or an indexed query in the database; nothing
here loads all versions. The two deletes (:func:`delete_orphan_blobs`,
:func:`delete_uploads`) re-check their condition in the statement itself, so a stale list of
candidates can never remove a blob a version references.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    delete,
    distinct,
    exists,
    func,
    or_,
    select,
    update,
)

from regista.store.sql.tables import (
    aliases,
    audit_events,
    blobs,
    deployment_events,
    models,
    uploads,
    version_files,
    versions,
)

BATCH = 500


def _batches(items: Sequence[str]) -> list[list[str]]:
    return [list(items[i:i + BATCH]) for i in range(0, len(items), BATCH)]


def _is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


# --------------------------------------------------------------------------- orphaned blobs


def _unreferenced() -> Any:
    """``blobs`` rows no ``version_files`` row names (an anti-join on ix_version_files_digest)."""
    return ~exists().where(version_files.c.digest == blobs.c.digest)


def orphan_totals(conn: Connection, *, created_before: datetime | None = None) -> Row[Any]:
    """(n, bytes, oldest) of orphaned blobs, optionally only those created before a time."""
    q: Any = select(func.count().label("n"),
               func.coalesce(func.sum(blobs.c.size), 0).label("bytes"),
               func.min(blobs.c.created_at).label("oldest")).where(_unreferenced())
    if created_before is not None:
        q = q.where(blobs.c.created_at < created_before)
    return conn.execute(q).one()


def orphan_blobs(conn: Connection, *, created_before: datetime | None, limit: int) -> list[Row[Any]]:
    """(digest, size, created_at) of orphaned blobs, oldest first."""
    q = select(blobs.c.digest, blobs.c.size, blobs.c.created_at).where(_unreferenced())
    if created_before is not None:
        q = q.where(blobs.c.created_at < created_before)
    return list(conn.execute(q.order_by(blobs.c.created_at, blobs.c.digest).limit(limit)))


def lock_blobs_for_delete(conn: Connection, digests: Sequence[str]) -> list[str]:
    """The subset of ``digests`` this transaction may delete.

    On PostgreSQL the rows are locked ``FOR UPDATE SKIP LOCKED``: a blob a registration
    is checking right now (it holds ``FOR KEY SHARE``, see ``registry.known_blobs``) is
    skipped instead of waited for, and from here on no registration can lock it until
    this transaction ends. SQLite writers are serialised: every digest is available.
    """
    if not _is_postgres(conn):
        return list(digests)
    out: list[str] = []
    for batch in _batches(sorted(digests)):
        q = (select(blobs.c.digest).where(blobs.c.digest.in_(batch))
             .order_by(blobs.c.digest).with_for_update(skip_locked=True))
        out.extend(str(d) for d in conn.execute(q).scalars())
    return out


def delete_orphan_blobs(conn: Connection, digests: Sequence[str],
                        *, created_before: datetime | None) -> list[Row[Any]]:
    """Delete the rows of these blobs that no version references; return (digest, size) deleted.

    The condition is part of the DELETE (``… AND NOT EXISTS (SELECT 1 FROM version_files
    WHERE digest = blobs.digest)``), so a blob referenced since it was listed stays.
    """
    out: list[Row[Any]] = []
    for batch in _batches(sorted(digests)):
        st = delete(blobs).where(blobs.c.digest.in_(batch), _unreferenced())
        if created_before is not None:
            st = st.where(blobs.c.created_at < created_before)
        out.extend(conn.execute(st.returning(blobs.c.digest, blobs.c.size)))
    return out


# --------------------------------------------------------------------------- uploads


def stale_upload_totals(conn: Connection, created_before: datetime) -> Row[Any]:
    """(n, bytes) of resumable uploads started before ``created_before`` (declared sizes)."""
    q: Any = select(func.count().label("n"),
               func.coalesce(func.sum(uploads.c.size), 0).label("bytes")).where(
        uploads.c.created_at < created_before)
    return conn.execute(q).one()


def stale_uploads(conn: Connection, created_before: datetime, *, limit: int,
                  lock: bool = False) -> list[Row[Any]]:
    """Uploads started before ``created_before``, oldest first (index on created_at).

    ``lock`` (PostgreSQL): ``FOR UPDATE SKIP LOCKED``, so an upload that a request is
    appending to right now (it holds the row lock) is left alone.
    """
    q = (select(uploads.c.id, uploads.c.handle, uploads.c.digest, uploads.c.size,
                uploads.c.created_at, uploads.c.created_by)
         .where(uploads.c.created_at < created_before)
         .order_by(uploads.c.created_at, uploads.c.id).limit(limit))
    if lock and _is_postgres(conn):
        q = q.with_for_update(skip_locked=True)
    return list(conn.execute(q))


def delete_uploads(conn: Connection, ids: Sequence[str]) -> int:
    removed = 0
    for batch in _batches(list(ids)):
        removed += conn.execute(delete(uploads).where(uploads.c.id.in_(batch))).rowcount
    return removed


def known_upload_handles(conn: Connection, handles: Sequence[str]) -> set[str]:
    """Which of these store handles belong to an upload the database knows."""
    out: set[str] = set()
    for batch in _batches(list(handles)):
        q = select(uploads.c.handle).where(uploads.c.handle.in_(batch))
        out.update(str(h) for h in conn.execute(q).scalars())
    return out


# --------------------------------------------------------------------------- superseded versions


def _currently_deployed(version_id: Any) -> Any:
    """Whether the version is the latest event of some (environment, model).

    Seeks ix_deployment_events_version_id_at for the version's events, then
    ix_deployment_events_env_model_at for a later event of the same pair.
    """
    de = deployment_events.alias("de")
    later = deployment_events.alias("later")
    superseded = exists().where(
        later.c.environment_id == de.c.environment_id,
        later.c.model_id == de.c.model_id,
        or_(later.c.at > de.c.at, and_(later.c.at == de.c.at, later.c.id > de.c.id)),
    )
    return exists().where(de.c.version_id == version_id, ~superseded)


def superseded_query(production_stage: str, archive_stage: str | None,
                     model_ids: Sequence[int] | None = None) -> Any:
    """(version_id, model_id, number, stage, newest_production) of superseded versions.

    A version is superseded-but-unarchived when it is not archived, its number is below
    its model's newest ``production_stage`` version, no alias points at it, and it is not
    what currently serves for its model in any environment. Driven from the (few)
    production versions; each model's older versions are a range of
    uq_versions_model_id_number. ``model_ids`` restricts it to some models.
    """
    newest_q = (
        select(versions.c.model_id, func.max(versions.c.number).label("newest"))
        .where(versions.c.stage == production_stage)
        .group_by(versions.c.model_id)
    )
    if model_ids is not None:
        newest_q = newest_q.where(versions.c.model_id.in_(list(model_ids)))
    newest = newest_q.subquery("newest")
    v = versions.alias("v")
    cond = [v.c.model_id == newest.c.model_id, v.c.number < newest.c.newest]
    if archive_stage is not None:
        cond.append(v.c.stage != archive_stage)
    return (
        select(v.c.id.label("version_id"), v.c.model_id, v.c.number, v.c.stage,
               newest.c.newest.label("newest_production"))
        .select_from(newest.join(v, and_(*cond)))
        .where(~exists().where(aliases.c.version_id == v.c.id), ~_currently_deployed(v.c.id))
    )


def _top_models(conn: Connection, model_id: Any, count: Any, source: Any, where: Sequence[Any],
                limit: int) -> tuple[int, list[Row[Any]]]:
    """(total, top ``limit`` (model_id, model, n) rows) of a per-model count, in one query.

    The total is a window sum over every group, taken before the LIMIT, so the whole
    count and the top of the list come from one pass.
    """
    top = (
        select(model_id.label("model_id"), count.label("n"), func.sum(count).over().label("total"))
        .select_from(source).where(*where)
        .group_by(model_id)
        .order_by(count.desc(), model_id)
        .limit(limit)
        .subquery("top")
    )
    rows: list[Row[Any]] = list(conn.execute(
        select(top.c.model_id, models.c.name.label("model"), top.c.n, top.c.total)
        .join(models, models.c.id == top.c.model_id)
        .order_by(top.c.n.desc(), models.c.name)
    ))
    return (int(rows[0].total) if rows else 0), rows


def superseded_summary(conn: Connection, production_stage: str, archive_stage: str | None,
                       limit: int) -> tuple[int, list[Row[Any]], list[Row[Any]]]:
    """(total, top ``limit`` models by count, up to ``limit`` of their versions)."""
    base = superseded_query(production_stage, archive_stage).subquery("superseded")
    total, per_model = _top_models(conn, base.c.model_id, func.count(), base, (), limit)
    if total == 0:
        return 0, [], []
    mine = superseded_query(production_stage, archive_stage,
                            [int(r.model_id) for r in per_model]).subquery("mine")
    items = list(conn.execute(
        select(models.c.name.label("model"), mine.c.number, mine.c.stage,
               mine.c.newest_production)
        .select_from(mine.join(models, models.c.id == mine.c.model_id))
        .order_by(models.c.normalized_name, mine.c.number)
        .limit(limit)
    ))
    return total, per_model, items


# --------------------------------------------------------------------------- verification


def _unverified(cutoff: datetime) -> Any:
    return or_(blobs.c.verified_at.is_(None), blobs.c.verified_at < cutoff)


def unverified_summary(conn: Connection, cutoff: datetime, limit: int
                       ) -> tuple[int, int, list[Row[Any]], list[Row[Any]]]:
    """Versions with a file whose blob was never verified or not since ``cutoff``.

    Returns (versions, blobs, top ``limit`` models by count, up to ``limit`` of their
    files). A version belongs to one model, so the per-model distinct counts add up to
    the total.
    """
    refs = (blobs.join(version_files, version_files.c.digest == blobs.c.digest)
            .join(versions, versions.c.id == version_files.c.version_id))
    total, per_model = _top_models(conn, versions.c.model_id,
                                   func.count(distinct(version_files.c.version_id)), refs,
                                   (_unverified(cutoff),), limit)
    if total == 0:
        return 0, 0, [], []
    blob_count = int(conn.execute(
        select(func.count()).select_from(blobs)
        .where(_unverified(cutoff), exists().where(version_files.c.digest == blobs.c.digest))
    ).scalar_one())
    items: list[Row[Any]] = list(conn.execute(
        select(models.c.name.label("model"), versions.c.number, version_files.c.path,
               blobs.c.digest, blobs.c.verified_at)
        .select_from(refs.join(models, models.c.id == versions.c.model_id))
        .where(_unverified(cutoff), versions.c.model_id.in_([int(r.model_id) for r in per_model]))
        .order_by(models.c.normalized_name, versions.c.number, version_files.c.path)
        .limit(limit)
    ))
    return total, blob_count, per_model, items


def blobs_to_verify(conn: Connection, *, verified_before: datetime | None,
                    limit: int | None) -> list[Row[Any]]:
    """(digest, size) of blobs due for re-hashing: never verified first, then oldest."""
    q = select(blobs.c.digest, blobs.c.size)
    if verified_before is not None:
        q = q.where(_unverified(verified_before))
    q = q.order_by(blobs.c.verified_at.asc().nulls_first(), blobs.c.digest)
    if limit is not None:
        q = q.limit(limit)
    return list(conn.execute(q))


def existing_blobs(conn: Connection, digests: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for batch in _batches(list(digests)):
        out.update(str(d) for d in conn.execute(
            select(blobs.c.digest).where(blobs.c.digest.in_(batch))).scalars())
    return out


def unverified_digests(conn: Connection, digests: Sequence[str]) -> set[str]:
    """Which of these blobs still exist with ``verified_at`` NULL (a recorded failure)."""
    out: set[str] = set()
    for batch in _batches(list(digests)):
        q = select(blobs.c.digest).where(blobs.c.digest.in_(batch), blobs.c.verified_at.is_(None))
        out.update(str(d) for d in conn.execute(q).scalars())
    return out


def set_verified_at(conn: Connection, digests: Sequence[str], at: datetime | None) -> int:
    """Stamp (or, with None, clear) ``verified_at`` of these blobs; return rows changed."""
    changed = 0
    for batch in _batches(sorted(digests)):
        changed += conn.execute(
            update(blobs).where(blobs.c.digest.in_(batch)).values(verified_at=at)).rowcount
    return changed


def referencing_versions(conn: Connection, digests: Sequence[str], *, per_digest: int
                         ) -> dict[str, list[dict[str, Any]]]:
    """For each digest, up to ``per_digest`` (model, version, path) of the files naming it."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for batch in _batches(list(digests)):
        q = (
            select(version_files.c.digest, models.c.name, versions.c.number, version_files.c.path)
            .join(versions, versions.c.id == version_files.c.version_id)
            .join(models, models.c.id == versions.c.model_id)
            .where(version_files.c.digest.in_(batch))
            .order_by(version_files.c.digest, models.c.normalized_name, versions.c.number,
                      version_files.c.path)
        )
        for r in conn.execute(q):
            refs = out[str(r.digest)]
            if len(refs) < per_digest:
                refs.append({"model": r.name, "version": int(r.number), "path": r.path})
    return dict(out)


# --------------------------------------------------------------------------- audit


def latest_event(conn: Connection, action: str) -> Row[Any] | None:
    """The newest audit event of ``action`` (one seek on ix_audit_events_action_seq)."""
    q: Any = (select(audit_events.c.seq, audit_events.c.at, audit_events.c.actor, audit_events.c.after)
         .where(audit_events.c.action == action)
         .order_by(audit_events.c.seq.desc()).limit(1))
    row: Row[Any] | None = conn.execute(q).first()
    return row
