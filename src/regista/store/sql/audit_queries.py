"""Queries over the audit log: the chain in seq order, filtered pages, checkpoints.

The chain reader returns plain tuples with the instant and the JSON columns as *text*,
so verification can rebuild each event's canonical bytes without building datetimes or
going through the driver's JSON decoder (orjson is several times faster). Anything the
fast form cannot reproduce is re-checked with :func:`event_row`, which returns the
columns exactly as the ORM types read them.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Row,
    and_,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from regista.store.sql.prepared import Prepared
from regista.store.sql.tables import audit_checkpoints, audit_events, audit_head

# (seq, at_iso, actor, action, outcome, model, version, target, request_id,
#  before_json_text, after_json_text, prev_hash, hash)
ChainRow = tuple[int, str, str, str, str, str | None, int | None, str | None, str | None,
                 str | None, str | None, str, str]

_PG_CHAIN = (
    "SELECT seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), actor, "
    "action, outcome, model, version, target, request_id, before::text, after::text, "
    "prev_hash, hash FROM audit_events WHERE seq > %(lo)s AND seq <= %(hi)s ORDER BY seq"
)
# SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' (always six digits).
_SQLITE_CHAIN = (
    "SELECT seq, replace(at, ' ', 'T') || 'Z', actor, action, outcome, model, version, "
    "target, request_id, before, after, prev_hash, hash FROM audit_events "
    "WHERE seq > ? AND seq <= ? ORDER BY seq"
)


# PostgreSQL: every write queues for the audit head. Writers queue on a transaction-scoped
# advisory lock first (granted in arrival order) and take the head row only when it is
# their turn: waiting on the hot row itself, each commit woke every waiter to race for it
# again (see docs/decisions.md). The EXISTS makes the lock a condition of the row.
AUDIT_LOCK_KEY = 7263533


def audit_turn(after: Any = None) -> Any:
    """A CTE taking the audit advisory lock (after the rows of ``after``, if given)."""
    q = select(func.pg_advisory_xact_lock(cast(AUDIT_LOCK_KEY, BigInteger)))
    if after is not None:
        q = q.select_from(after)
    return q.cte("audit_turn")


HEAD = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
_TURN = audit_turn()
HEAD_LOCKED_PG = HEAD.where(select(_TURN).exists()).with_for_update(of=audit_head)
_HEAD_P = Prepared(HEAD)
_HEAD_LOCKED_PG_P = Prepared(HEAD_LOCKED_PG)


_INSERT_EVENT = Prepared(insert(audit_events))
_MOVE_HEAD_STMT = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=bindparam("seq"), hash=bindparam("hash"))
)
_EVENT_COLUMNS = ("seq", "at", "actor", "action", "outcome", "model", "version", "target",
                  "request_id", "before", "after", "prev_hash", "hash")
# PostgreSQL: the event and the moved head in one round trip (the head row stays locked
# until commit; every round trip under that lock is one every writer waits for).
_MOVE_HEAD = Prepared(_MOVE_HEAD_STMT)
_APPEND_PG = Prepared(_MOVE_HEAD_STMT.add_cte(
    insert(audit_events)
    .values({c: bindparam(c, type_=audit_events.c[c].type) for c in _EVENT_COLUMNS})
    .cte("appended")
))


def head_for_append(conn: Connection, genesis: str) -> tuple[int, str]:
    """The head (seq, hash) an append chains onto, locked until commit on PostgreSQL
    (SQLite's writer lock serialises appends already); created at ``genesis`` when the
    database has never had an event."""
    pg = conn.dialect.name == "postgresql"
    row = (_HEAD_LOCKED_PG_P if pg else _HEAD_P).first(conn)
    if row is not None:
        return int(row[0]), str(row[1])
    if pg:
        # Two first writers may race here: ON CONFLICT lets the loser through, and the
        # locked re-read orders them.
        conn.execute(pg_insert(audit_head).values(id=1, seq=0, hash=genesis)
                     .on_conflict_do_nothing(index_elements=["id"]))
        row = conn.execute(HEAD_LOCKED_PG).one()
        return int(row.seq), str(row.hash)
    conn.execute(insert(audit_head).values(id=1, seq=0, hash=genesis))
    return 0, genesis


def write_event(conn: Connection, event: Mapping[str, Any]) -> None:
    """Insert one chained event (all of :data:`_EVENT_COLUMNS`) and move the head to it."""
    if conn.dialect.name == "postgresql":
        _APPEND_PG.execute(conn, event).close()
    else:
        _INSERT_EVENT.execute(conn, event).close()
        _MOVE_HEAD.execute(conn, {"seq": event["seq"], "hash": event["hash"]}).close()


def head(conn: Connection) -> tuple[int, str] | None:
    """The chain head (seq, hash) as recorded in ``audit_head``, or None if never written."""
    row = conn.execute(HEAD).first()
    return (int(row.seq), str(row.hash)) if row is not None else None


def max_seq(conn: Connection) -> int:
    """The largest seq present in ``audit_events`` (0 when empty)."""
    return int(conn.execute(select(func.coalesce(func.max(audit_events.c.seq), 0))).scalar_one())


def count_events(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(audit_events)).scalar_one())


def iter_chain(conn: Connection, after_seq: int, chunk: int = 10_000) -> Generator[ChainRow]:
    """Chain rows with ``seq > after_seq`` in seq order, read inside the caller's transaction.

    PostgreSQL streams the result in chunks of ``chunk`` rows (libpq chunked-rows mode),
    so the server produces the next rows while Python hashes these; the stream runs under
    a savepoint because stopping it early cancels the statement, and rolling back to the
    savepoint keeps the caller's snapshot usable. SQLite steps one statement.
    """
    dbapi: Any = conn.connection.dbapi_connection
    assert dbapi is not None
    if conn.dialect.name == "postgresql":
        dbapi.execute("SAVEPOINT regista_audit_chain")
        cur = dbapi.cursor()
        done = False
        try:
            yield from cur.stream(_PG_CHAIN, {"lo": after_seq, "hi": 2**62}, size=chunk)
            done = True
        finally:
            cur.close()
            dbapi.execute("RELEASE SAVEPOINT regista_audit_chain" if done
                          else "ROLLBACK TO SAVEPOINT regista_audit_chain")
    else:
        cur = dbapi.cursor()
        cur.arraysize = chunk
        try:
            cur.execute(_SQLITE_CHAIN, (after_seq, 2**62))
            while rows := cur.fetchmany(chunk):
                yield from rows
        finally:
            cur.close()


def event_row(conn: Connection, seq: int) -> Row[Any] | None:
    """One event with every column read through the table's types."""
    return conn.execute(select(audit_events).where(audit_events.c.seq == seq)).first()


def seqs_with_hash(conn: Connection, digest: str, limit: int = 5) -> list[int]:
    """Seqs of events whose own hash is ``digest`` (a scan; diagnosis only)."""
    q = select(audit_events.c.seq).where(audit_events.c.hash == digest).order_by(audit_events.c.seq)
    return [int(s) for s in conn.execute(q.limit(limit)).scalars()]


def seqs_with_prev_hash(conn: Connection, digest: str, limit: int = 5) -> list[int]:
    """Seqs of events that link to ``digest`` (a scan; diagnosis only)."""
    q = (select(audit_events.c.seq).where(audit_events.c.prev_hash == digest)
         .order_by(audit_events.c.seq))
    return [int(s) for s in conn.execute(q.limit(limit)).scalars()]


def hash_at(conn: Connection, seq: int) -> str | None:
    return conn.execute(select(audit_events.c.hash).where(audit_events.c.seq == seq)).scalar()


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to list or export. ``model`` is the normalised model name."""

    model: str | None = None
    version: int | None = None
    actor: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _where(f: EventFilter) -> list[Any]:
    c = audit_events.c
    cond: list[Any] = []
    if f.model is not None:
        cond.append(c.model == f.model)
    if f.version is not None:
        cond.append(c.version == f.version)
    if f.actor is not None:
        cond.append(c.actor == f.actor)
    if f.action is not None:
        # "version.*" lists a family of actions; anything else is an exact match.
        if f.action.endswith(".*"):
            prefix = f.action[:-1]
            cond.append(and_(c.action >= prefix, c.action < prefix[:-1] + "/"))
        else:
            cond.append(c.action == f.action)
    if f.outcome is not None:
        cond.append(c.outcome == f.outcome)
    if f.since is not None:
        cond.append(c.at >= f.since)
    if f.until is not None:
        cond.append(c.at < f.until)
    return cond


def list_events(conn: Connection, f: EventFilter, *, after_seq: int | None, descending: bool,
                limit: int, upto_seq: int | None = None) -> list[Row[Any]]:
    """One keyset page: events matching ``f`` strictly after ``after_seq`` in the order asked."""
    c = audit_events.c
    q = select(audit_events).where(*_where(f))
    if after_seq is not None:
        q = q.where(c.seq < after_seq if descending else c.seq > after_seq)
    if upto_seq is not None:
        q = q.where(c.seq <= upto_seq)
    q = q.order_by(c.seq.desc() if descending else c.seq.asc()).limit(limit)
    return list(conn.execute(q))


# --------------------------------------------------------------------------- checkpoints


def insert_checkpoint(conn: Connection, seq: int, digest: str, at: datetime) -> None:
    conn.execute(insert(audit_checkpoints).values(seq=seq, hash=digest, at=at))


def checkpoint_at(conn: Connection, seq: int) -> Row[Any] | None:
    return conn.execute(select(audit_checkpoints).where(audit_checkpoints.c.seq == seq)).first()


def latest_checkpoint(conn: Connection) -> Row[Any] | None:
    q = select(audit_checkpoints).order_by(audit_checkpoints.c.seq.desc()).limit(1)
    return conn.execute(q).first()


def list_checkpoints(conn: Connection) -> Sequence[Row[Any]]:
    return list(conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq)))
