"""Prepared statements (store/sql/prepared.py) write exactly what Connection.execute writes,
fail the way it fails, and refuse the statements they cannot run faithfully."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import exc

from regista.domain.models import Actor
from regista.service.container import Services
from regista.store.sql.prepared import Prepared
from regista.store.sql.tables import audit_head, blobs, models, version_tags, versions

_INSERT_VERSION = Prepared(sa.insert(versions).returning(versions.c.id))


def _raw_row(conn: sa.Connection, table: sa.Table, where: Any) -> tuple[Any, ...]:
    """The row as the driver returns it, with no SQLAlchemy type processing."""
    cols = ", ".join(c.name for c in table.columns)
    sql = sa.text(f"SELECT {cols} FROM {table.name} WHERE {where}")  # test-only constants
    row = conn.execute(sql.columns()).first()
    assert row is not None
    return tuple(row)


def _version_values(model_id: int, number: int) -> dict[str, Any]:
    at = datetime(2026, 11, 26, 20, 30, 1, 123456, tzinfo=timezone(timedelta(hours=2)))
    return {
        "model_id": model_id, "number": number, "digest": "ab" * 32, "description": "d é",
        "stage": "registered", "stage_changed_at": at,
        "provenance": {"metrics": {"auc": 0.91, "n": 3}, "nested": {"a": [1, None, "x"]},
                       "unicode": "snow ☃"},
        "framework": "sklearn", "parent_version_id": None, "file_count": 1,
        "total_size": 2**40, "idempotency_key": None, "request_hash": None,
        "created_at": at, "created_by": "local", "updated_at": at,
    }


def test_rows_written_are_identical_to_connection_execute(services: Services,
                                                          local_actor: Actor) -> None:
    model = services.registry.create_model(local_actor, "prepared")
    with services.db.write() as conn:
        vid_sa = conn.execute(sa.insert(versions).returning(versions.c.id),
                              _version_values(model.id, 1)).scalar_one()
        vid_p = _INSERT_VERSION.scalar(conn, _version_values(model.id, 2))
    assert vid_p != vid_sa
    with services.db.read() as conn:
        a = _raw_row(conn, versions, f"id = {int(vid_sa)}")
        b = _raw_row(conn, versions, f"id = {int(vid_p)}")
        typed = conn.execute(sa.select(versions).where(versions.c.id == vid_p)).one()
    differs = {c.name for c, x, y in zip(versions.columns, a, b, strict=True) if x != y}
    assert differs == {"id", "number"}
    assert typed.created_at == datetime(2026, 11, 26, 18, 30, 1, 123456, tzinfo=UTC)
    assert typed.provenance["unicode"] == "snow ☃"


def test_executemany_one_and_many_rows(services: Services, local_actor: Actor) -> None:
    model = services.registry.create_model(local_actor, "prepared-many")
    ins = Prepared(sa.insert(version_tags))
    with services.db.write() as conn:
        vid = _INSERT_VERSION.scalar(conn, _version_values(model.id, 1))
        ins.executemany(conn, [{"version_id": vid, "key": "one", "value": "1"}])
        ins.executemany(conn, [{"version_id": vid, "key": f"k{i}", "value": str(i)}
                               for i in range(5)])
        ins.executemany(conn, [])
    with services.db.read() as conn:
        rows = conn.execute(sa.select(version_tags.c.key).where(version_tags.c.version_id == vid)
                            .order_by(version_tags.c.key)).scalars().all()
    assert rows == ["k0", "k1", "k2", "k3", "k4", "one"]


def test_a_bind_parameters_own_value_is_used_and_required_ones_are_checked(
        services: Services) -> None:
    head = Prepared(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1))
    move = Prepared(sa.update(audit_head).where(audit_head.c.id == 1)
                    .values(seq=sa.bindparam("seq"), hash=sa.bindparam("hash")))
    with services.db.write() as conn:
        conn.execute(sa.insert(audit_head).values(id=1, seq=0, hash="genesis"))
        move.execute(conn, {"seq": 7, "hash": "h7"}).close()
        assert head.first(conn) == (7, "h7")
        with pytest.raises(exc.ArgumentError, match="'hash'"):
            move.execute(conn, {"seq": 8})


def test_driver_errors_are_wrapped_like_sqlalchemy_and_roll_back(services: Services) -> None:
    at = datetime.now(UTC)
    ins = Prepared(sa.insert(blobs))
    row = {"digest": "cd" * 32, "size": 1, "created_at": at, "verified_at": at}
    with services.db.write() as conn:
        ins.executemany(conn, [row])
    with pytest.raises(exc.IntegrityError), services.db.write() as conn:
        ins.execute(conn, {**row, "digest": "ef" * 32}).close()
        ins.execute(conn, row)  # the same primary key again
    with services.db.read() as conn:  # the failed transaction left nothing behind
        n = conn.execute(sa.select(sa.func.count()).select_from(blobs)).scalar_one()
    assert n == 1


def test_cursor_events_still_see_the_statements(services: Services) -> None:
    seen: list[tuple[str, bool]] = []

    def after(_c: Any, _cur: Any, statement: str, _p: Any, _ctx: Any, many: bool) -> None:
        seen.append((statement.split()[0], many))

    at = datetime.now(UTC)
    ins = Prepared(sa.insert(blobs))
    sa.event.listen(services.db.engine, "after_cursor_execute", after)
    try:
        with services.db.write() as conn:
            ins.executemany(conn, [{"digest": f"{i:064x}", "size": i, "created_at": at,
                                    "verified_at": None} for i in range(3)])
    finally:
        sa.event.remove(services.db.engine, "after_cursor_execute", after)
    assert ("INSERT", True) in seen


@pytest.mark.parametrize("statement, complaint", [
    # models.archived and .description have Python-side defaults
    (sa.insert(models), "Python-side defaults"),
    (sa.select(blobs.c.digest).where(blobs.c.digest.in_(sa.bindparam("ds", expanding=True))),
     "expand"),
    # UTCDateTime turns what the driver returns into an aware UTC datetime
    (sa.select(blobs.c.created_at), "result processing"),
])
def test_statements_it_cannot_run_faithfully_are_refused(services: Services, statement: Any,
                                                         complaint: str) -> None:
    params: dict[str, Any] = {}
    if statement.is_insert:
        params = {"name": "x", "normalized_name": "x", "created_at": datetime.now(UTC),
                  "created_by": "t", "updated_at": datetime.now(UTC)}
    elif "ds" in str(statement):
        params = {"ds": ["a"]}
    with pytest.raises(exc.ArgumentError, match=complaint), services.db.write() as conn:
        Prepared(statement).execute(conn, params)
