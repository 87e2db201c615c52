"""An empty database with every table (no migrations), for the search module tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from regista.store.sql.tables import metadata
from tests.conftest import IN_CI, _pg_reachable, create_pg_database, drop_pg_database


@contextmanager
def open_database(kind: str, directory: Path, *, prefix: str) -> Iterator[sa.Engine]:
    """A SQLite file, or a PostgreSQL database created here and dropped afterwards."""
    if kind == "sqlite":
        engine = sa.create_engine(f"sqlite:///{directory / 'search.db'}")
        try:
            metadata.create_all(engine)
            yield engine
        finally:
            engine.dispose()
        return
    problem = _pg_reachable()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI=true but PostgreSQL is not reachable: {problem}")
        pytest.skip(f"PostgreSQL not available: {problem}")
    url = create_pg_database(prefix)
    engine = sa.create_engine(url)
    try:
        metadata.create_all(engine)
        yield engine
    finally:
        engine.dispose()
        drop_pg_database(url)
