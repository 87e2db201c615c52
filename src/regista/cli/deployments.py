"""``regista deploy``, ``regista deployments`` and ``regista observe``: where versions serve."""

from __future__ import annotations

from typing import Annotated

import typer

from regista.cli._common import JsonOpt, LimitOpt, get_client, print_fields, print_json, print_table, when

deploy_app = typer.Typer(help="Record deployments (append-only history).", no_args_is_help=True)
deployments_app = typer.Typer(help="Ask what served where, and when.", no_args_is_help=True)

EnvArg = Annotated[str, typer.Argument(help="Environment name.", metavar="ENV")]
ModelArg = Annotated[str, typer.Argument(help="Model name.", metavar="MODEL")]
RefArg = Annotated[str, typer.Argument(help="Version: NAME/7 or NAME@alias.", metavar="MODEL_REF")]
AtOpt = Annotated[str | None, typer.Option("--at", help="ISO-8601 instant (default: now).")]
NoteOpt = Annotated[str, typer.Option("--note", help="Free text kept with the event.")]
TimeOpt = Annotated[str | None, typer.Option("--time", "-t", help="ISO-8601 instant (default: now).")]


def _event_line(e: object) -> str:
    from regista.client import DeploymentEvent

    assert isinstance(e, DeploymentEvent)
    what = f"{e.model}/{e.version}" if e.version is not None else f"{e.model} (ended)"
    return f"{what} in {e.environment} from {when(e.at)} (recorded by {e.recorded_by})"


@deploy_app.command("record")
def record(ctx: typer.Context, ref: RefArg, environment: EnvArg, at: AtOpt = None,
           note: NoteOpt = "", as_json: JsonOpt = False) -> None:
    """Record that MODEL_REF serves in ENV from --at (default now)."""
    event = get_client(ctx).record_deployment(ref, environment, at=at, note=note)
    if as_json:
        print_json(event.raw)
    else:
        typer.echo(_event_line(event))


@deploy_app.command("end")
def end(ctx: typer.Context, model: ModelArg, environment: EnvArg, at: AtOpt = None,
        note: NoteOpt = "", as_json: JsonOpt = False) -> None:
    """Record that MODEL stopped serving in ENV at --at (default now)."""
    event = get_client(ctx).end_deployment(model, environment, at=at, note=note)
    if as_json:
        print_json(event.raw)
    else:
        typer.echo(_event_line(event))


@deployments_app.command("at")
def served_at(ctx: typer.Context, environment: EnvArg, time: TimeOpt = None,
              as_json: JsonOpt = False) -> None:
    """What served in ENV at --time (default now): one line per model."""
    items = get_client(ctx).deployed_at(environment, time)
    if as_json:
        print_json([d.raw for d in items])
        return
    print_table(["MODEL", "VERSION", "STAGE", "SINCE", "RECORDED BY", "DIGEST"],
                ([d.model, d.version, d.stage, when(d.since), d.recorded_by, d.digest[:16]]
                 for d in items),
                empty=f"nothing served in {environment} at {time or 'this moment'}")


@deployments_app.command("served")
def served(ctx: typer.Context, environment: EnvArg, model: ModelArg, time: TimeOpt = None,
           as_json: JsonOpt = False) -> None:
    """Which version of MODEL served in ENV at --time, who approved it, on what evidence."""
    a = get_client(ctx).served(environment, model, time)
    if as_json:
        print_json(a.raw)
        return
    if not a.serving:
        typer.echo(f"{model} was not serving in {environment} at {when(a.at)}")
        return
    print_fields([
        ("version", a.ref), ("digest", a.digest), ("serving since", when(a.since)),
        ("recorded by", a.recorded_by), ("stage then", a.stage_at),
        ("approved by", ", ".join(a.approved_by) or "-"),
    ])
    for t in a.transitions:
        checks = ", ".join(f"{c.get('check')}={'pass' if c.get('passed') else 'FAIL'}"
                           for c in t.get("checks", []))
        typer.echo(f"  {t['from_stage']} → {t['to_stage']} (request {t['request_id']}, "
                   f"by {t['requested_by']}): {t['justification']}")
        if checks:
            typer.echo(f"    checks: {checks}")
        for x in t.get("approvals", []):
            typer.echo(f"    {x['decision']} by {x['approver']}: {x['comment']}")
    for s in a.stage_history:
        if s.get("break_glass"):
            typer.echo(f"  BREAK-GLASS → {s['to_stage']} by {s['actor']}: {s['reason']}")


