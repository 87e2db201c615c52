"""Engines and transactions for SQLite (embedded) and PostgreSQL (at scale).

Writers use :meth:`Database.write`: on SQLite that is ``BEGIN IMMEDIATE`` behind one
in-process lock (threads queue instead of spinning in SQLite's busy handler), with
``synchronous=FULL`` so every acknowledged commit is fsynced, and *group commit* (see
:class:`_GroupCommit`); on PostgreSQL it is an ordinary READ COMMITTED transaction whose
row locks coordinate many server processes (PostgreSQL groups its own WAL flushes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry

from regista.errors import Unavailable

_WRITE = "regista_write"
log = logging.getLogger("regista.store")


def _json_dumps(value: Any) -> str:
    # orjson: several times faster than the stdlib for the JSON columns on hot paths.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class Database:
    """A metadata database: an engine plus the transaction discipline Regista uses."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self._group: _GroupCommit | None = None
        self._checkpointer: _Checkpointer | None = None
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                url,
                echo=echo,
                json_serializer=_json_dumps,
                json_deserializer=orjson.loads,
                pool_size=pool_size,
                max_overflow=max(4, pool_size),
                connect_args={"check_same_thread": False, "timeout": 30},
            )
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
            self._checkpointer = _Checkpointer(self.engine)
            self._group = _GroupCommit(self.engine, self._checkpointer.committed)
            self._checkpointer.copied = self._group.rewind_soon
        else:
            self.engine = create_engine(
                url,
                echo=echo,
                json_serializer=_json_dumps,
                json_deserializer=orjson.loads,
                pool_size=pool_size,
                max_overflow=pool_size * 2,
                pool_pre_ping=True,
                # No server-side prepared statements: after five runs PostgreSQL may switch
                # to a generic plan that ignores the values and is 4-10x slower for
                # selective filters (measured on tag and metric searches).
                connect_args={"prepare_threshold": None},
            )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: committed on success, rolled back on any exception."""
        if self._group is not None:
            with self._group.unit() as conn:
                yield conn
        else:
            with self.engine.begin() as conn:
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only snapshot (one transaction, always rolled back)."""
        with self.engine.connect() as conn, conn.begin() as tx:
            try:
                yield conn
            finally:
                tx.rollback()

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._group is not None:
            self._group.close()
        self.engine.dispose()


