"""SQLite group commit: many write units share one transaction and one fsync, and none
is acknowledged before the commit that holds it, nor survives a commit that fails."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, event, select, text
from sqlalchemy.exc import IntegrityError

from regista.errors import Unavailable
from regista.store.sql.engine import Database

meta = MetaData()
rows = Table("rows", meta, Column("id", Integer, primary_key=True), Column("who", String))


@pytest.fixture
def db(tmp_path: Path) -> Any:
    database = Database(f"sqlite:///{tmp_path / 'g.db'}")
    meta.create_all(database.engine)
    commits: list[int] = []
    event.listen(database.engine, "commit", lambda conn: commits.append(1))
    database.commits = commits  # type: ignore[attr-defined]
    yield database
    database.dispose()


def _visible(db: Database, who: str) -> bool:
    with db.read() as conn:
        return conn.execute(select(rows.c.id).where(rows.c.who == who)).first() is not None


def _run_threads(n: int, work: Any) -> list[BaseException | None]:
    results: list[BaseException | None] = [None] * n
    start = threading.Barrier(n)

    def run(i: int) -> None:
        start.wait()
        try:
            work(i)
        except BaseException as exc:  # recorded for the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    return results


def test_one_writer_commits_each_unit_alone(db: Database) -> None:
    for i in range(5):
        with db.write() as conn:
            conn.execute(rows.insert().values(id=i, who=f"w{i}"))
        assert _visible(db, f"w{i}")  # acknowledged means committed
    assert len(db.commits) == 5  # type: ignore[attr-defined]


def test_concurrent_units_share_commits_and_are_durable_when_acknowledged(db: Database) -> None:
    acked_but_invisible: list[int] = []

    def work(i: int) -> None:
        with db.write() as conn:
            conn.execute(rows.insert().values(id=i, who=f"t{i}"))
            time.sleep(0.002)  # hold the lock so that others queue behind it
        if not _visible(db, f"t{i}"):
            acked_but_invisible.append(i)

    n = 32
    assert _run_threads(n, work) == [None] * n
    assert acked_but_invisible == []
    with db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM rows")).scalar() == n
    assert len(db.commits) < n  # type: ignore[attr-defined]  # batched: fewer commits than units


def test_a_failing_unit_undoes_only_its_own_writes(db: Database) -> None:
    def work(i: int) -> None:
        with db.write() as conn:
            conn.execute(rows.insert().values(id=1000 + i, who=f"f{i}"))
            time.sleep(0.002)
            if i % 4 == 0:
                conn.execute(rows.insert().values(id=1000 + i, who="dup"))  # IntegrityError

    results = _run_threads(16, work)
    for i, r in enumerate(results):
        if i % 4 == 0:
            assert isinstance(r, IntegrityError)
            assert not _visible(db, f"f{i}")
        else:
            assert r is None
            assert _visible(db, f"f{i}")


def test_a_failed_commit_fails_every_unit_of_its_batch(db: Database) -> None:
    fail = threading.Event()

    def on_commit(conn: Any) -> None:
        if fail.is_set():
            raise RuntimeError("disk full")

    event.listen(db.engine, "commit", on_commit)
    fail.set()

    def work(i: int) -> None:
        with db.write() as conn:
            conn.execute(rows.insert().values(id=2000 + i, who=f"c{i}"))
            time.sleep(0.002)

    results = _run_threads(8, work)
    fail.clear()
    assert all(r is not None for r in results)
    assert all(isinstance(r, RuntimeError | Unavailable) for r in results)
    assert any(isinstance(r, Unavailable) for r in results)  # followers learn it too
    for i in range(8):
        assert not _visible(db, f"c{i}")
    # The writer recovers: the next unit commits normally.
    with db.write() as conn:
        conn.execute(rows.insert().values(id=3000, who="after"))
    assert _visible(db, "after")


def test_checkpoints_run_off_the_commit_path(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    database = Database(f"sqlite:///{path}")
    meta.create_all(database.engine)
    with database.read() as conn:
        # Commits never checkpoint unless the WAL reaches the 64 MiB safety net...
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 16_384
    before = path.stat().st_size
    for i in range(200):
        with database.write() as conn:
            conn.execute(rows.insert().values(id=10_000 + i, who="x" * 1000))
    # ...so the pages reach the database file only through the background checkpointer.
    deadline = time.monotonic() + 10
    while path.stat().st_size <= before + 100 * 1024 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.stat().st_size > before + 100 * 1024
    thread = database._checkpointer._thread  # type: ignore[union-attr]
    assert thread is not None and thread.is_alive()
    database.dispose()
    assert not thread.is_alive()
    # An engine may be used again after dispose(): so may its checkpointer.
    with database.write() as conn:
        conn.execute(rows.insert().values(id=20_000, who="again"))
    again = database._checkpointer._thread  # type: ignore[union-attr]
    assert again is not None and again is not thread and again.is_alive()
    database.dispose()
    assert not again.is_alive()


def _checked_out(db: Database) -> int:
    return int(db.engine.pool.checkedout())  # type: ignore[attr-defined]


def test_the_writer_connection_is_kept_between_batches_and_replaced_after_a_failure(
        db: Database) -> None:
    seen: list[Any] = []
    for i in range(3):
        with db.write() as conn:
            seen.append(conn)
            conn.execute(rows.insert().values(id=4000 + i, who=f"k{i}"))
    assert seen[0] is seen[1] is seen[2]  # one connection, no pool round trip per write
    assert _checked_out(db) == 1

    fail = threading.Event()
    fail.set()

    def on_commit(conn: Any) -> None:
        if fail.is_set():
            raise RuntimeError("disk full")

    event.listen(db.engine, "commit", on_commit)
    with pytest.raises(RuntimeError), db.write() as conn:
        conn.execute(rows.insert().values(id=4100, who="lost"))
    fail.clear()
    assert seen[0].closed  # a failed commit's connection went back to the pool (reset)...
    with db.write() as conn:  # ...and the next batch checks one out afresh
        assert conn is not seen[0]
        conn.execute(rows.insert().values(id=4101, who="kept"))
    assert not _visible(db, "lost") and _visible(db, "kept")

    with pytest.raises(IntegrityError), db.write() as conn:  # a failing unit alone
        conn.execute(rows.insert().values(id=4101, who="duplicate"))
    with db.write() as conn:
        conn.execute(rows.insert().values(id=4102, who="after"))
    assert _visible(db, "after")

    db.dispose()  # gives the kept connection back
    assert _checked_out(db) == 0
    with db.write() as conn:  # and the next write takes a new one
        conn.execute(rows.insert().values(id=4103, who="again"))
    assert _visible(db, "again")


def test_the_wal_rewinds_under_steady_writes(tmp_path: Path, monkeypatch: Any) -> None:
    """A checkpoint copies pages, but only a writer that begins with every frame copied
    rewinds the WAL; under steady writes that needs the checkpointer's locked second
    pass, or the WAL grows with every commit (and every fsync journals its new size)."""
    from regista.store.sql.engine import _Checkpointer

    monkeypatch.setattr(_Checkpointer, "DELAY_SECONDS", 0.01)
    path = tmp_path / "w.db"
    database = Database(f"sqlite:///{path}")
    meta.create_all(database.engine)
    wal = Path(f"{path}-wal")
    try:
        commits = 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline or commits < 300:
            with database.write() as conn:
                conn.execute(rows.insert().values(id=50_000 + commits, who="w" * 3000))
            commits += 1
        # Each commit appends at least one 4 KiB page; the WAL's size is its high-water
        # mark, so without rewinds it would be at least this:
        appended = commits * 4096
        assert wal.stat().st_size < appended / 8, (wal.stat().st_size, commits)
    finally:
        database.dispose()
