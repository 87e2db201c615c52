"""What every ``regista`` command shares: the client, ``--json`` output, error reporting.

Writing a command module (``cli/<area>.py``)::

    from regista.cli._common import JsonOpt, get_client, print_json

    area_app = typer.Typer(help="…", no_args_is_help=True)

    @area_app.command("list")
    def list_things(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        items = get_client(ctx).list_things()
        if as_json:
            print_json([i.raw for i in items])
        ...

    def install(app: typer.Typer) -> None:   # called from cli/main.py
        app.add_typer(area_app, name="area")

Commands just raise: a :class:`regista.errors.RegistryError` (from the client or raised
locally) is printed as ``error: <code>: <message>`` on stderr with exit status 1 by
:class:`RegistaGroup`, never as a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from regista.errors import RegistryError

if TYPE_CHECKING:
    from rich.console import Console

    from regista.client import Client

#: Exit status of a command that failed on a registry or local error (usage errors are 2).
EXIT_ERROR = 1

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
LimitOpt = Annotated[int, typer.Option("--limit", min=0, help="Show at most this many (0: all).")]
OrderByOpt = Annotated[
    str | None, typer.Option("--order-by", help='Sort order, e.g. "created_at desc".')
]


@dataclass
class CliState:
    """Options of the root command, kept on the root context (``ctx.obj``)."""

    url: str | None = None
    token: str | None = None
    client: Client | None = None


def report_error(exc: RegistryError) -> None:
    """``error: <code>: <message>`` on stderr, then the details, one per line."""
    typer.echo(f"error: {exc.code}: {exc.message}", err=True)
    for key, value in exc.details.items():
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        typer.echo(f"  {key}: {shown}", err=True)


class RegistaGroup(TyperGroup):
    """The root command group: turns every expected failure into one line on stderr."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except RegistryError as exc:
            report_error(exc)
            raise typer.Exit(EXIT_ERROR) from None
        except OSError as exc:
            # A local file problem (missing metadata file, unwritable destination …).
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            typer.echo(f"error: io: {exc.strerror or exc}{where}", err=True)
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            typer.echo("error: interrupted", err=True)
            raise typer.Exit(130) from None


def get_client(ctx: typer.Context) -> Client:
    """The client for this invocation (``--url``/``REGISTA_URL``, ``--token``/``REGISTA_TOKEN``).

    Made once per invocation from the root command's options and closed when it ends.
    """
    from regista.client import Client

    root = ctx.find_root()
    state = root.obj if isinstance(root.obj, CliState) else CliState()
    root.obj = state
    if state.client is None:
        state.client = Client(state.url, token=state.token)
        root.call_on_close(state.client.close)
    return state.client


def print_json(value: Any) -> None:
    """Write ``value`` as indented JSON on stdout (datetimes as ISO-8601)."""
    typer.echo(json.dumps(value, indent=2, default=_json_default, ensure_ascii=False))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def console() -> Console:
    """A rich console on the current stdout (so test runners capture it)."""
    import sys

    from rich.console import Console

    return Console(file=sys.stdout, highlight=False, soft_wrap=False)


def parse_pairs(items: Sequence[str] | None, what: str = "tag") -> dict[str, str]:
    """``["k=v", …]`` → ``{"k": "v"}``; a usage error names the item without ``=``."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=f"--{what}")
        out[key] = value
    return out


def merge_tags(current: dict[str, str], set_: Sequence[str] | None,
               unset: Sequence[str] | None) -> dict[str, str] | None:
    """New tag set after ``--tag k=v`` and ``--untag k``; None when neither was given."""
    if not set_ and not unset:
        return None
    tags = dict(current)
    tags.update(parse_pairs(set_))
    for key in unset or ():
        tags.pop(key, None)
    return tags


def human_size(n: int) -> str:
    """Bytes as a short human-readable size (1000-based, like rich)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def when(value: datetime | None) -> str:
    """An instant for people: UTC, to the second."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def fmt_tags(tags: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tags.items())) or "-"


def print_fields(rows: Iterable[tuple[str, Any]]) -> None:
    """Aligned ``label: value`` lines."""
    pairs = [(k, "-" if v is None or v == "" else str(v)) for k, v in rows]
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        typer.echo(f"{key + ':':<{width + 1}} {value}")


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str) -> None:
    """A rich table on stdout, or ``empty`` when there are no rows."""
    from rich.table import Table

    table = Table(*columns, box=None, pad_edge=False, header_style="bold")
    count = 0
    for row in rows:
        table.add_row(*("-" if c is None else str(c) for c in row))
        count += 1
    if count == 0:
        typer.echo(empty)
        return
    console().print(table)
