"""``regista demo``: fill an empty data directory with a realistic demo portfolio."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regista.config import Settings


def demo(
    data_dir: Annotated[Path | None, typer.Option(
        help="Data directory to fill (must be empty; default ./regista-data).")] = None,
) -> None:
    """Train five small scikit-learn models and write nine months of registry history.

    Users, approvals, deployments to staging and production, a rollback, an overdue
    review and one case of drift: a populated registry to explore with `regista serve`.
    """
    from regista.demo import DEMO_PASSWORD, DemoError, build_demo

    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    try:
        summary = build_demo(settings, log=lambda line: typer.echo(f"  {line}"))
    except DemoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Demo ready in {settings.data_dir}: {summary.models} models, "
               f"{summary.versions} versions, {summary.deployments} deployments.")
    for note in summary.notes:
        typer.echo(f"  - {note}")
    typer.echo(f"Sign in at http://{settings.host}:{settings.port}/login with any of these users "
               f"(password {DEMO_PASSWORD!r}):")
    for name, role in summary.users:
        typer.echo(f"  {name:10} {role}")
    typer.echo("Start the server with: regista serve"
               + (f" --data-dir {settings.data_dir}" if data_dir is not None else ""))


def install(app: typer.Typer) -> None:
    """Add ``regista demo`` to the root command."""
    app.command("demo")(demo)
