"""``regista audit``: verify the hash chain, export it, list events, pin checkpoints."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from regista.cli._common import JsonOpt, LimitOpt, get_client, print_json, print_table, when

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)

ModelOpt = Annotated[str | None, typer.Option("--model", help="Only events of this model.")]
VersionOpt = Annotated[int | None, typer.Option("--version", min=1,
                                                help="Only events of this version (with --model).")]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="Only events by this principal.")]
ActionOpt = Annotated[str | None, typer.Option(
    "--action", help="Only this action (version.register) or family (version.*).")]
OutcomeOpt = Annotated[str | None, typer.Option("--outcome", help="ok | denied | break_glass.")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="From this ISO-8601 instant.")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Before this ISO-8601 instant.")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Write to this file (default: stdout).")]


def _filters(model: str | None, version: int | None, actor: str | None, action: str | None,
             outcome: str | None, since: str | None, until: str | None) -> dict[str, Any]:
    return {"model": model, "version": version, "actor": actor, "action": action,
            "outcome": outcome, "since": since, "until": until}


def _read_checkpoints(path: Path) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
            out.append({"seq": int(item["seq"]), "hash": str(item["hash"])})
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise typer.BadParameter(f"line {n} of {path} is not a checkpoint "
                                     '({"seq": …, "hash": …})', param_hint="--checkpoints") from None
    return out


@audit_app.command("verify")
def verify(
    ctx: typer.Context,
    checkpoints: Annotated[Path | None, typer.Option(
        "--checkpoints", exists=True, dir_okay=False,
        help="JSON Lines of checkpoints kept outside the registry (detects a cut tail).")] = None,
    stored: Annotated[bool, typer.Option(
        "--stored-checkpoints/--no-stored-checkpoints",
        help="Also check the checkpoints stored in the registry.")] = True,
    file: Annotated[Path | None, typer.Option(
        "--file", exists=True, dir_okay=False,
        help="Verify this export (regista audit export) offline instead of asking the server.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the hash chain and name the first bad event; exit status 1 if it does not verify."""
    pins = _read_checkpoints(checkpoints) if checkpoints else []
    if file is not None:
        from regista.service.audit import Checkpoint, verify_export

        with file.open("rb") as fh:
            result = verify_export(fh, checkpoints=[Checkpoint(p["seq"], p["hash"]) for p in pins])
        body = result.to_json()
    else:
        body = get_client(ctx).audit_verify(pins, use_stored_checkpoints=stored).raw
    bad = body.get("first_bad")
    if as_json:
        print_json(body)
    elif bad is None:
        typer.echo(f"ok: {body['events']} events verified; head is event {body['head']['seq']} "
                   f"({body['head']['hash'][:16]}…); {body['checkpoints_checked']} checkpoint(s) "
                   "matched")
    if bad is not None:
        typer.echo(f"audit chain does NOT verify: event {bad['seq']}: {bad['reason']}: "
                   f"{bad['message']}", err=True)
        raise typer.Exit(1)


@audit_app.command("export")
def export(
    ctx: typer.Context,
    output: OutputOpt = None,
    model: ModelOpt = None,
    version: VersionOpt = None,
    actor: ActorOpt = None,
    action: ActionOpt = None,
    outcome: OutcomeOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
) -> None:
    """Export events as JSON Lines (oldest first); an unfiltered export verifies offline."""
    chunks = get_client(ctx).audit_export(
        **_filters(model, version, actor, action, outcome, since, until))
    if output is None:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        return
    lines = 0
    tmp = output.with_name(output.name + ".part")
    with tmp.open("wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
            lines += chunk.count(b"\n")
    tmp.replace(output)
    typer.echo(f"{lines} events written to {output}")


@audit_app.command("list")
def list_events(
    ctx: typer.Context,
    model: ModelOpt = None,
    version: VersionOpt = None,
    actor: ActorOpt = None,
    action: ActionOpt = None,
    outcome: OutcomeOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: LimitOpt = 50,
    as_json: JsonOpt = False,
) -> None:
    """List events, newest first."""
    events = list(get_client(ctx).audit_events(
        **_filters(model, version, actor, action, outcome, since, until), limit=limit or None))
    if as_json:
        print_json([e.raw for e in events])
        return
    print_table(
        ["SEQ", "AT", "ACTOR", "ACTION", "OUTCOME", "MODEL", "VERSION", "TARGET"],
        ([e.seq, when(e.at), e.actor, e.action, e.outcome, e.model, e.version, e.target]
         for e in events),
        empty="no events",
    )


@audit_app.command("checkpoint")
def checkpoint(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Print every stored checkpoint instead.")] = False,
    output: Annotated[Path | None, typer.Option(
        "--append-to", help="Also append the line(s) to this file (keep it outside the registry).")
    ] = None,
) -> None:
    """Verify the chain since the last checkpoint, pin its head, print it as a JSON line."""
    client = get_client(ctx)
    items = client.audit_checkpoints() if all_ else [client.audit_checkpoint()]
    text = b"".join(orjson.dumps(c.raw) + b"\n" for c in items)
    sys.stdout.buffer.write(text)
    sys.stdout.flush()
    if output is not None:
        with output.open("ab") as fh:
            fh.write(text)


def install(app: typer.Typer) -> None:
    """Add ``regista audit`` to the root app."""
    app.add_typer(audit_app, name="audit")
