"""Tampering with audit rows directly in the database is detected and the event named.

Each test plays an attacker with write access to the database (edit, delete, insert,
reorder, truncate), then runs verification, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

from regista.service import audit
from regista.service.audit import Checkpoint
from regista.store.sql.tables import audit_checkpoints, audit_events
from tests.audit.helpers import (
    content,
    execute,
    make_events,
    rehash_from,
    rows,
    set_head,
    shift_seqs,
)

N = 8
E = audit_events.c


def verify(services, actor, **kw):  # type: ignore[no-untyped-def]
    return services.audit.verify(actor, **kw)


def assert_bad(result, seq: int, reason: str) -> None:  # type: ignore[no-untyped-def]
    assert not result.ok
    assert result.first_bad is not None, result
    assert (result.first_bad.seq, result.first_bad.reason) == (seq, reason), result.first_bad


def test_untouched_log_verifies(services, local_actor):
    make_events(services, local_actor, N)
    services.registry.update_model(local_actor, "m1", description="changed", tags={"x": "é✓"})
    result = verify(services, local_actor)
    assert result.ok, result.first_bad
    assert result.events == N + 1
    assert (result.head_seq, result.first_bad) == (N + 1, None)


def test_empty_log_verifies(services, local_actor):
    result = verify(services, local_actor)
    assert result.ok and result.events == 0 and result.head_seq == 0


def test_edited_field(services, local_actor):
    make_events(services, local_actor, N)
    execute(services, sa.update(audit_events).where(E.seq == 3).values(actor="mallory"))
    assert_bad(verify(services, local_actor), 3, audit.EDITED)


def test_edited_json_value(services, local_actor):
    make_events(services, local_actor, N)
    row = rows(services)[4]
    after = dict(row.after, description="nothing to see")
    execute(services, sa.update(audit_events).where(E.seq == 5).values(after=after))
    assert_bad(verify(services, local_actor), 5, audit.EDITED)


def test_edited_prev_hash_column_only(services, local_actor):
    make_events(services, local_actor, N)
    execute(services, sa.update(audit_events).where(E.seq == 4).values(prev_hash="f" * 64))
    result = verify(services, local_actor)
    assert not result.ok and result.first_bad is not None and result.first_bad.seq == 4


def test_edited_and_rehashed_event_is_named(services, local_actor):
    # A careful forger edits event 3 and recomputes its hash: event 4 no longer links to it.
    make_events(services, local_actor, N)
    execute(services, sa.update(audit_events).where(E.seq == 3).values(actor="mallory"))
    r3 = rows(services)[2]
    digest = audit.event_hash(audit.event_from_row(r3))
    execute(services, sa.update(audit_events).where(E.seq == 3).values(hash=digest))
    assert_bad(verify(services, local_actor), 3, audit.EDITED)


def test_deleted_row(services, local_actor):
    make_events(services, local_actor, N)
    execute(services, sa.delete(audit_events).where(E.seq == 3))
    result = verify(services, local_actor)
    assert_bad(result, 3, audit.DELETED)
    assert "gap" in result.first_bad.message  # type: ignore[union-attr]


def test_deleted_first_row(services, local_actor):
    make_events(services, local_actor, N)
    execute(services, sa.delete(audit_events).where(E.seq == 1))
    assert_bad(verify(services, local_actor), 1, audit.DELETED)


def test_deleted_row_and_renumbered(services, local_actor):
    make_events(services, local_actor, N)
    execute(services, sa.delete(audit_events).where(E.seq == 3))
    shift_seqs(services, 4, -1)
    assert_bad(verify(services, local_actor), 3, audit.DELETED)


def test_inserted_forged_row_mid_chain(services, local_actor):
    make_events(services, local_actor, N)
    before = rows(services)
    shift_seqs(services, 4, +1)
    forged = content(before[3]) | {"actor": "mallory", "prev_hash": before[2].hash, "hash": "0" * 64}
    execute(services, sa.insert(audit_events).values(seq=4, **forged))
    assert_bad(verify(services, local_actor), 4, audit.INSERTED)


def test_inserted_forged_row_with_valid_hash(services, local_actor):
    # The forger computes a correct hash for the inserted event: the next one links past it.
    make_events(services, local_actor, N)
    before = rows(services)
    shift_seqs(services, 4, +1)
    forged = audit.AuditEvent(**(content(before[3]) | {"seq": 4, "actor": "mallory",
                                                        "prev_hash": before[2].hash}))
    values = content(before[3]) | {"actor": "mallory", "prev_hash": before[2].hash,
                                   "hash": audit.event_hash(forged)}
    execute(services, sa.insert(audit_events).values(seq=4, **values))
    assert_bad(verify(services, local_actor), 4, audit.INSERTED)


def test_inserted_row_past_the_head(services, local_actor):
    make_events(services, local_actor, N)
    last = rows(services)[-1]
    values = content(last) | {"actor": "mallory", "prev_hash": last.hash}
    event = audit.AuditEvent(**(values | {"seq": N + 1, "hash": ""}))
    execute(services, sa.insert(audit_events).values(seq=N + 1, **(values | {
        "hash": audit.event_hash(event)})))
    assert_bad(verify(services, local_actor), N + 1, audit.INSERTED)


def test_reordered_rows(services, local_actor):
    make_events(services, local_actor, N)
    r = rows(services)
    execute(
        services,
        sa.update(audit_events).where(E.seq == 2).values(**content(r[4])),
        sa.update(audit_events).where(E.seq == 5).values(**content(r[1])),
    )
    result = verify(services, local_actor)
    assert_bad(result, 2, audit.REORDERED)
    assert "event 5" in result.first_bad.message  # type: ignore[union-attr]


def test_reordered_adjacent_rows(services, local_actor):
    make_events(services, local_actor, N)
    r = rows(services)
    execute(
        services,
        sa.update(audit_events).where(E.seq == 3).values(**content(r[3])),
        sa.update(audit_events).where(E.seq == 4).values(**content(r[2])),
    )
    assert_bad(verify(services, local_actor), 3, audit.REORDERED)


def test_truncated_tail_is_caught_by_the_head(services, local_actor):
    make_events(services, local_actor, N)
    execute(services, sa.delete(audit_events).where(E.seq > N - 2))
    assert_bad(verify(services, local_actor), N - 1, audit.TRUNCATED)


def test_truncated_tail_with_rewound_head_needs_checkpoints(services, local_actor):
    make_events(services, local_actor, N)
    exported = services.audit.checkpoint(local_actor)
    assert exported.seq == N
    # The attacker cuts the tail, rewinds the head and removes the stored checkpoints.
    keep = rows(services)[N - 3]
    execute(services, sa.delete(audit_events).where(E.seq > N - 2), sa.delete(audit_checkpoints))
    set_head(services, keep.seq, keep.hash)
    # Without outside knowledge the shorter chain is self-consistent...
    assert verify(services, local_actor).ok
    # ...but the checkpoint kept outside the database pins event N.
    result = verify(services, local_actor, checkpoints=[Checkpoint(exported.seq, exported.hash)])
    assert_bad(result, N - 1, audit.TRUNCATED)


def test_stored_checkpoints_catch_a_rewound_head(services, local_actor):
    make_events(services, local_actor, N)
    services.audit.checkpoint(local_actor)
    keep = rows(services)[N - 2]
    execute(services, sa.delete(audit_events).where(E.seq == N))
    set_head(services, keep.seq, keep.hash)
    assert_bad(verify(services, local_actor), N, audit.TRUNCATED)
    assert verify(services, local_actor, use_stored_checkpoints=False).ok


def test_head_mismatch(services, local_actor):
    make_events(services, local_actor, N)
    set_head(services, N, "a" * 64)
    assert_bad(verify(services, local_actor), N, audit.HEAD_MISMATCH)


def test_rewritten_history_differs_from_a_checkpoint(services, local_actor):
    make_events(services, local_actor, N)
    pinned = rows(services)[4]
    # The forger edits event 2 and re-hashes everything after it, head included.
    execute(services, sa.update(audit_events).where(E.seq == 2).values(actor="mallory"))
    rehash_from(services, 2)
    assert verify(services, local_actor, use_stored_checkpoints=False).ok
    result = verify(services, local_actor, checkpoints=[Checkpoint(pinned.seq, pinned.hash)])
    assert_bad(result, 5, audit.CHECKPOINT_MISMATCH)


def test_checkpoint_refuses_a_tampered_chain(services, local_actor):
    from regista.errors import Conflict

    make_events(services, local_actor, N)
    execute(services, sa.update(audit_events).where(E.seq == 6).values(action="model.delete"))
    try:
        services.audit.checkpoint(local_actor)
    except Conflict as exc:
        assert exc.details["first_bad"]["seq"] == 6
    else:
        raise AssertionError("checkpoint accepted a tampered chain")


def test_checkpoints_verify_incrementally(services, local_actor):
    make_events(services, local_actor, 4)
    first = services.audit.checkpoint(local_actor)
    assert services.audit.checkpoint(local_actor) == first  # nothing new: the same one
    services.registry.create_model(local_actor, "later")
    second = services.audit.checkpoint(local_actor)
    assert (first.seq, second.seq) == (4, 5)
    # An edit before the last checkpoint is not re-read by the next checkpoint, but full
    # verification finds it, and the stored checkpoint at 5 is broken by it too.
    execute(services, sa.update(audit_events).where(E.seq == 5).values(actor="mallory"))
    result = verify(services, local_actor)
    assert_bad(result, 5, audit.EDITED)


def test_fast_path_falls_back_to_exact_hashing(services, local_actor):
    """A value stored in a text form the fast path does not reproduce is re-checked exactly
    (and is not tampering: it reads back as the same instant)."""
    make_events(services, local_actor, 3)
    if services.db.is_sqlite:
        execute(services, sa.text("UPDATE audit_events SET at = at || '+00:00' WHERE seq = 2"))
    else:
        execute(services, sa.text("UPDATE audit_events SET after = after::text::jsonb WHERE seq = 2"))
    assert rows(services)[1].at == rows(services)[1].at.astimezone()  # still an instant
    result = verify(services, local_actor)
    assert result.ok, result.first_bad
    assert result.events == 3
