"""The ``regista`` command line.

Command areas live in their own modules (``cli/<area>.py``, see ``cli/_common.py``) and
are installed at the bottom of this file, one line each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regista.cli import audit, demo, deployments, hygiene, identity, lifecycle, registry
from regista.cli._common import CliState, RegistaGroup
from regista.config import Settings

app = typer.Typer(
    name="regista",
    help="Regista: a governance-grade model registry.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=RegistaGroup,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(
        envvar="REGISTA_URL", help="Server URL (default http://127.0.0.1:8080).")] = None,
    token: Annotated[str | None, typer.Option(
        envvar="REGISTA_TOKEN", help="API token.", show_default=False)] = None,
) -> None:
    """Regista: a governance-grade model registry."""
    ctx.obj = CliState(url=url, token=token)


@app.command()
def serve(
    data_dir: Annotated[Path | None, typer.Option(help="Data directory (SQLite + blobs).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8080).")] = None,
    workers: Annotated[int | None, typer.Option(help="Server processes.")] = None,
    migrate: Annotated[bool, typer.Option(help="Upgrade the schema before serving.")] = True,
) -> None:
    """Start the server (embedded default: SQLite + local blobs in ./regista-data)."""
    from regista.server import serve as run

    overrides = {k: v for k, v in
                 {"data_dir": data_dir, "host": host, "port": port, "workers": workers}.items()
                 if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    typer.echo(f"Regista on http://{settings.host}:{settings.port} "
               f"(database: {settings.resolved_database_url().split(':', 1)[0]}, "
               f"data: {settings.data_dir})")
    run(settings, run_migrations=migrate)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply schema migrations (safe to run from several hosts at once on PostgreSQL)."""
    from regista.store.sql import migrate
    from regista.store.sql.engine import Database

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url())
    migrate.upgrade_locked(db, revision)
    typer.echo(f"schema at {migrate.current_revision(db)}")
    db.dispose()


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the configured database."""
    from regista.store.sql import migrate
    from regista.store.sql.engine import Database

    db = Database(Settings().resolved_database_url())
    typer.echo(str(migrate.current_revision(db)))
    db.dispose()


# Command areas, one line each.
registry.install(app)
demo.install(app)
audit.install(app)
deployments.install(app)
hygiene.install(app)
identity.install(app)
lifecycle.install(app)


if __name__ == "__main__":
    app()
