"""The hash-chained audit log: one event per change, in the change's own transaction.

Each event's hash is ``sha256(prev_hash || canonical(event))``. The chain head lives in
one row of ``audit_head``; an append locks it (``SELECT … FOR UPDATE`` on PostgreSQL,
the database-wide write lock on SQLite), so the chain stays linear under any number of
concurrent writers and server processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select, update

from regista.domain.models import Actor
from regista.store.sql.tables import audit_events, audit_head

GENESIS = "0" * 64
_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def iso(ts: datetime) -> str:
    """The one text form of an instant in the chain: UTC, microseconds, 'Z'."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    outcome: str,
    model: str | None,
    version: int | None,
    target: str | None,
    request_id: str | None,
    before: Any,
    after: Any,
) -> bytes:
    return orjson.dumps(
        [seq, iso(at), actor, action, outcome, model, version, target, request_id, before,
         after],
        option=_OPTS,
    )


def chain_hash(prev_hash: str, payload: bytes) -> str:
    h = hashlib.sha256(prev_hash.encode("ascii"))
    h.update(payload)
    return h.hexdigest()


def _jsonable(value: Any) -> Any:
    # Round-trip through orjson so what we hash is exactly what the JSON column returns.
    if value is None:
        return None
    return orjson.loads(orjson.dumps(value, option=_OPTS))


def append(
    conn: Connection,
    actor: Actor,
    action: str,
    *,
    at: datetime,
    model: str | None = None,
    version: int | None = None,
    target: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    outcome: str = "ok",
) -> int:
    """Append one event to the chain inside the caller's transaction; return its seq."""
    locked = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    if conn.dialect.name == "postgresql":
        locked = locked.with_for_update()
    head = conn.execute(locked).first()
    if head is None:
        conn.execute(insert(audit_head).values(id=1, seq=0, hash=GENESIS))
        prev_seq, prev_hash = 0, GENESIS
        if conn.dialect.name == "postgresql":  # another writer may have raced the insert
            row = conn.execute(locked).one()
            prev_seq, prev_hash = row.seq, row.hash
    else:
        prev_seq, prev_hash = head.seq, head.hash
    seq = prev_seq + 1
    b = _jsonable(before)
    a = _jsonable(after)
    digest = chain_hash(
        prev_hash,
        canonical(seq, at, actor.name, action, outcome, model, version, target,
                  actor.request_id, b, a),
    )
    conn.execute(
        insert(audit_events).values(
            seq=seq, at=at, actor=actor.name, action=action, outcome=outcome, model=model,
            version=version, target=target, request_id=actor.request_id, before=b, after=a,
            prev_hash=prev_hash, hash=digest,
        )
    )
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=digest))
    return seq