@dataclass(eq=False)
class _Batch:
    """One SQLite transaction shared by the write units that joined it."""

    conn: Connection
    members: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class _GroupCommit:
    """Group commit for SQLite: many write units, one transaction, one fsync.

    Writers take turns on one lock. A unit runs inside a SAVEPOINT of the open batch
    transaction (the first unit needs none: it is alone), so a failing unit undoes only
    its own writes. When it is done, a unit that sees other writers queued for the lock
    leaves the transaction open for them and waits; the last unit of the batch (no one
    queued, or the batch is full) commits — one fsync for all — and wakes the others.
    No unit returns before the commit that holds its writes is durable, and if that
    commit fails every unit of the batch fails with it, so nothing half-written is ever
    acknowledged. Under one writer this is exactly one transaction per unit; under many
    it turns N fsyncs (and N waits for the GIL after each) into one.

    Units of one batch see each other's writes as they would in a serial order; that is
    the order they took the lock in, and the order the batch commits them in.
    """

    MAX_BATCH = 64

    def __init__(self, engine: Engine, on_commit: Callable[[], None] = lambda: None) -> None:
        self._engine = engine
        self._on_commit = on_commit
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queued = 0
        self._batch: _Batch | None = None
        self._idle: Connection | None = None  # the writer connection between batches
        self._rewind = False  # set by the checkpointer: see rewind_soon()

    @contextmanager
    def unit(self) -> Iterator[Connection]:
        with self._queue_lock:
            self._queued += 1
        self._lock.acquire()
        batch: _Batch | None = None
        failure: BaseException | None = None
        leader = False
        try:
            with self._queue_lock:
                self._queued -= 1
            batch = self._batch
            if batch is None:
                batch = self._batch = self._open()
            savepoint = batch.conn.begin_nested() if batch.members else None
            try:
                yield batch.conn
            except BaseException as exc:
                failure = exc
                if savepoint is not None:
                    savepoint.rollback()
            else:
                if savepoint is not None:
                    savepoint.commit()
                batch.members += 1
            if batch.members == 0:  # the first unit failed: nobody else is in it
                self._batch = None
                self._end(batch, commit=False)
            else:
                with self._queue_lock:
                    others = self._queued
                if not others or batch.members >= self.MAX_BATCH:
                    leader = True
                    self._batch = None
                    self._end(batch, commit=True)
                    if self._rewind:
                        self._copy_remainder()
                    try:
                        self._on_commit()
                    except Exception:  # the batch is committed: never report it failed
                        log.warning("after-commit hook failed", exc_info=True)
        except BaseException as exc:
            # The bookkeeping itself failed (a broken connection): fail the whole batch.
            if batch is not None and not batch.done.is_set():
                self._batch = None
                batch.error = exc
                self._end(batch, commit=False)
            raise
        finally:
            self._lock.release()
        if failure is not None:
            raise failure
        if not leader:
            batch.done.wait()
        if batch.error is not None:
            if leader:
                raise batch.error
            raise Unavailable(
                "the write could not be committed; nothing of it was kept",
                details={"reason": "commit_failed", "error": type(batch.error).__name__},
            ) from batch.error

    def _open(self) -> _Batch:
        # The writer connection stays checked out between batches: a pool checkout and
        # return per write cost ~0.1 ms of CPU on the benchmark machine.
        conn, self._idle = self._idle, None
        if conn is None or conn.closed or conn.invalidated:
            conn = self._engine.connect().execution_options(**{_WRITE: True})
        try:
            conn.begin()  # BEGIN IMMEDIATE (see _sqlite_on_begin)
        except BaseException:
            with suppress(Exception):
                conn.close()
            raise
        return _Batch(conn)

    def _end(self, batch: _Batch, *, commit: bool) -> None:
        """Commit (one fsync for the batch) or roll back, then wake the waiting units.

        Called with the write lock held. The connection is kept for the next batch only
        when this went cleanly; after any failure it is closed and the next batch takes a
        fresh one from the pool.
        """
        clean = False
        try:
            if commit:
                batch.conn.commit()
            else:
                batch.conn.rollback()
            clean = batch.error is None
        except BaseException as exc:
            batch.error = batch.error or exc
            with suppress(Exception):
                batch.conn.rollback()
        finally:
            if clean and not batch.conn.invalidated:
                self._idle = batch.conn
            else:
                with suppress(Exception):
                    batch.conn.close()
            batch.done.set()

    def rewind_soon(self) -> None:
        """Have the next committing writer copy what the checkpointer left (see there)."""
        self._rewind = True

    def _copy_remainder(self) -> None:
        # The lock is held and no transaction is open, so nothing can commit meanwhile:
        # once this returns, every frame is in the database file and the next BEGIN
        # rewinds the WAL. On the DBAPI connection: SQLAlchemy's would begin a transaction.
        self._rewind = False
        conn = self._idle
        if conn is None:
            return
        try:
            _passive_checkpoint(conn.connection.driver_connection)
        except Exception:  # the commit stands; the WAL just rewinds later
            log.warning("WAL checkpoint after commit failed", exc_info=True)

    def close(self) -> None:
        """Give the kept writer connection back (the engine is being disposed)."""
        with self._lock:
            conn, self._idle = self._idle, None
        if conn is not None:
            with suppress(Exception):
                conn.close()


