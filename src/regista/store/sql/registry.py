"""Queries of the core registry: models, versions, files, tags, aliases, blobs.

Plain functions over a :class:`sqlalchemy.Connection`; the service layer decides the
rules and the transaction, this module only reads and writes rows.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    Row,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.sql.elements import BindParameter

from regista.domain.models import Alias, FileEntry, FileRole, Model, Version
from regista.store.sql import audit_queries as aq
from regista.store.sql.prepared import Prepared
from regista.store.sql.tables import (
    alias_events,
    aliases,
    audit_head,
    blobs,
    model_tags,
    models,
    version_files,
    version_metrics,
    version_tags,
    versions,
)
from regista.store.sql.types import UTCDateTime

# --------------------------------------------------------------------------- models


# Statements on the registration path are built once: constructing and cache-keying a
# statement per call cost more than executing it (measured with cProfile).
_MODEL_BY_NAME = select(models).where(models.c.normalized_name == bindparam("n"))
_MODEL_BY_NAME_LOCKED = _MODEL_BY_NAME.with_for_update()
# SET expressions read the row as it was: the new number is counter + 1 in both columns.
_ALLOCATE = Prepared(
    update(models)
    .where(models.c.id == bindparam("mid"))
    .values(version_counter=models.c.version_counter + 1,
            latest_version=models.c.version_counter + 1, updated_at=bindparam("now"))
    .returning(models.c.version_counter)
)
# PostgreSQL: registrations into one model queue on an advisory lock (granted in
# arrival order) before they touch the counter row. Queued directly on a hot row, every
# commit wakes all waiters to race for it again, and at 32 waiters the backends spent
# their time in the lock manager (LWLock:LockManager) instead of working. The EXISTS makes
# the lock a condition of the row, so it is taken before the row is.
COUNTER_LOCK_SPACE = 7263532  # pg_advisory_xact_lock(space, model_id)
_COUNTER_TURN = select(
    func.pg_advisory_xact_lock(COUNTER_LOCK_SPACE, cast(bindparam("mid"), Integer))
).cte("turn")
_ALLOCATED = (
    update(models)
    .where(models.c.id == bindparam("mid"), select(_COUNTER_TURN).exists())
    .values(version_counter=models.c.version_counter + 1,
            latest_version=models.c.version_counter + 1, updated_at=bindparam("now"))
    .returning(models.c.version_counter)
    .cte("allocated")
)
_NUMBERED = (
    update(versions)
    .where(versions.c.id == bindparam("vid"))
    .values(number=select(_ALLOCATED.c.version_counter).scalar_subquery())
    .returning(versions.c.number)
    .cte("numbered")
)
# Then, in the same round trip, the audit head the registration will append to: its turn
# is taken after the number (the lock order of every writer: counter, then audit head).
_AUDIT_TURN = aq.audit_turn(after=_NUMBERED)
_NUMBER_VERSION_PG = Prepared(
    select(_NUMBERED.c.number, audit_head.c.seq, audit_head.c.hash)
    .select_from(_NUMBERED.join(audit_head, audit_head.c.id == 1))
    .where(select(_AUDIT_TURN).exists())
    .with_for_update(of=audit_head)
)
_NUMBER_OF = Prepared(select(versions.c.number).where(versions.c.id == bindparam("vid")))
_INSERT_VERSION = Prepared(insert(versions).returning(versions.c.id))
_INSERT_FILES = Prepared(insert(version_files))
_INSERT_TAGS = Prepared(insert(version_tags))
_INSERT_METRICS = Prepared(insert(version_metrics))


@dataclass(frozen=True, slots=True)
class ModelForWrite:
    """What a registration needs of its model's row (see :func:`model_for_write`)."""

    id: int
    name: str
    normalized_name: str
    owner_team: str | None
    archived: bool


# The columns a registration reads, all plain for the driver (the flag as an integer),
# so the read can be a Prepared statement.
_MODEL_FOR_WRITE = Prepared(
    select(models.c.id, models.c.name, models.c.normalized_name, models.c.owner_team,
           cast(models.c.archived, Integer).label("archived"))
    .where(models.c.normalized_name == bindparam("n"))
)


def model_for_write(conn: Connection, normalized: str) -> ModelForWrite | None:
    row = _MODEL_FOR_WRITE.first(conn, {"n": normalized})
    if row is None:
        return None
    mid, name, norm, team, archived = row
    return ModelForWrite(int(mid), name, norm, team, bool(archived))


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
    return int(_ALLOCATE.scalar(conn, {"mid": model_id, "now": now}))


