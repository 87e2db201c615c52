"""Direct database surgery on the audit log, as an attacker with write access would do it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from regista.service import audit
from regista.service.container import Services
from regista.store.sql.tables import audit_events, audit_head

COLUMNS = ("at", "actor", "action", "outcome", "model", "version", "target", "request_id",
           "before", "after", "prev_hash", "hash")


def make_events(services: Services, actor: Any, n: int = 8) -> None:
    """``n`` audited changes (seq 1..n): model creations."""
    for i in range(n):
        services.registry.create_model(actor, f"m{i}", description=f"model {i}",
                                       tags={"i": str(i)})


def rows(services: Services) -> list[Any]:
    with services.db.engine.connect() as conn:
        return list(conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)))


def content(row: Any) -> dict[str, Any]:
    return {c: getattr(row, c) for c in COLUMNS}


def execute(services: Services, *statements: Any) -> None:
    with services.db.engine.begin() as conn:
        for st in statements:
            conn.execute(st)


def set_head(services: Services, seq: int, digest: str) -> None:
    execute(services, sa.update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=digest))


def shift_seqs(services: Services, from_seq: int, by: int) -> None:
    """Renumber every event with seq >= from_seq by ``by`` (through negative seqs, so the
    primary key never collides mid-update on PostgreSQL)."""
    c = audit_events.c
    execute(
        services,
        sa.update(audit_events).where(c.seq >= from_seq).values(seq=-(c.seq + by)),
        sa.update(audit_events).where(c.seq < 0).values(seq=-c.seq),
    )


def rehash_from(services: Services, seq: int) -> None:
    """Recompute every hash from ``seq`` on, as a careful forger would, and move the head."""
    all_rows = rows(services)
    prev = audit.GENESIS
    with services.db.engine.begin() as conn:
        for r in all_rows:
            if r.seq >= seq:
                event = audit.event_from_row(r)
                digest = audit.event_hash(event, prev_hash=prev)
                conn.execute(sa.update(audit_events).where(audit_events.c.seq == r.seq)
                             .values(prev_hash=prev, hash=digest))
                prev = digest
            else:
                prev = r.hash
        conn.execute(sa.update(audit_head).where(audit_head.c.id == 1)
                     .values(seq=all_rows[-1].seq, hash=prev))
