"""Bulk data for the large scenarios: rows written straight into a migrated SQLite file.

Generating a million versions through the API would take longer than the benchmark
itself, so the rows go in with ``executemany`` in big batches on one raw sqlite3
connection, in exactly the shapes the store writes them (UTC instants as the naive
``YYYY-MM-DD HH:MM:SS.ffffff`` text SQLAlchemy stores on SQLite, JSON as text). The
generator's connection runs without a journal and without fsync, and drops the secondary
indexes of the tables it fills, recreating them from the migrated schema's own SQL at
the end; the server that then reads the file runs with its usual settings.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.common import log

BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)
BATCH = 50_000


def sqlite_ts(ts: datetime) -> str:
    """An aware instant as SQLAlchemy stores it in SQLite (naive UTC text)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def migrated_sqlite(data_dir: Path) -> Path:
    """Create DATA_DIR/regista.db at the newest schema; return its path."""
    from regista.store.sql import migrate
    from regista.store.sql.engine import Database

    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "regista.db"
    db = Database(f"sqlite:///{path}")
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    return path


@contextlib.contextmanager
def bulk_connection(path: Path, tables: Sequence[str]) -> Iterator[sqlite3.Connection]:
    """A raw connection for loading ``tables``: no journal, no fsync, indexes rebuilt after."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        conn.execute("PRAGMA temp_store=MEMORY")
        marks = ",".join("?" for _ in tables)
        indexes = conn.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({marks})", list(tables)).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("BEGIN")
        yield conn
        conn.execute("COMMIT")
        t0 = time.monotonic()
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("ANALYZE")
        log(f"  rebuilt {len(indexes)} indexes + ANALYZE in {time.monotonic() - t0:.1f} s")
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def insert_rows(conn: sqlite3.Connection, table: str, columns: Sequence[str],
                rows: Iterable[Sequence[Any]]) -> int:
    """executemany in batches of BATCH rows; returns the number of rows."""
    sql = (f'INSERT INTO "{table}" ({", ".join(columns)}) '
           f'VALUES ({", ".join("?" for _ in columns)})')
    n = 0
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            conn.executemany(sql, batch)
            n += len(batch)
            batch = []
    if batch:
        conn.executemany(sql, batch)
        n += len(batch)
    return n


# --------------------------------------------------------------------------- registry


@dataclass
class Registry:
    """What was generated, so scenarios know which names and values exist."""

    models: int
    versions: int
    per_model: int
    model_names: list[str]
    envs: list[str]
    alias: str = "champion"

    def model_of(self, version_id: int) -> int:
        """0-based model index of a version id (ids are interleaved across models)."""
        return (version_id - 1) % self.models

    def number_of(self, version_id: int) -> int:
        return (version_id - 1) // self.models + 1

    def version_id(self, model_index: int, number: int) -> int:
        return (number - 1) * self.models + model_index + 1


STAGES = ("registered",) * 7 + ("staging", "production", "archived")
TEAMS = [f"team-{i}" for i in range(20)]
ENVS = ("dev", "staging", "prod")


def generate_registry(path: Path, *, models: int, versions: int, seed: int = 7,
                      with_files: bool = True) -> Registry:
    """``versions`` versions spread round-robin over ``models`` models, as the API writes them.

    Each version: provenance JSON, one file (the model's blob), three tags (team, env, a
    unique run id), three metrics (auc, f1, log_loss). Each model has an alias
    ``champion`` (with its alias event) on its newest version. Version ids interleave
    the models, and created_at grows with the id, 10 s apart.
    """
    t0 = time.monotonic()
    rng = random.Random(seed)
    per_model = versions // models
    versions = per_model * models
    names = [f"model-{i:05d}" for i in range(models)]
    step = timedelta(seconds=10)
    end_time = BASE_TIME + step * versions
    model_blob = [f"{rng.getrandbits(256):064x}" for _ in range(models)]
    tables = ["models", "blobs", "versions", "version_files", "version_tags", "version_metrics",
              "aliases", "alias_events", "model_tags"]
    with bulk_connection(path, tables) as conn:
        created = sqlite_ts(BASE_TIME - timedelta(days=1))
        last = sqlite_ts(end_time)
        insert_rows(conn, "models",
                    ["id", "name", "normalized_name", "description", "owner_team", "risk_tier",
                     "archived", "version_counter", "latest_version", "created_at",
                     "created_by", "updated_at"],
                    ((i + 1, n, n, f"Benchmark model {i}", TEAMS[i % len(TEAMS)],
                      ("low", "medium", "high", "critical")[i % 4], 0, per_model, per_model,
                      created, "bench", last) for i, n in enumerate(names)))
        insert_rows(conn, "model_tags", ["model_id", "key", "value"],
                    ((i + 1, "domain", ("fraud", "credit", "churn", "pricing")[i % 4])
                     for i in range(models)))
        insert_rows(conn, "blobs", ["digest", "size", "created_at", "verified_at"],
                    ((d, 123_456, created, created) for d in model_blob))

        def version_rows() -> Iterator[tuple[Any, ...]]:
            r = random.Random(seed + 1)
            for vid in range(1, versions + 1):
                m = (vid - 1) % models
                number = (vid - 1) // models + 1
                ts = sqlite_ts(BASE_TIME + step * vid)
                prov = orjson.dumps({
                    "training_data": {"uri": "s3://data/train.parquet", "version": f"v{vid % 97}"},
                    "training_code": {"repository": "https://git.example.com/ml/repo",
                                      "commit": f"{r.getrandbits(160):040x}", "dirty": False},
                    "parameters": {"learning_rate": 0.05, "max_depth": 6, "seed": vid},
                    "metrics": {"auc": _auc(vid), "f1": _f1(vid), "log_loss": _loss(vid)},
                    "framework": "sklearn", "extras": {},
                }).decode()
                yield (vid, m + 1, number, f"{r.getrandbits(256):064x}", "",
                       STAGES[vid % len(STAGES)], ts, prov, "sklearn", None, 1, 123_456, None,
                       None, ts, "bench", ts)

        n = insert_rows(conn, "versions",
                        ["id", "model_id", "number", "digest", "description", "stage",
                         "stage_changed_at", "provenance", "framework", "parent_version_id",
                         "file_count", "total_size", "idempotency_key", "request_hash",
                         "created_at", "created_by", "updated_at"], version_rows())
        if with_files:
            insert_rows(conn, "version_files",
                        ["version_id", "path", "digest", "size", "media_type", "role"],
                        ((vid, "model.pkl", model_blob[(vid - 1) % models], 123_456,
                          "application/octet-stream", "model") for vid in range(1, n + 1)))
        insert_rows(conn, "version_tags", ["version_id", "key", "value"],
                    (row for vid in range(1, n + 1) for row in (
                        (vid, "team", TEAMS[vid % len(TEAMS)]),
                        (vid, "env", ENVS[vid % 3]),
                        (vid, "run", f"run-{vid}"))))
        insert_rows(conn, "version_metrics", ["version_id", "name", "value"],
                    (row for vid in range(1, n + 1) for row in (
                        (vid, "auc", _auc(vid)), (vid, "f1", _f1(vid)),
                        (vid, "log_loss", _loss(vid)))))
        latest = [(per_model - 1) * models + m + 1 for m in range(models)]
        insert_rows(conn, "aliases", ["model_id", "name", "version_id", "updated_at",
                                      "updated_by"],
                    ((m + 1, "champion", latest[m], last, "bench") for m in range(models)))
        insert_rows(conn, "alias_events", ["model_id", "alias", "version_id", "at", "actor"],
                    ((m + 1, "champion", latest[m], last, "bench") for m in range(models)))
    log(f"  generated {models:,} models / {n:,} versions in {time.monotonic() - t0:.1f} s")
    return Registry(models, n, per_model, names, list(ENVS))


def _auc(vid: int) -> float:
    # Deterministic, well spread in [0.70, 0.99): no RNG state needed in two places.
    return round(0.70 + ((vid * 2654435761) % 2_900_000) / 10_000_000, 6)


def _f1(vid: int) -> float:
    return round(0.50 + ((vid * 40503) % 4_000_000) / 10_000_000, 6)


def _loss(vid: int) -> float:
    return round(0.10 + ((vid * 97) % 5_000_000) / 10_000_000, 6)
