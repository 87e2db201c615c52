"""Shared fixtures: real SQLite always, real PostgreSQL when the machine has one.

Every app-level test runs twice, once per database (the ``settings`` fixture is
parametrised). PostgreSQL tests use a database created for this session and dropped at
the end; under ``CI=true`` a missing PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from regista.config import Settings
from regista.domain.models import Actor
from regista.service.container import Services, build_services
from regista.store.sql import migrate
from regista.store.sql.engine import Database
from regista.store.sql.tables import metadata

PG_ADMIN_URL = os.environ.get(
    "REGISTA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_reachable() -> str | None:
    try:
        eng = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(sa.text("select 1"))
        eng.dispose()
        return None
    except Exception as exc:
        return str(exc).splitlines()[0]


def pytest_report_header(config: pytest.Config) -> str:
    problem = _pg_reachable()
    if problem is None:
        return "PostgreSQL: available (tests run on SQLite and PostgreSQL)"
    return f"PostgreSQL: NOT AVAILABLE, PostgreSQL tests will be skipped ({problem})"


def create_pg_database(prefix: str = "regista_t") -> str:
    """Create a fresh PostgreSQL database; return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    eng = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    eng = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A migrated PostgreSQL database for this test session."""
    problem = _pg_reachable()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI=true but PostgreSQL is not reachable: {problem}")
        pytest.skip(f"PostgreSQL not available: {problem}")
    url = create_pg_database()
    db = Database(url)
    migrate.upgrade(db)
    db.dispose()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "regista.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


def _truncate_pg(url: str) -> None:
    eng = sa.create_engine(url)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with eng.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    eng.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Settings:
    """Settings for a fresh, migrated, empty registry on each database."""
    data = tmp_path / "data"
    data.mkdir()
    if request.param == "sqlite":
        shutil.copy(sqlite_template, data / "regista.db")
        return Settings(data_dir=data, secret_key="test-secret")
    url = request.getfixturevalue("pg_url")
    _truncate_pg(url)
    return Settings(data_dir=data, database_url=url, secret_key="test-secret")


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    svc = build_services(settings)
    yield svc
    svc.close()


@pytest.fixture
def app(services: Services):  # type: ignore[no-untyped-def]
    from regista.api.app import create_app

    return create_app(services=services)


@pytest.fixture
def api(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """An in-process HTTP client on the ASGI app (real database, no socket)."""
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def local_actor() -> Actor:
    return Actor(name="local", local_mode=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving an app on 127.0.0.1 in a thread, stopped by the fixture."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("live server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    server = LiveServer(app)
    server.start()
    yield server
    server.stop()


def sha256_hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