class _Checkpointer:
    """Copies committed WAL pages into the database file on a thread of its own.

    SQLite's automatic checkpoint runs inside whichever commit pushes the WAL past its
    threshold, adding the page copies and an fsync of the database file to that one
    request (and, with writers queued behind it, to theirs). Here the threshold is raised
    to a safety net (:data:`AUTOCHECKPOINT_PAGES`) and this thread runs a PASSIVE
    checkpoint shortly after commits instead: it never blocks readers or writers, and
    SQLite releases the GIL while it copies, so the work lands on another core.
    Durability is unchanged: a commit is durable once its WAL frames are fsynced, which
    happens before the commit returns, whatever the checkpoints do.

    A checkpoint alone never shrinks the WAL: SQLite rewinds it to its start only when a
    write transaction begins with every frame already copied, and under steady writes
    commits land while the copy runs, so that moment never came and the WAL grew
    without end under sustained writes (64 MiB after 2,000 registrations, ~130 KiB
    each; a busy hour would have left tens of GiB, and readers search the WAL's index
    before the database file). So after each pass this thread asks (``copied``) the
    next writer that commits to copy the remainder - the frames committed during the
    pass - before it lets the following writer in: a few frames and an fsync of the
    database file, once every :attr:`DELAY_SECONDS`. The next writer then rewinds the
    WAL, which holds about one delay's worth of commits (19 MiB after the same 2,000
    registrations, which fill it in ~0.2 s). This thread cannot copy the remainder
    itself: a writer that commits in a loop takes the lock back before a waiting
    thread wakes up.
    """

    # Let commits accumulate before copying: the hot pages (indexes, counters, the audit
    # head) are rewritten by nearly every commit, and one checkpoint copies each once.
    # At 20 ms the checkpoints cost ~0.25 ms of CPU per sequential registration; at
    # 200 ms, ~0.04 ms. The WAL holds at most that much more between checkpoints.
    DELAY_SECONDS = 0.2

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.copied: Callable[[], None] = lambda: None  # after each pass (class docstring)
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def committed(self) -> None:
        self._wake.set()
        if self._thread is None:
            with self._start_lock:
                if self._thread is None and not self._stopping:
                    self._thread = threading.Thread(target=self._run, name="regista-checkpoint",
                                                    daemon=True)
                    self._thread.start()

    def stop(self) -> None:
        """Stop the thread; a later commit (the engine may be used again) restarts it."""
        with self._start_lock:
            self._stopping = True
            self._wake.set()
            thread = self._thread
            if thread is not None:
                thread.join(timeout=10)
                if thread.is_alive():  # stuck in a checkpoint: leave it told to stop
                    return
            self._thread = None
            self._stopping = False
            self._wake.clear()

    def _run(self) -> None:
        conn: Any = None
        try:
            while not self._stopping:
                self._wake.wait()
                time.sleep(self.DELAY_SECONDS)
                self._wake.clear()
                if self._stopping:  # read after clear(): stop() sets the flag, then wakes
                    return
                try:
                    if conn is None:  # one pooled connection, kept while the thread runs
                        conn = self._engine.raw_connection()
                    _passive_checkpoint(conn)
                    self.copied()
                except Exception:  # the safety-net threshold still bounds the WAL
                    log.warning("background WAL checkpoint failed", exc_info=True)
                    if conn is not None:
                        with suppress(Exception):
                            conn.invalidate()
                        conn = None
                    time.sleep(1.0)
        finally:
            if conn is not None:
                with suppress(Exception):
                    conn.close()


def _passive_checkpoint(dbapi_conn: Any) -> None:
    """Copy committed WAL frames into the database file, blocking no reader or writer."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
        cur.fetchall()
    finally:
        cur.close()


AUTOCHECKPOINT_PAGES = 16_384  # 64 MiB of WAL: reached only if the checkpointer falls behind


def _sqlite_on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    # Take transaction control away from the sqlite3 module: we emit BEGIN ourselves.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # fsync on every commit: acknowledged = durable
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA mmap_size=268435456")
    cur.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")  # see _Checkpointer
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # Straight to the driver (see store/sql/prepared.py: exec_driver_sql costs ~0.1 ms of
    # CPU here), with its errors wrapped as SQLAlchemy would wrap them.
    sql = "BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN"
    dbapi_conn: Any = conn.connection.driver_connection
    try:
        dbapi_conn.execute(sql).close()
    except conn.dialect.loaded_dbapi.Error as err:
        raise DBAPIError.instance(sql, (), err, conn.dialect.loaded_dbapi.Error,
                                  dialect=conn.dialect) from err
