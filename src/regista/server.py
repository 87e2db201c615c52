"""Run the server: migrations first, then one or many uvicorn processes.

Multi-process mode binds the listening socket once in the supervisor and sets
TCP_NODELAY on it; Linux hands that option to every accepted socket, so replies on
reused connections are not held back by Nagle's algorithm meeting delayed ACKs.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.supervisors import Multiprocess

from regista.config import Settings
from regista.store.sql.engine import Database

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("regista")


class _Config(uvicorn.Config):
    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def prepare(settings: Settings, *, run_migrations: bool = True, isolated: bool = False,
            meanwhile: Callable[[], object] | None = None) -> None:
    """Create the data directory and bring the schema up to date.

    ``isolated`` runs the migrations in a forked child process (where ``fork`` exists):
    Alembic and the migration run would otherwise stay resident in a long-lived server
    for good (~8 MiB). Only fork while the process has no other threads. ``meanwhile``
    runs in this process while the child migrates (start-up work that needs no schema).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not run_migrations:
        if meanwhile is not None:
            meanwhile()
        return
    url = settings.resolved_database_url()
    if isolated and "fork" in multiprocessing.get_all_start_methods():
        child = multiprocessing.get_context("fork").Process(
            target=_upgrade, args=(url,), name="regista-migrate")
        child.start()
        try:
            if meanwhile is not None:
                meanwhile()
        finally:
            child.join()
        if child.exitcode != 0:
            raise SystemExit(f"regista: the schema migration failed (exit code {child.exitcode})")
    else:
        _upgrade(url)
        if meanwhile is not None:
            meanwhile()


def _import_app() -> object:
    """Import the app's modules (about half of a start-up), e.g. while migrations run."""
    import regista.api.app

    return regista.api.app


def _upgrade(url: str) -> None:
    from regista.store.sql import migrate

    db = Database(url)
    try:
        migrate.upgrade_locked(db)
    finally:
        db.dispose()


def create_server_app() -> FastAPI:
    """The app of one server process, with what it built at start-up frozen for the GC.

    CPython's full (generation 2) collections walk every tracked object: in a server that
    is the whole of FastAPI, SQLAlchemy, pydantic and the app, and one took 80-100 ms,
    stopping every thread, the one holding the write lock included (the tail of the
    32-client registration benchmark was made of them). ``gc.freeze()`` moves those
    start-up objects out of the collector's reach: they live as long as the process
    anyway, and reference counting still frees everything else as before.
    """
    from regista.api.app import create_app

    app = create_app()
    gc.collect()
    gc.freeze()
    return app


def serve(settings: Settings, *, run_migrations: bool = True) -> None:
    """Serve the API and web UI until interrupted."""
    # One process: import the app while the migration child runs (both take a core).
    # Several: the supervisor only supervises, and the workers import for themselves.
    prepare(settings, run_migrations=run_migrations, isolated=True,
            meanwhile=_import_app if settings.workers <= 1 else None)
    # Workers are separate processes: they read their settings from the environment.
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env_value = value if isinstance(value, str) else __import__("json").dumps(value)
            os.environ[f"REGISTA_{name.upper()}"] = env_value
    if not settings.secret_key:
        from regista.service.container import load_secret

        os.environ["REGISTA_SECRET_KEY"] = load_secret(settings).decode()
    config = _Config(
        "regista.server:create_server_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    if settings.workers > 1:
        sock = config.bind_socket()
        Multiprocess(config, sockets=[sock]).run()
    else:
        server.run()
