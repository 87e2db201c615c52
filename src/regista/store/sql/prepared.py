"""Statements compiled once and run on the driver's cursor: the registration hot path.

SQLAlchemy Core costs about 35-140 µs of CPU per ``Connection.execute`` on this project's
2-core benchmark machine (cache-key generation, execution context, parameter and result
processing, events), against 3-20 µs for the driver executing the same SQL. A
registration runs about ten statements, so on the hot path that overhead outweighed the
SQL itself (measured in docs/decisions.md).

:class:`Prepared` keeps what SQLAlchemy does well and skips the per-call part: the
statement is still built with SQLAlchemy constructs and compiled by SQLAlchemy's
compiler for the connection's dialect (with the same column keys SQLAlchemy itself would
compile an ``execute`` with), and every parameter still goes through its type's bind
processor for that dialect, so a row written here is byte-for-byte the row
``Connection.execute`` would write. The compiled form (SQL text, parameter order,
processors) is kept per dialect and parameter key set, and each call hands the
parameters straight to the DBAPI cursor of the connection's current transaction.

What it does not do, by design (each is refused when the statement is compiled, so a
misuse fails in tests, not in production):

* Python-side column defaults or ``onupdate`` values: pass every value.
* Expanding (``IN``) or literal-execute parameters.
* Result processing: it only returns rows whose columns the driver already gives in
  their Python form (integers, text); anything else must go through
  ``Connection.execute``.

The engine's ``before_cursor_execute`` and ``after_cursor_execute`` listeners are still
called (with no execution context; a listener's return value is ignored), so tests and
instrumentation that watch statements see these too; ``echo`` logging does not.
On PostgreSQL each of these statements is also a server-side prepared statement (per
connection, made on first use), so the server parses and plans it once. Regista turns
psycopg's automatic preparation off for everything else (``prepare_threshold=None``: a
generic plan can be many times slower for a selective search), but the statements here
are primary-key and unique-key lookups and single-row writes, whose plan never depends
on the values.

Driver errors are wrapped the way SQLAlchemy wraps them (``sqlalchemy.exc.IntegrityError``
and friends), and a connection the driver reports as lost is invalidated, so callers and
the pool see what they would have seen through ``Connection.execute``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

_Processor = Callable[[Any], Any] | None
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    keys: tuple[str, ...]  # the parameter names as written in the SQL (named paramstyles)
    # (name, own value or _MISSING when required, bind processor) per parameter, in the
    # order the SQL wants them
    slots: tuple[tuple[str, Any, _Processor], ...]
    positional: bool
    server_prepared: bool  # PostgreSQL: a server-side prepared statement per connection

    def bind(self, params: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        get = params.get
        values = [get(name, default) for name, default, _ in self.slots]
        for i, (name, _, proc) in enumerate(self.slots):
            value = values[i]
            if value is _MISSING:
                raise exc.ArgumentError(f"a value is required for bind parameter {name!r}")
            if proc is not None:
                values[i] = proc(value)
        if self.positional:
            return tuple(values)
        return dict(zip(self.keys, values, strict=True))


class Prepared:
    """A Core statement compiled once per dialect and executed on the DBAPI cursor."""

    __slots__ = ("_lock", "_plans", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._plans: weakref.WeakKeyDictionary[Dialect, dict[tuple[frozenset[str], bool], _Plan]]
        self._plans = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ running

    def execute(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """Run once with ``params``; returns the DBAPI cursor (rows not yet fetched)."""
        params = params or {}
        plan = self._plan(conn.dialect, params, many=False)
        bound = plan.bind(params)
        return self._run(conn, plan, bound, many=False)

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run once per mapping of ``rows`` (which must all have the same keys)."""
        if not rows:
            return
        plan = self._plan(conn.dialect, rows[0], many=len(rows) > 1)
        bound = [plan.bind(r) for r in rows]
        if len(bound) == 1:
            self._run(conn, plan, bound[0], many=False).close()
        else:
            self._run(conn, plan, bound, many=True).close()

    def first(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """The first row as a tuple, or None."""
        cur = self.execute(conn, params)
        try:
            return cur.fetchone()
        finally:
            cur.close()

    def scalar(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row; the statement must return a row."""
        row = self.first(conn, params)
        if row is None:
            raise exc.NoResultFound("no row was returned where one was required")
        return row[0]

    @staticmethod
    def _run(conn: Connection, plan: _Plan, bound: Any, *, many: bool) -> Any:
        dialect = conn.dialect
        dbapi_conn: Any = conn.connection.driver_connection
        cur = dbapi_conn.cursor()
        sql = plan.sql
        # The engine's cursor events still see the statement (connection-level listeners,
        # which Regista never registers, do not).
        dispatch = conn.engine.dispatch
        try:
            if dispatch.before_cursor_execute:
                for fn in dispatch.before_cursor_execute:
                    fn(conn, cur, sql, bound, None, many)
            if many:
                cur.executemany(sql, bound)
            elif plan.server_prepared:
                cur.execute(sql, bound, prepare=True)
            else:
                cur.execute(sql, bound)
            if dispatch.after_cursor_execute:
                for fn in dispatch.after_cursor_execute:
                    fn(conn, cur, sql, bound, None, many)
        except Exception as err:
            cur.close()
            dbapi_error = dialect.loaded_dbapi.Error
            if not isinstance(err, dbapi_error):
                raise
            lost = dialect.is_disconnect(err, conn.connection.dbapi_connection, cur)
            if lost:
                conn.invalidate(err)
            raise exc.DBAPIError.instance(
                plan.sql, bound, err, dbapi_error, connection_invalidated=lost,
                dialect=dialect, ismulti=many,
            ) from err
        return cur

    # ------------------------------------------------------------------ compiling

    def _plan(self, dialect: Dialect, params: Mapping[str, Any], *, many: bool) -> _Plan:
        key = (frozenset(params), many)
        by_key = self._plans.get(dialect)
        plan = by_key.get(key) if by_key is not None else None
        if plan is None:
            plan = self._compile(dialect, key)
        return plan

    def _compile(self, dialect: Dialect, key: tuple[frozenset[str], bool]) -> _Plan:
        names, many = key
        # The same compile Connection.execute does: column keys from the parameters.
        compiled = self.statement.compile(dialect=dialect, column_keys=sorted(names),
                                          for_executemany=many)
        assert isinstance(compiled, SQLCompiler)
        what = str(self.statement).split("\n", 1)[0][:80]
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise exc.ArgumentError(
                f"Prepared statements take every value from the caller; {what!r} needs "
                "Python-side defaults for "
                + ", ".join(c.key for c in [*compiled.insert_prefetch,
                                            *compiled.update_prefetch]))
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise exc.ArgumentError(f"Prepared statements cannot expand parameters: {what!r}")
        for col in getattr(self.statement, "exported_columns", ()):
            if col.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
                raise exc.ArgumentError(
                    f"column {col.key!r} of {what!r} needs result processing: use "
                    "Connection.execute for it")
        order = list(compiled.positiontup or ()) if compiled.positional else list(compiled.binds)
        escaped: Mapping[str, str] = compiled.escaped_bind_names or {}
        defaults: list[Any] = []
        processors: list[_Processor] = []
        for name in order:
            bp = compiled.binds[name]
            if bp.callable is not None:
                raise exc.ArgumentError(f"Prepared statements take no callable parameters: "
                                        f"{what!r}")
            given = name in names
            defaults.append(_MISSING if bp.required and not given else bp.value)
            processors.append(bp.type.dialect_impl(dialect).bind_processor(dialect))
        plan = _Plan(
            sql=compiled.string,
            keys=tuple(escaped.get(n, n) for n in order),
            slots=tuple(zip(order, defaults, processors, strict=True)),
            positional=compiled.positional,
            server_prepared=dialect.name == "postgresql",
        )
        with self._lock:
            self._plans.setdefault(dialect, {})[key] = plan
        return plan
