"""The hash-chained audit log: one event per change, in the change's own transaction.

Each event's hash is ``sha256(prev_hash || canonical(event))``. The chain head lives in
one row of ``audit_head``; an append locks it (``SELECT … FOR UPDATE`` on PostgreSQL,
the database-wide write lock on SQLite), so the chain stays linear under any number of
concurrent writers and server processes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from regista.domain.models import Actor, Page
from regista.domain.names import normalize_name, validate_name
from regista.errors import Conflict, Invalid, InvalidCursor
from regista.service.access import Authorizer, Permission
from regista.service.clock import utcnow
from regista.store.sql import audit_queries as aq
from regista.store.sql.audit_queries import EventFilter as EventFilter
from regista.store.sql.engine import Database

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
    locked_head: tuple[int, str] | None = None,
) -> int:
    """Append one event to the chain inside the caller's transaction; return its seq.

    ``locked_head``: the head (seq, hash) when the caller already read it under its lock
    in this transaction (it saves a round trip on a hot path); else it is read here.
    """
    prev_seq, prev_hash = locked_head or aq.head_for_append(conn, GENESIS)
    seq = int(prev_seq) + 1
    b = _jsonable(before)
    a = _jsonable(after)
    digest = chain_hash(
        prev_hash,
        canonical(seq, at, actor.name, action, outcome, model, version, target,
                  actor.request_id, b, a),
    )
    event = {
        "seq": seq, "at": at, "actor": actor.name, "action": action, "outcome": outcome,
        "model": model, "version": version, "target": target,
        "request_id": actor.request_id, "before": b, "after": a, "prev_hash": prev_hash,
        "hash": digest,
    }
    aq.write_event(conn, event)
    return seq


# =========================================================================== reading

# Why verification failed, at the first bad event.
EDITED = "edited"  # the event's content no longer hashes to its stored hash
DELETED = "deleted"  # events are missing (a gap in seq, or later events renumbered)
INSERTED = "inserted"  # a forged event sits in the chain (or past the recorded head)
REORDERED = "reordered"  # the event holds another event's content
TRUNCATED = "truncated"  # the chain ends before the head or a checkpoint says it should
HEAD_MISMATCH = "head_mismatch"  # the last event is not the recorded head
CHECKPOINT_MISMATCH = "checkpoint_mismatch"  # the hash at a checkpoint's seq differs

CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One event of the log, with the two hashes that chain it."""

    seq: int
    at: datetime
    actor: str
    action: str
    outcome: str
    model: str | None
    version: int | None
    target: str | None
    request_id: str | None
    before: Any
    after: Any
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        """The wire and export form; ``at`` is written exactly as the chain hashes it."""
        return {
            "seq": self.seq, "at": iso(self.at), "actor": self.actor, "action": self.action,
            "outcome": self.outcome, "model": self.model, "version": self.version,
            "target": self.target, "request_id": self.request_id, "before": self.before,
            "after": self.after, "prev_hash": self.prev_hash, "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A pinned point of the chain: the hash of event ``seq``, kept so truncation shows."""

    seq: int
    hash: str
    at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash,
                "at": iso(self.at) if self.at is not None else None}