# --------------------------------------------------------------------------- blobs


_KNOWN_BLOBS = select(blobs.c.digest, blobs.c.size).where(
    blobs.c.digest.in_(bindparam("ds", expanding=True)))
_KNOWN_BLOBS_LOCKED = _KNOWN_BLOBS.with_for_update(read=True, key_share=True)
# One digest (the common registration: a single model file) without the expanding IN.
_KNOWN_BLOB = select(blobs.c.digest, blobs.c.size).where(blobs.c.digest == bindparam("d"))
_KNOWN_BLOB_P = Prepared(_KNOWN_BLOB)
_KNOWN_BLOB_LOCKED_P = Prepared(_KNOWN_BLOB.with_for_update(read=True, key_share=True))


def known_blobs(conn: Connection, digests: Iterable[str], *, lock: bool = False) -> dict[str, int]:
    """Size of each of ``digests`` the registry holds.

    ``lock``: on PostgreSQL, keep the rows read locked (``FOR KEY SHARE``) until commit, so
    hygiene's garbage collector (``FOR UPDATE`` then delete) cannot remove a blob between
    a registration's check and its insert. The key-share lock is the weakest that blocks a
    delete; it does not block ``verified_at`` updates. SQLite serialises writers already.
    """
    ds = sorted(set(digests))  # one lock order for every registration
    locked = lock and conn.dialect.name == "postgresql"
    if len(ds) == 1:
        row = (_KNOWN_BLOB_LOCKED_P if locked else _KNOWN_BLOB_P).first(conn, {"d": ds[0]})
        return {row[0]: int(row[1])} if row is not None else {}
    q = _KNOWN_BLOBS_LOCKED if locked else _KNOWN_BLOBS
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


def insert_numbered_version(
    conn: Connection,
    model_id: int,
    now: datetime,
    values: Mapping[str, Any],
    files: Sequence[FileEntry],
    tags: Mapping[str, str],
    metrics: Mapping[str, float],
) -> tuple[int, int, tuple[int, str] | None]:
    """Insert a version with its files, tags and metrics, numbered from the model's
    counter row (see :func:`allocate_version_number`).

    Returns (id, number, audit head): the head (seq, hash) is read and locked here on
    PostgreSQL, for the caller's audit append; None means "read it yourself".

    On PostgreSQL the counter row is locked as late as possible: the rows are written
    first under a provisional number (negative, random: never visible, since the
    transaction is not committed, and a clash only makes one insert wait for the other),
    then one statement takes the number, puts it on the version, and locks and reads the
    audit head. Concurrent registrations into one model queue on the counter, so what
    they wait for is only what follows it (the audit append and the commit), not the
    whole registration. SQLite writers are serialised already: there the number is taken
    first.
    """
    if conn.dialect.name != "postgresql":
        number = allocate_version_number(conn, model_id, now)
        vid = insert_version(conn, {**values, "number": number}, files, tags, metrics)
        return vid, number, None
    provisional = -1 - secrets.randbelow(2**31 - 1)
    vid = insert_version(conn, {**values, "number": provisional}, files, tags, metrics)
    row = _NUMBER_VERSION_PG.first(conn, {"mid": model_id, "now": now, "vid": vid})
    if row is None:  # no audit head yet (a fresh database): the number was still taken
        return vid, int(_NUMBER_OF.scalar(conn, {"vid": vid})), None
    number, seq, head_hash = row
    return vid, int(number), (int(seq), str(head_hash))


def insert_version(
    conn: Connection,
    values: Mapping[str, Any],
    files: Sequence[FileEntry],
    tags: Mapping[str, str],
    metrics: Mapping[str, float],
) -> int:
    vid = int(_INSERT_VERSION.scalar(conn, values))
    if files:
        _INSERT_FILES.executemany(
            conn,
            [
                {"version_id": vid, "path": f.path, "digest": f.digest, "size": f.size,
                 "media_type": f.media_type, "role": str(f.role)}
                for f in files
            ],
        )
    if tags:
        _INSERT_TAGS.executemany(
            conn, [{"version_id": vid, "key": k, "value": v} for k, v in tags.items()])
    if metrics:
        _INSERT_METRICS.executemany(
            conn, [{"version_id": vid, "name": k, "value": v} for k, v in metrics.items()])
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