@deployments_app.command("timeline")
def timeline(ctx: typer.Context, environment: EnvArg,
             since: Annotated[str | None, typer.Option("--since")] = None,
             until: Annotated[str | None, typer.Option("--until")] = None,
             model: Annotated[str | None, typer.Option("--model")] = None,
             limit: LimitOpt = 50, as_json: JsonOpt = False) -> None:
    """Every deployment event of ENV, newest first."""
    events = list(get_client(ctx).timeline(environment, since=since, until=until, model=model,
                                           limit=limit or None))
    if as_json:
        print_json([e.raw for e in events])
        return
    print_table(["AT", "MODEL", "VERSION", "PREVIOUS", "RECORDED BY", "NOTE"],
                ([when(e.at), e.model, "ended" if e.version is None else e.version,
                  e.previous_version, e.recorded_by, e.note] for e in events),
                empty=f"no deployments recorded in {environment}")


@deployments_app.command("version")
def version_deployments(ctx: typer.Context, ref: RefArg, as_json: JsonOpt = False) -> None:
    """Where and when MODEL_REF served."""
    client = get_client(ctx)
    v = client.get_version(ref)
    spans = client.version_deployments(v.model, v.version)
    if as_json:
        print_json([s.raw for s in spans])
        return
    print_table(["ENVIRONMENT", "FROM", "UNTIL", "RECORDED BY"],
                ([s.environment, when(s.start), when(s.end) if s.end else "now", s.recorded_by]
                 for s in spans),
                empty=f"{v.model}/{v.version} never served anywhere")


@deployments_app.command("drift")
def drift(ctx: typer.Context,
          environment: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
          window: Annotated[int | None, typer.Option(
              "--window", min=1, help="Observations older than this many seconds are stale "
              "(default 3600).")] = None,
          as_json: JsonOpt = False) -> None:
    """Recorded deployments against what serving systems report; exit status 1 on drift."""
    report = get_client(ctx).drift(environment, window_seconds=window)
    if as_json:
        print_json(report.raw)
    else:
        rows = [(e["environment"], d["kind"],
                 f"{d['model']}/{d['version']}" if d.get("model") else "-",
                 d.get("expected_version"), d["digest"][:16], ", ".join(d.get("instances", [])))
                for e in report.environments for d in e["drift"]]
        print_table(["ENVIRONMENT", "DRIFT", "VERSION", "RECORDED", "DIGEST", "INSTANCES"], rows,
                    empty=f"in sync ({len(report.environments)} environment(s), "
                          f"window {report.window_seconds}s)")
    if not report.in_sync:
        raise typer.Exit(1)


def observe(ctx: typer.Context, environment: EnvArg,
            digest: Annotated[str, typer.Argument(help="sha256 of the version serving.",
                                                  metavar="DIGEST")],
            at: AtOpt = None,
            instance: Annotated[str, typer.Option("--instance", help="Which replica saw it.")] = "",
            as_json: JsonOpt = False) -> None:
    """Report that DIGEST is serving in ENV (as a serving system would)."""
    o = get_client(ctx).observe(environment, digest, at=at, instance=instance)
    if as_json:
        print_json(o.raw)
    else:
        typer.echo(f"observed {o.digest[:16]}… in {o.environment} at {when(o.observed_at)}")


def install(app: typer.Typer) -> None:
    """Add ``deploy``, ``deployments`` and ``observe`` to the root app."""
    app.add_typer(deploy_app, name="deploy")
    app.add_typer(deployments_app, name="deployments")
    app.command("observe")(observe)