@dataclass(frozen=True, slots=True)
class BadEvent:
    """The first event at which verification failed, and why."""

    seq: int
    reason: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "reason": self.reason, "message": self.message}


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of :func:`verify_chain`."""

    ok: bool
    events: int  # events whose hash was recomputed
    first_bad: BadEvent | None
    head_seq: int
    head_hash: str
    checkpoints_checked: int
    from_seq: int = 0  # verification started after this seq (0: from the genesis)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "events": self.events,
            "first_bad": self.first_bad.to_json() if self.first_bad else None,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "checkpoints_checked": self.checkpoints_checked, "from_seq": self.from_seq,
        }


def event_from_row(row: Any) -> AuditEvent:
    return AuditEvent(
        seq=int(row.seq), at=row.at, actor=row.actor, action=row.action, outcome=row.outcome,
        model=row.model, version=row.version, target=row.target, request_id=row.request_id,
        before=row.before, after=row.after, prev_hash=row.prev_hash, hash=row.hash,
    )


def event_hash(event: AuditEvent, *, seq: int | None = None, prev_hash: str | None = None) -> str:
    """The hash ``event`` should carry (optionally as if it sat at another seq/link)."""
    return chain_hash(
        event.prev_hash if prev_hash is None else prev_hash,
        canonical(event.seq if seq is None else seq, event.at, event.actor, event.action,
                  event.outcome, event.model, event.version, event.target, event.request_id,
                  event.before, event.after),
    )


@dataclass(slots=True)
class _Scan:
    """Where a scan of the chain stopped: at its end, or at the first suspicious row."""

    events: int
    expected_seq: int  # the seq the next row should carry
    prev_hash: str  # hash of the last good row (what the next row must link to)
    before_prev: str | None  # hash of the row before that
    bad: tuple[Any, ...] | None = None  # the raw row that failed
    kind: str = ""  # "link" (seq or prev_hash) | "hash" | "checkpoint"
    checkpoints_checked: int = 0


def _scan(rows: Iterator[tuple[Any, ...]], after_seq: int, prev_hash: str, before_prev: str | None,
          checkpoints: Sequence[tuple[int, frozenset[str]]]) -> _Scan:
    """The hot loop of verification: recompute every hash from the columns.

    Rows come as ``(seq, at_iso, actor, action, outcome, model, version, target,
    request_id, before_json, after_json, prev_hash, hash)``; the scan stops at the first
    row whose seq, link, hash or checkpoint is wrong. Names are bound locally because
    this runs once per event.
    """
    dumps, loads, sha, opt = orjson.dumps, orjson.loads, hashlib.sha256, _OPTS
    expected, prev, n = after_seq + 1, prev_hash, 0
    cps = iter(checkpoints)
    cp = next(cps, None)
    cp_seq = cp[0] if cp is not None else -1
    n_cp = 0
    for row in rows:
        seq, at, actor, action, outcome, model, version, target, rid, b, a, ph, h = row
        if seq != expected or ph != prev:
            return _Scan(n, expected, prev, before_prev, row, "link", n_cp)
        payload = dumps(
            [seq, at, actor, action, outcome, model, version, target, rid,
             None if b is None else loads(b), None if a is None else loads(a)],
            option=opt,
        )
        if sha(ph.encode() + payload).hexdigest() != h:
            return _Scan(n, expected, prev, before_prev, row, "hash", n_cp)
        if seq == cp_seq:
            assert cp is not None
            n_cp += 1
            if any(x != h for x in cp[1]):
                return _Scan(n, expected, prev, before_prev, row, "checkpoint", n_cp)
            cp = next(cps, None)
            cp_seq = cp[0] if cp is not None else -1
        before_prev, prev = prev, h
        expected += 1
        n += 1
    return _Scan(n, expected, prev, before_prev, checkpoints_checked=n_cp)


def _snapshot(db: Database) -> AbstractContextManager[Connection]:
    """A read transaction that sees one consistent state of the whole log."""

    @contextmanager
    def cm() -> Iterator[Connection]:
        with db.engine.connect() as conn:
            if db.is_postgres:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin() as tx:
                try:
                    yield conn
                finally:
                    tx.rollback()

    return cm()


def verify_chain(
    conn: Connection,
    *,
    checkpoints: Sequence[Checkpoint] = (),
    start: Checkpoint | None = None,
    chunk: int = CHUNK,
) -> VerifyResult:
    """Verify the chain inside ``conn``'s transaction (which should be a snapshot).

    Streams every event in seq order, recomputes its hash from the columns, and checks
    that seqs run without gaps from 1 (or from ``start``, a trusted checkpoint), that each
    event links to the previous one, that the last event is the recorded head, and that
    the chain agrees with every checkpoint given. Reports the first bad event.
    """
    head = aq.head(conn)
    head_seq, head_hash = head if head is not None else (0, GENESIS)
    after_seq, link = (start.seq, start.hash) if start is not None else (0, GENESIS)
    pinned: dict[int, set[str]] = {}
    for c in checkpoints:
        if c.seq > after_seq:
            pinned.setdefault(c.seq, set()).add(c.hash)
    cps = [(s, frozenset(hs)) for s, hs in sorted(pinned.items())]
    if start is not None and start.seq > 0:
        stored = aq.hash_at(conn, start.seq)
        if stored != start.hash:
            why = BadEvent(start.seq, CHECKPOINT_MISMATCH if stored else TRUNCATED,
                           f"event {start.seq} does not carry the checkpoint's hash"
                           if stored else f"event {start.seq} (a checkpoint) is missing")
            return VerifyResult(False, 0, why, head_seq, head_hash, 0, after_seq)

    scan = _scan_all(conn, after_seq, link, cps, chunk)
    bad: BadEvent | None = None
    if scan.bad is not None:
        bad = _diagnose(conn, scan, head_seq, after_seq)
    else:
        last_seq, last_hash = scan.expected_seq - 1, scan.prev_hash
        if head is None and last_seq > 0:
            bad = BadEvent(last_seq, HEAD_MISMATCH, "events exist but the chain head is missing")
        elif head_seq > last_seq:
            bad = BadEvent(last_seq + 1, TRUNCATED,
                           f"the head records event {head_seq} but the chain ends at {last_seq}")
        elif head_seq < last_seq:
            bad = BadEvent(head_seq + 1, INSERTED,
                           f"events {head_seq + 1}..{last_seq} lie beyond the recorded head "
                           f"({head_seq})")
        elif last_seq > after_seq and head_hash != last_hash:
            bad = BadEvent(last_seq, HEAD_MISMATCH,
                           f"event {last_seq} does not carry the hash recorded as the head")
        if bad is None:
            beyond = [c for c in cps if c[0] > last_seq]
            if beyond:
                bad = BadEvent(last_seq + 1, TRUNCATED,
                               f"a checkpoint pins event {beyond[0][0]} but the chain ends at "
                               f"{last_seq}: the tail was cut off")
    checked = scan.checkpoints_checked + (1 if start is not None and start.seq > 0 else 0)
    return VerifyResult(bad is None, scan.events, bad, head_seq, head_hash, checked, after_seq)


def _scan_all(conn: Connection, after_seq: int, link: str,
              cps: Sequence[tuple[int, frozenset[str]]], chunk: int) -> _Scan:
    """Scan to the end, confirming any hash mismatch with the exact, typed recomputation.

    The fast path rebuilds the canonical form from text columns; a row it cannot match
    (say, a timestamp written in another text format) is re-read through the table's
    types before it counts as bad, and the scan resumes after it.
    """
    events, checked, before_prev = 0, 0, None
    while True:
        rows = aq.iter_chain(conn, after_seq, chunk)
        try:
            scan = _scan(rows, after_seq, link, before_prev, cps)
        finally:
            rows.close()
        events += scan.events
        checked += scan.checkpoints_checked
        scan.events, scan.checkpoints_checked = events, checked
        if scan.kind != "hash" or scan.bad is None:
            return scan
        seq, digest = int(scan.bad[0]), str(scan.bad[12])
        full = aq.event_row(conn, seq)
        if full is None or event_hash(event_from_row(full)) != digest:
            return scan
        pinned = next((hs for s, hs in cps if s == seq), None)
        if pinned is not None:
            checked += 1
            if any(x != digest for x in pinned):
                scan.kind, scan.checkpoints_checked = "checkpoint", checked
                return scan
        events += 1
        after_seq, before_prev, link = seq, link, digest
        cps = [c for c in cps if c[0] > seq]


def _diagnose(conn: Connection, scan: _Scan, head_seq: int, after_seq: int) -> BadEvent:
    """Name what happened at the first row that failed (only runs on failure)."""
    assert scan.bad is not None
    row = scan.bad
    seq, ph, h = int(row[0]), row[11], row[12]
    expected = scan.expected_seq
    if scan.kind == "checkpoint":
        return BadEvent(seq, CHECKPOINT_MISMATCH,
                        f"event {seq} does not carry the hash pinned by the checkpoint: the chain "
                        "was rewritten up to here")
    if seq > expected:
        missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
        return BadEvent(expected, DELETED, f"event(s) {missing} are missing (gap in seq)")
    if seq > head_seq:
        return BadEvent(seq, INSERTED, f"event {seq} lies beyond the recorded head ({head_seq})")
    full = aq.event_row(conn, seq)
    assert full is not None
    event = event_from_row(full)
    self_ok = event_hash(event) == h
    linked = ph == scan.prev_hash
    prior = expected - 1
    if not linked and prior > after_seq and scan.before_prev is not None and ph == scan.before_prev:
        # This event links to the one *before* its predecessor: the predecessor was put in.
        return BadEvent(prior, INSERTED, f"event {prior} is forged: event {seq} links past it")
    if linked:  # then the content changed: edited, or a forged row took this place
        others = [s for s in aq.seqs_with_prev_hash(conn, ph) if s != seq]
        if others:
            return BadEvent(seq, INSERTED,
                            f"event {seq} is forged: event {others[0]} links to the same "
                            "predecessor")
        return BadEvent(seq, EDITED, f"event {seq} was edited: its content does not match its hash")
    if self_ok:
        # The row is intact but links to a hash its predecessor no longer carries.
        if prior <= after_seq:
            return BadEvent(seq, EDITED, f"event {seq} was rewritten: it does not link to the "
                            "start of the chain")
        return BadEvent(prior, EDITED,
                        f"event {prior} was edited and re-hashed: event {seq} links to a "
                        "different hash")
    # Neither the content nor the link fits: look for where this content came from.
    candidates = {s + 1 for s in aq.seqs_with_hash(conn, ph)}
    candidates |= {s - 1 for s in aq.seqs_with_prev_hash(conn, h)}
    candidates |= {seq - 1, seq + 1}
    origin = next((c for c in sorted(candidates)
                   if c > 0 and c != seq and event_hash(event, seq=c) == h), None)
    if origin is not None:
        home = [s for s in aq.seqs_with_prev_hash(conn, scan.prev_hash) if s != seq]
        if home:
            return BadEvent(seq, REORDERED,
                            f"event {seq} holds the content of event {origin}; the event that "
                            f"belongs here is at seq {home[0]}")
        return BadEvent(seq, DELETED,
                        f"event {seq} is missing: later events were renumbered (seq {seq} holds "
                        f"event {origin})")
    return BadEvent(seq, EDITED, f"event {seq} was edited: neither its content nor its link "
                    "match")


def verify_export(lines: Iterable[bytes], *, checkpoints: Sequence[Checkpoint] = ()) -> VerifyResult:
    """Verify an unfiltered JSON Lines export offline, without the database.

    The export must start at event 1. Without the head row only checkpoints reveal a cut
    tail, so pass the checkpoints kept outside the registry.
    """
    def rows() -> Iterator[tuple[Any, ...]]:
        dumps = orjson.dumps
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                e = orjson.loads(line)
                b, a = e["before"], e["after"]
                yield (e["seq"], e["at"], e["actor"], e["action"], e["outcome"], e["model"],
                       e["version"], e["target"], e["request_id"],
                       None if b is None else dumps(b), None if a is None else dumps(a),
                       e["prev_hash"], e["hash"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise Invalid(f"line {n} of the export is not an audit event",
                              details={"line": n}) from None

    pinned: dict[int, set[str]] = {}
    for c in checkpoints:
        pinned.setdefault(c.seq, set()).add(c.hash)
    cps = [(s, frozenset(hs)) for s, hs in sorted(pinned.items())]
    scan = _scan(rows(), 0, GENESIS, None, cps)
    last_seq = scan.expected_seq - 1
    bad: BadEvent | None = None
    if scan.bad is not None:
        seq = int(scan.bad[0])
        if scan.kind == "checkpoint":
            bad = BadEvent(seq, CHECKPOINT_MISMATCH,
                           f"event {seq} does not carry the hash pinned by the checkpoint")
        elif seq > scan.expected_seq:
            bad = BadEvent(scan.expected_seq, DELETED,
                           f"event(s) {scan.expected_seq}..{seq - 1} are missing (gap in seq)")
        elif scan.kind == "link" and scan.bad[11] != scan.prev_hash and last_seq > 0:
            bad = BadEvent(seq, EDITED, f"event {seq} does not link to event {last_seq}: one "
                           "of them was edited, inserted or moved")
        else:
            bad = BadEvent(seq, EDITED, f"event {seq} was edited: its content does not match "
                           "its hash")
    else:
        beyond = [c for c in cps if c[0] > last_seq]
        if beyond:
            bad = BadEvent(last_seq + 1, TRUNCATED,
                           f"a checkpoint pins event {beyond[0][0]} but the export ends at "
                           f"{last_seq}")
    return VerifyResult(bad is None, scan.events, bad, last_seq, scan.prev_hash,
                        scan.checkpoints_checked)


# =========================================================================== service

OUTCOMES = ("ok", "denied", "break_glass")
EXPORT_CHUNK = 5_000


def make_filter(
    *,
    model: str | None = None,
    version: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> EventFilter:
    """Validate the filters of a listing or an export (bad input names the field)."""
    if model is not None:
        model = normalize_name(validate_name(model))
    if version is not None:
        if model is None:
            raise Invalid("filtering by version needs a model too", details={"field": "version"})
        if version < 1:
            raise Invalid("version must be a positive integer", details={"field": "version"})
    if actor is not None and not (0 < len(actor) <= 128):
        raise Invalid("actor must be 1..128 characters", details={"field": "actor"})
    if action is not None and not (0 < len(action) <= 64 and action.isprintable()):
        raise Invalid("action must be 1..64 printable characters (e.g. version.register or "
                      "version.*)", details={"field": "action"})
    if outcome is not None and outcome not in OUTCOMES:
        raise Invalid(f"outcome must be one of {', '.join(OUTCOMES)}", details={"field": "outcome"})
    if since is not None and until is not None and until <= since:
        raise Invalid("until must be later than since", details={"field": "until"})
    return EventFilter(model=model, version=version, actor=actor, action=action, outcome=outcome,
                       since=since, until=until)


def _encode_cursor(seq: int, descending: bool) -> str:
    raw = orjson.dumps({"s": seq, "d": descending})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, descending: bool) -> int:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        seq, desc = data["s"], data["d"]
    except (ValueError, TypeError, KeyError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidCursor("cursor is not valid", details={"field": "cursor"}) from None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or desc is not descending:
        raise InvalidCursor("cursor does not belong to this listing", details={"field": "cursor"})
    return seq


def checkpoints_from_json(items: Sequence[Mapping[str, Any]]) -> list[Checkpoint]:
    """Checkpoints given back from an export (JSON objects with ``seq`` and ``hash``)."""
    out = []
    for i, item in enumerate(items):
        seq, digest = item.get("seq"), item.get("hash")
        if (not isinstance(seq, int) or isinstance(seq, bool) or seq < 1
                or not isinstance(digest, str) or len(digest) != 64):
            raise Invalid(f"checkpoint {i} needs a positive integer seq and a 64-character hash",
                          details={"field": f"checkpoints.{i}"})
        out.append(Checkpoint(seq=seq, hash=digest.lower()))
    return out


class AuditService:
    """Read, export and verify the audit log; pin its head with checkpoints.

    Writing events is not here: every service appends its own event with :func:`append`
    inside the transaction of its change.
    """

    def __init__(self, db: Database, authz: Authorizer, *, page_default: int = 50,
                 page_max: int = 500) -> None:
        self.db = db
        self.authz = authz
        self.page_default = page_default
        self.page_max = page_max

    def _require(self, actor: Actor, model: str | None = None) -> None:
        # A model filter lets an auditor scoped to that model read its events.
        self.authz.require(actor, Permission.AUDIT_READ, model=model)

    # ------------------------------------------------------------------ reading

    def list_events(
        self, actor: Actor, filter: EventFilter | None = None, *, page_size: int | None = None,
        cursor: str | None = None, descending: bool = True,
    ) -> Page[AuditEvent]:
        """One keyset page of events (newest first unless ``descending`` is False)."""
        f = filter or EventFilter()
        self._require(actor, f.model)
        size = self.page_default if page_size is None else page_size
        if not 1 <= size <= self.page_max:
            raise Invalid(f"page_size must be between 1 and {self.page_max}",
                          details={"field": "page_size"})
        after = _decode_cursor(cursor, descending) if cursor else None
        with self.db.read() as conn:
            rows = aq.list_events(conn, f, after_seq=after, descending=descending, limit=size + 1)
        items = [event_from_row(r) for r in rows[:size]]
        more = len(rows) > size
        return Page(items=items,
                    next_cursor=_encode_cursor(items[-1].seq, descending) if more else None)

    def export(self, actor: Actor, filter: EventFilter | None = None) -> Iterator[bytes]:
        """The matching events as JSON Lines, oldest first, in chunks of bytes.

        Permission is checked now, not when the first chunk is pulled. The export stops
        at the head as it was when it began, so it is a closed range even while events
        keep being appended; each chunk is its own short read.
        """
        f = filter or EventFilter()
        self._require(actor, f.model)
        with self.db.read() as conn:
            upto = aq.max_seq(conn)

        def chunks() -> Iterator[bytes]:
            after = 0
            dumps, opt = orjson.dumps, _OPTS
            while True:
                with self.db.read() as conn:
                    rows = aq.list_events(conn, f, after_seq=after, descending=False,
                                          limit=EXPORT_CHUNK, upto_seq=upto)
                if not rows:
                    return
                yield b"".join(dumps(event_from_row(r).to_json(), option=opt) + b"\n"
                               for r in rows)
                if len(rows) < EXPORT_CHUNK:
                    return
                after = int(rows[-1].seq)

        return chunks()

    # ------------------------------------------------------------------ verification

    def verify(
        self, actor: Actor, *, checkpoints: Sequence[Checkpoint] = (),
        use_stored_checkpoints: bool = True,
    ) -> VerifyResult:
        """Verify the whole chain against its head, the stored checkpoints and ``checkpoints``.

        Checkpoints kept outside the database (see :meth:`export_checkpoints`) are what
        detect a tail cut off together with a rewound head.
        """
        self._require(actor)
        with _snapshot(self.db) as conn:
            pins = list(checkpoints)
            if use_stored_checkpoints:
                pins += [Checkpoint(int(r.seq), r.hash, r.at) for r in aq.list_checkpoints(conn)]
            return verify_chain(conn, checkpoints=pins)

    def checkpoint(self, actor: Actor) -> Checkpoint:
        """Pin the current head as a checkpoint, after verifying the chain up to it.

        Verification starts from the latest stored checkpoint (whose event must still carry
        its hash), so each checkpoint costs only the events appended since the previous
        one; :meth:`verify` checks the whole chain. A chain that does not verify is never
        pinned (409). Checkpoints are not audit events: writing one would move the head it
        records, and it changes nothing in the registry.
        """
        self._require(actor)
        with _snapshot(self.db) as conn:
            head = aq.head(conn)
            if head is None or head[0] == 0:
                raise Conflict("the audit log is empty: there is nothing to checkpoint")
            latest = aq.latest_checkpoint(conn)
            start = Checkpoint(int(latest.seq), latest.hash) if latest is not None else None
            result = verify_chain(conn, start=start)
        if not result.ok:
            assert result.first_bad is not None
            raise Conflict(
                f"the audit chain does not verify ({result.first_bad.reason} at event "
                f"{result.first_bad.seq}); no checkpoint was written",
                details={"first_bad": result.first_bad.to_json()},
            )
        if latest is not None and (int(latest.seq), latest.hash) == head:
            return Checkpoint(int(latest.seq), latest.hash, latest.at)  # nothing new to pin
        at = utcnow()
        try:
            with self.db.write() as conn:
                existing = aq.checkpoint_at(conn, head[0])
                if existing is None:
                    aq.insert_checkpoint(conn, head[0], head[1], at)
                    return Checkpoint(head[0], head[1], at)
        except IntegrityError:  # a concurrent checkpoint of the same head won
            pass
        with self.db.read() as conn:
            row = aq.checkpoint_at(conn, head[0])
        assert row is not None
        return Checkpoint(int(row.seq), row.hash, row.at)

    def checkpoints(self, actor: Actor) -> list[Checkpoint]:
        """Every stored checkpoint, oldest first."""
        self._require(actor)
        with self.db.read() as conn:
            return [Checkpoint(int(r.seq), r.hash, r.at) for r in aq.list_checkpoints(conn)]

    def export_checkpoints(self, actor: Actor) -> bytes:
        """The checkpoints as JSON Lines, to be stored somewhere the database's admins can't edit."""
        return b"".join(orjson.dumps(c.to_json()) + b"\n" for c in self.checkpoints(actor))
