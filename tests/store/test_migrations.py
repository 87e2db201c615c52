"""Migrations run up and down on both databases, and match the table definitions."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from regista.store.sql import migrate
from regista.store.sql.engine import Database
from regista.store.sql.tables import metadata
from tests.conftest import create_pg_database, drop_pg_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_db(request, tmp_path):
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'm.db'}")
        yield db
        db.dispose()
        return
    request.getfixturevalue("pg_url")
    url = create_pg_database("regista_mig")
    db = Database(url)
    yield db
    db.dispose()
    drop_pg_database(url)


def _tables(db: Database) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(fresh_db):
    migrate.upgrade(fresh_db)
    assert migrate.is_current(fresh_db)
    assert _tables(fresh_db) == set(metadata.tables)
    migrate.downgrade(fresh_db, "base")
    assert _tables(fresh_db) == set()
    migrate.upgrade(fresh_db)
    assert _tables(fresh_db) == set(metadata.tables)


def test_models_and_migrations_do_not_drift(fresh_db):
    migrate.upgrade(fresh_db)
    with fresh_db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, metadata)
    assert diff == [], f"tables.py and the migrations differ: {diff}"


def test_upgrade_is_idempotent_and_locked(fresh_db):
    migrate.upgrade_locked(fresh_db)
    migrate.upgrade_locked(fresh_db)
    assert migrate.is_current(fresh_db)
