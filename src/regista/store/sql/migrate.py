"""Apply Alembic migrations from inside the package (``regista db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from regista.store.sql.engine import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest)."""
    cfg = alembic_config(db)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def upgrade_locked(db: Database, revision: str = "head") -> None:
    """Upgrade under a PostgreSQL advisory lock, so many processes may start at once."""
    if not db.is_postgres:
        upgrade(db, revision)
        return
    from sqlalchemy import text

    with db.engine.connect() as lock_conn:
        lock_conn.execute(text("SELECT pg_advisory_lock(7263531)"))
        try:
            upgrade(db, revision)
        finally:
            lock_conn.execute(text("SELECT pg_advisory_unlock(7263531)"))
            lock_conn.commit()


def downgrade(db: Database, revision: str) -> None:
    cfg = alembic_config(db)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(db)).get_current_head()


def is_current(db: Database) -> bool:
    return current_revision(db) == head_revision(db)
