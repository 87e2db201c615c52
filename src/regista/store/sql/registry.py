"""Queries of the core registry: models, versions, files, tags, aliases, blobs.

Plain functions over a :class:`sqlalchemy.Connection`; the service layer decides the
rules and the transaction, this module only reads and writes rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, delete, func, insert, select, update

from regista.domain.models import Alias, FileEntry, FileRole, Model, Version
from regista.store.sql.tables import (
    alias_events,
    aliases,
    blobs,
    model_tags,
    models,
    version_files,
    version_metrics,
    version_tags,
    versions,
)

# --------------------------------------------------------------------------- models


# Statements on the registration path are built once: constructing and cache-keying a
# statement per call cost more than executing it (measured with cProfile).
_MODEL_BY_NAME = select(models).where(models.c.normalized_name == bindparam("n"))
_MODEL_BY_NAME_LOCKED = _MODEL_BY_NAME.with_for_update()
# SET expressions read the row as it was: the new number is counter + 1 in both columns.
_ALLOCATE = (
    update(models)
    .where(models.c.id == bindparam("mid"))
    .values(version_counter=models.c.version_counter + 1,
            latest_version=models.c.version_counter + 1, updated_at=bindparam("now"))
    .returning(models.c.version_counter)
)
_INSERT_VERSION = insert(versions).returning(versions.c.id)
_INSERT_FILES = insert(version_files)
_INSERT_TAGS = insert(version_tags)
_INSERT_METRICS = insert(version_metrics)


def model_row(conn: Connection, normalized: str, *, for_update: bool = False) -> Row[Any] | None:
    locked = for_update and conn.dialect.name == "postgresql"
    return conn.execute(_MODEL_BY_NAME_LOCKED if locked else _MODEL_BY_NAME,
                        {"n": normalized}).first()


def model_rows_by_id(conn: Connection, ids: Sequence[int]) -> list[Row[Any]]:
    if not ids:
        return []
    rows = {r.id: r for r in conn.execute(select(models).where(models.c.id.in_(ids)))}
    return [rows[i] for i in ids if i in rows]


def insert_model(conn: Connection, values: Mapping[str, Any]) -> int:
    return int(conn.execute(insert(models).values(**values).returning(models.c.id)).scalar_one())


def update_model(conn: Connection, model_id: int, values: Mapping[str, Any]) -> None:
    conn.execute(update(models).where(models.c.id == model_id).values(**values))


def tags_of_models(conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = defaultdict(dict)
    if ids:
        q = select(model_tags).where(model_tags.c.model_id.in_(ids))
        for r in conn.execute(q):
            out[r.model_id][r.key] = r.value
    return out


def replace_model_tags(conn: Connection, model_id: int, tags: Mapping[str, str]) -> None:
    conn.execute(delete(model_tags).where(model_tags.c.model_id == model_id))
    if tags:
        conn.execute(
            insert(model_tags),
            [{"model_id": model_id, "key": k, "value": v} for k, v in tags.items()],
        )


def aliases_of_models(conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = defaultdict(dict)
    if ids:
        q = (
            select(aliases.c.model_id, aliases.c.name, versions.c.number)
            .join(versions, versions.c.id == aliases.c.version_id)
            .where(aliases.c.model_id.in_(ids))
        )
        for r in conn.execute(q):
            out[r.model_id][r.name] = r.number
    return out


def to_models(conn: Connection, rows: Sequence[Row[Any]]) -> list[Model]:
    ids = [r.id for r in rows]
    tags = tags_of_models(conn, ids)
    als = aliases_of_models(conn, ids)
    return [
        Model(
            id=r.id,
            name=r.name,
            normalized_name=r.normalized_name,
            description=r.description,
            owner_team=r.owner_team,
            risk_tier=r.risk_tier,
            tags=tags.get(r.id, {}),
            archived=r.archived,
            latest_version=r.latest_version,
            version_count=r.version_counter,
            next_review_at=r.next_review_at,
            created_at=r.created_at,
            created_by=r.created_by,
            updated_at=r.updated_at,
            aliases=als.get(r.id, {}),
        )
        for r in rows
    ]


def allocate_version_number(conn: Connection, model_id: int, now: datetime) -> int:
    """Take the next number from the model's counter row; it becomes the latest version.

    The UPDATE locks the row until commit, so concurrent registrations from any number of
    processes queue here; a rolled-back registration gives its number back.
    """
    return int(conn.execute(_ALLOCATE, {"mid": model_id, "now": now}).scalar_one())


# --------------------------------------------------------------------------- blobs


_KNOWN_BLOBS = select(blobs.c.digest, blobs.c.size).where(
    blobs.c.digest.in_(bindparam("ds", expanding=True)))
_KNOWN_BLOBS_LOCKED = _KNOWN_BLOBS.with_for_update(read=True, key_share=True)


def known_blobs(conn: Connection, digests: Iterable[str], *, lock: bool = False) -> dict[str, int]:
    """Size of each of ``digests`` the registry holds.

    ``lock``: on PostgreSQL, keep the rows read locked (``FOR KEY SHARE``) until commit, so
    hygiene's garbage collector (``FOR UPDATE`` then delete) cannot remove a blob between
    a registration's check and its insert. The key-share lock is the weakest that blocks a
    delete; it does not block ``verified_at`` updates. SQLite serialises writers already.
    """
    ds = sorted(set(digests))  # one lock order for every registration
    q = _KNOWN_BLOBS_LOCKED if lock and conn.dialect.name == "postgresql" else _KNOWN_BLOBS
    out: dict[str, int] = {}
    for i in range(0, len(ds), 500):
        out.update({r[0]: r[1] for r in conn.execute(q, {"ds": ds[i : i + 500]})})
    return out


def record_blob(conn: Connection, digest: str, size: int, at: datetime) -> bool:
    """Insert a blob row unless present; True if inserted."""
    if conn.execute(select(blobs.c.digest).where(blobs.c.digest == digest)).first():
        return False
    conn.execute(insert(blobs).values(digest=digest, size=size, created_at=at, verified_at=at))
    return True


# --------------------------------------------------------------------------- versions


def version_by_idempotency_key(conn: Connection, model_id: int, key: str) -> Row[Any, Any] | None:
    q = select(versions.c.id, versions.c.request_hash).where(
        versions.c.model_id == model_id, versions.c.idempotency_key == key
    )
    return conn.execute(q).first()


def insert_version(
    conn: Connection,
    values: Mapping[str, Any],
    files: Sequence[FileEntry],
    tags: Mapping[str, str],
    metrics: Mapping[str, float],
) -> int:
    vid = int(conn.execute(_INSERT_VERSION, dict(values)).scalar_one())
    if files:
        conn.execute(
            _INSERT_FILES,
            [
                {"version_id": vid, "path": f.path, "digest": f.digest, "size": f.size,
                 "media_type": f.media_type, "role": str(f.role)}
                for f in files
            ],
        )
    if tags:
        conn.execute(_INSERT_TAGS, [{"version_id": vid, "key": k, "value": v} for k, v in tags.items()])
    if metrics:
        conn.execute(
            _INSERT_METRICS, [{"version_id": vid, "name": k, "value": v} for k, v in metrics.items()]
        )
    return vid


def replace_version_tags(conn: Connection, version_id: int, tags: Mapping[str, str]) -> None:
    conn.execute(delete(version_tags).where(version_tags.c.version_id == version_id))
    if tags:
        conn.execute(
            insert(version_tags),
            [{"version_id": version_id, "key": k, "value": v} for k, v in tags.items()],
        )


def update_version(conn: Connection, version_id: int, values: Mapping[str, Any]) -> None:
    conn.execute(update(versions).where(versions.c.id == version_id).values(**values))


def version_id_by_number(conn: Connection, model_id: int, number: int) -> int | None:
    q = select(versions.c.id).where(versions.c.model_id == model_id, versions.c.number == number)
    return conn.execute(q).scalar()


def latest_version_id(conn: Connection, model_id: int) -> int | None:
    q = (
        select(versions.c.id)
        .where(versions.c.model_id == model_id)
        .order_by(versions.c.number.desc())
        .limit(1)
    )
    return conn.execute(q).scalar()


def load_versions(conn: Connection, ids: Sequence[int], *, with_files: bool = True) -> list[Version]:
    """Hydrate versions (in the order of ``ids``) with files, tags and aliases."""
    if not ids:
        return []
    q = (
        select(versions, models.c.name.label("model_name"))
        .join(models, models.c.id == versions.c.model_id)
        .where(versions.c.id.in_(ids))
    )
    rows = {r.id: r for r in conn.execute(q)}
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    for t in conn.execute(select(version_tags).where(version_tags.c.version_id.in_(ids))):
        tags[t.version_id][t.key] = t.value
    als: dict[int, list[str]] = defaultdict(list)
    aq = select(aliases.c.version_id, aliases.c.name).where(aliases.c.version_id.in_(ids))
    for a in conn.execute(aq.order_by(aliases.c.name)):
        als[a.version_id].append(a.name)
    files: dict[int, list[FileEntry]] = defaultdict(list)
    if with_files:
        fq = (
            select(version_files)
            .where(version_files.c.version_id.in_(ids))
            .order_by(version_files.c.path)
        )
        for f in conn.execute(fq):
            files[f.version_id].append(
                FileEntry(path=f.path, digest=f.digest, size=f.size, media_type=f.media_type,
                          role=FileRole(f.role))
            )
    parents = {r.parent_version_id for r in rows.values() if r.parent_version_id}
    parent_refs: dict[int, str] = {}
    if parents:
        pq = (
            select(versions.c.id, versions.c.number, models.c.name)
            .join(models, models.c.id == versions.c.model_id)
            .where(versions.c.id.in_(parents))
        )
        parent_refs = {p.id: f"{p.name}/{p.number}" for p in conn.execute(pq)}
    out = []
    for i in ids:
        r = rows.get(i)
        if r is None:
            continue
        out.append(
            Version(
                id=r.id,
                model=r.model_name,
                number=r.number,
                digest=r.digest,
                description=r.description,
                stage=r.stage,
                stage_changed_at=r.stage_changed_at,
                provenance=r.provenance,
                tags=tags.get(i, {}),
                aliases=als.get(i, []),
                files=files.get(i, []),
                file_count=r.file_count,
                total_size=r.total_size,
                parent=parent_refs.get(r.parent_version_id) if r.parent_version_id else None,
                created_at=r.created_at,
                created_by=r.created_by,
                updated_at=r.updated_at,
            )
        )
    return out


def file_of_version(conn: Connection, version_id: int, path: str) -> FileEntry | None:
    q = select(version_files).where(
        version_files.c.version_id == version_id, version_files.c.path == path
    )
    f = conn.execute(q).first()
    if f is None:
        return None
    return FileEntry(path=f.path, digest=f.digest, size=f.size, media_type=f.media_type,
                     role=FileRole(f.role))


def children_of_version(conn: Connection, version_id: int) -> list[str]:
    q = (
        select(versions.c.number, models.c.name)
        .join(models, models.c.id == versions.c.model_id)
        .where(versions.c.parent_version_id == version_id)
        .order_by(models.c.name, versions.c.number)
        .limit(1000)
    )
    return [f"{r.name}/{r.number}" for r in conn.execute(q)]


# --------------------------------------------------------------------------- aliases


def alias_target(conn: Connection, model_id: int, name: str) -> int | None:
    q = select(aliases.c.version_id).where(aliases.c.model_id == model_id, aliases.c.name == name)
    return conn.execute(q).scalar()


def alias_target_as_of(conn: Connection, model_id: int, name: str, at: datetime) -> int | None:
    """The version an alias pointed at at instant ``at`` (one index seek)."""
    q = (
        select(alias_events.c.version_id)
        .where(
            alias_events.c.model_id == model_id,
            alias_events.c.alias == name,
            alias_events.c.at <= at,
        )
        .order_by(alias_events.c.at.desc(), alias_events.c.id.desc())
        .limit(1)
    )
    return conn.execute(q).scalar()


def set_alias(
    conn: Connection, model_id: int, name: str, version_id: int | None, at: datetime, actor: str
) -> None:
    conn.execute(
        delete(aliases).where(and_(aliases.c.model_id == model_id, aliases.c.name == name))
    )
    if version_id is not None:
        conn.execute(
            insert(aliases).values(model_id=model_id, name=name, version_id=version_id,
                                   updated_at=at, updated_by=actor)
        )
    conn.execute(
        insert(alias_events).values(model_id=model_id, alias=name, version_id=version_id, at=at,
                                    actor=actor)
    )


def alias_history(conn: Connection, model_id: int, name: str | None, limit: int) -> list[Alias]:
    q = (
        select(alias_events, versions.c.number, models.c.name.label("model_name"))
        .join(models, models.c.id == alias_events.c.model_id)
        .outerjoin(versions, versions.c.id == alias_events.c.version_id)
        .where(alias_events.c.model_id == model_id)
    )
    if name is not None:
        q = q.where(alias_events.c.alias == name)
    q = q.order_by(alias_events.c.at.desc(), alias_events.c.id.desc()).limit(limit)
    return [
        Alias(model=r.model_name, name=r.alias, version=r.number, at=r.at, actor=r.actor)
        for r in conn.execute(q)
    ]


def count_rows(conn: Connection, table: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
