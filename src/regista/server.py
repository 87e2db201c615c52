"""Run the server: migrations first, then one or many uvicorn processes.

Multi-process mode binds the listening socket once in the supervisor and sets
TCP_NODELAY on it; Linux hands that option to every accepted socket, so replies on
reused connections are not held back by Nagle's algorithm meeting delayed ACKs.
"""

from __future__ import annotations

import logging
import os
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from regista.config import Settings
from regista.store.sql import migrate
from regista.store.sql.engine import Database

log = logging.getLogger("regista")


class _Config(uvicorn.Config):
    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def prepare(settings: Settings, *, run_migrations: bool = True) -> None:
    """Create the data directory and bring the schema up to date."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if run_migrations:
        db = Database(settings.resolved_database_url())
        try:
            migrate.upgrade_locked(db)
        finally:
            db.dispose()


def serve(settings: Settings, *, run_migrations: bool = True) -> None:
    """Serve the API and web UI until interrupted."""
    prepare(settings, run_migrations=run_migrations)
    # Workers are separate processes: they read their settings from the environment.
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env_value = value if isinstance(value, str) else __import__("json").dumps(value)
            os.environ[f"REGISTA_{name.upper()}"] = env_value
    if not settings.secret_key:
        from regista.service.container import load_secret

        os.environ["REGISTA_SECRET_KEY"] = load_secret(settings).decode()
    config = _Config(
        "regista.api.app:create_app",
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