# A page of versions is hydrated with three statements built once (expanding ``IN``):
# the rows with their model's name, then tags and aliases together, then files.
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_PAGE_ROWS = (
    select(versions.c.id, models.c.name, versions.c.number, versions.c.digest,
           versions.c.description, versions.c.stage, versions.c.stage_changed_at,
           versions.c.provenance, versions.c.file_count, versions.c.total_size,
           versions.c.parent_version_id, versions.c.created_at, versions.c.created_by,
           versions.c.updated_at)
    .join(models, models.c.id == versions.c.model_id)
    .where(versions.c.id.in_(_IDS))
)
# Tags (0, key, value) and aliases (1, name, '') of a page: one round trip, not two.
_PAGE_LABELS = union_all(
    select(literal_column("0").label("kind"), version_tags.c.version_id,
           version_tags.c.key.label("name"), version_tags.c.value)
    .where(version_tags.c.version_id.in_(_IDS)),
    select(literal_column("1"), aliases.c.version_id, aliases.c.name, literal_column("''"))
    .where(aliases.c.version_id.in_(_IDS)),
).order_by(literal_column("name"))
_PAGE_FILES = (
    select(version_files.c.version_id, version_files.c.path, version_files.c.digest,
           version_files.c.size, version_files.c.media_type, version_files.c.role)
    .where(version_files.c.version_id.in_(_IDS))
    .order_by(version_files.c.path)
)
_PARENT_REFS = (
    select(versions.c.id, versions.c.number, models.c.name)
    .join(models, models.c.id == versions.c.model_id)
    .where(versions.c.id.in_(_IDS))
)


def load_versions(conn: Connection, ids: Sequence[int], *, with_files: bool = True) -> list[Version]:
    """Hydrate versions (in the order of ``ids``) with files, tags and aliases."""
    if not ids:
        return []
    ids = list(ids)
    rows = {r[0]: r for r in conn.execute(_PAGE_ROWS, {"ids": ids}).all()}
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    als: dict[int, list[str]] = defaultdict(list)
    for kind, vid, name, value in conn.execute(_PAGE_LABELS, {"ids": ids}).all():
        if kind == 0:
            tags[vid][name] = value
        else:
            als[vid].append(name)
    files: dict[int, list[FileEntry]] = defaultdict(list)
    if with_files:
        for vid, path, digest, size, media_type, role in conn.execute(
                _PAGE_FILES, {"ids": ids}).all():
            files[vid].append(FileEntry(path=path, digest=digest, size=size,
                                        media_type=media_type, role=FileRole(role)))
    parents = sorted({r.parent_version_id for r in rows.values() if r.parent_version_id})
    parent_refs: dict[int, str] = {}
    if parents:
        parent_refs = {pid: f"{name}/{number}" for pid, number, name in
                       conn.execute(_PARENT_REFS, {"ids": parents}).all()}
    out = []
    for i in ids:
        r = rows.get(i)
        if r is None:
            continue
        (vid, model, number, digest, description, stage, stage_changed_at, provenance,
         file_count, total_size, parent_id, created_at, created_by, updated_at) = r
        out.append(
            Version(
                id=vid,
                model=model,
                number=number,
                digest=digest,
                description=description,
                stage=stage,
                stage_changed_at=stage_changed_at,
                provenance=provenance,
                tags=tags.get(i, {}),
                aliases=als.get(i, []),
                files=files.get(i, []),
                file_count=file_count,
                total_size=total_size,
                parent=parent_refs.get(parent_id) if parent_id else None,
                created_at=created_at,
                created_by=created_by,
                updated_at=updated_at,
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


# Built once (with bind parameters): building and cache-keying the statement per call cost
# more than the index seek it runs.
_ALIAS_AS_OF = (
    select(alias_events.c.version_id)
    .where(
        alias_events.c.model_id == bindparam("mid"),
        alias_events.c.alias == bindparam("alias"),
        alias_events.c.at <= bindparam("at", type_=UTCDateTime()),
    )
    .order_by(alias_events.c.at.desc(), alias_events.c.id.desc())
    .limit(1)
)


def alias_target_as_of(conn: Connection, model_id: int, name: str, at: datetime) -> int | None:
    """The version an alias pointed at at instant ``at`` (one index seek)."""
    return conn.execute(_ALIAS_AS_OF, {"mid": model_id, "alias": name, "at": at}).scalar()


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
