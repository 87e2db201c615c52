"""Query plans: capture the SQL a service call runs and EXPLAIN it.

The capture runs in the harness process on the scenario's own database, around the same
service call the HTTP route makes (SQLAlchemy's ``before_cursor_execute`` event), so the
plans are those of the statements the server actually sends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import SECRET

Call = tuple[str, Callable[[Any, Any], object]]  # (label, fn(services, actor))


def _format_sqlite(rows: list[tuple[Any, ...]]) -> tuple[str, list[str], list[str]]:
    depth: dict[int, int] = {0: -1}
    out = []
    scans = []
    sorts = []
    derived: set[str] = set()  # subquery results (co-routines), not tables
    for node_id, parent, _, detail in rows:
        d = depth.get(parent, -1) + 1
        depth[node_id] = d
        text = str(detail)
        out.append("  " * d + text)
        if text.startswith(("CO-ROUTINE ", "MATERIALIZE ")):
            derived.add(text.split(" ", 1)[1])
        scanned = text.removeprefix("SCAN ").split(" ", 1)[0]
        if (text.startswith("SCAN ") and " INDEX " not in text
                and "CONSTANT ROW" not in text and scanned not in derived):
            scans.append(text)
        if "TEMP B-TREE" in text:
            sorts.append(text)
    return "\n".join(out), scans, sorts


def explain_calls(data_dir: Path, calls: Sequence[Call], *, database_url: str | None = None
                  ) -> tuple[str, list[list[str]]]:
    """EXPLAIN every SELECT each call runs.

    Returns the full text and one summary row per call: label, number of statements, full
    scans, sorts of materialised rows. SQLite: EXPLAIN QUERY PLAN; full scans are
    ``SCAN t`` without an index, sorts ``USE TEMP B-TREE``. PostgreSQL: EXPLAIN (the plan
    for the captured parameters); ``Seq Scan`` and ``Sort`` nodes.
    """
    from sqlalchemy import event

    from regista.config import Settings
    from regista.domain.models import Actor
    from regista.service.container import build_services

    settings = Settings(data_dir=data_dir, secret_key=SECRET, auth_mode="local",
                        database_url=database_url)
    svc = build_services(settings)
    actor = Actor(name="bench", local_mode=True)
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            captured.append((statement, parameters))

    text: list[str] = []
    summary: list[list[str]] = []
    postgres = svc.db.is_postgres
    event.listen(svc.db.engine, "before_cursor_execute", capture)
    try:
        for label, fn in calls:
            captured.clear()
            fn(svc, actor)
            stmts = list(captured)
            scans_all: list[str] = []
            sorts_all: list[str] = []
            text.append(f"### {label}: {len(stmts)} statement(s)")
            with svc.db.engine.connect() as conn:
                for i, (sql, params) in enumerate(stmts, 1):
                    if postgres:
                        raw = conn.exec_driver_sql("EXPLAIN " + sql, params).scalars().all()
                        plan = "\n".join(str(x) for x in raw)
                        scans = [str(x).strip() for x in raw if "Seq Scan" in str(x)]
                        sorts = [str(x).strip() for x in raw if "Sort " in str(x)]
                    else:
                        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
                        plan, scans, sorts = _format_sqlite([tuple(r) for r in rows])
                    scans_all += scans
                    sorts_all += [f"statement {i}: {x}" for x in sorts]
                    text.append(f"-- statement {i}\n{sql.strip()}\n-- parameters {params!r}\n"
                                f"-- plan\n{plan}\n")
            summary.append([label, str(len(stmts)),
                            "; ".join(scans_all) if scans_all else "none (index searches only)",
                            "; ".join(sorts_all) if sorts_all else "none"])
    finally:
        event.remove(svc.db.engine, "before_cursor_execute", capture)
        svc.close()
    return "\n".join(text), summary
