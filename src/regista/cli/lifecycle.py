"""``regista policy``, ``transition``, ``break-glass``, ``history`` and ``review``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from regista.cli._common import (
    EXIT_ERROR,
    JsonOpt,
    LimitOpt,
    get_client,
    print_fields,
    print_json,
    print_table,
    when,
)
from regista.errors import Invalid

if TYPE_CHECKING:
    from regista.client import TransitionRequest

policy_app = typer.Typer(help="Policy as code: validate, apply, show.", no_args_is_help=True)
transition_app = typer.Typer(help="Stage transitions and their approvals.", no_args_is_help=True)
review_app = typer.Typer(help="Periodic model reviews.", no_args_is_help=True)

RefArg = Annotated[str, typer.Argument(help="Version: NAME/7 or NAME@alias.", metavar="MODEL_REF")]
StageArg = Annotated[str, typer.Argument(help="Target stage (a stage of the policy).",
                                         metavar="STAGE")]
IdArg = Annotated[int, typer.Argument(help="Transition request id.", metavar="ID", min=1)]
FileArg = Annotated[Path, typer.Argument(help="Policy YAML file.", metavar="FILE",
                                         exists=True, dir_okay=False, readable=True)]


def _print_policy_errors(source: str, exc: Invalid) -> None:
    errors = exc.details.get("errors")
    if not isinstance(errors, list) or not errors:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        return
    typer.echo(f"error: {source}: the policy is not valid ({len(errors)} problem"
               f"{'s' if len(errors) > 1 else ''})", err=True)
    for e in errors:
        where = f"{source}:{e.get('line', '?')}"
        field = f" {e['field']}:" if e.get("field") else ""
        typer.echo(f"  {where}:{field} {e.get('message', '')}", err=True)


# --------------------------------------------------------------------------- policy


@policy_app.command("validate")
def validate(file: FileArg) -> None:
    """Check a policy file locally (no server), reporting each problem with its line."""
    from regista.domain.policy import load_policy

    try:
        policy = load_policy(file.read_text("utf-8"))
    except Invalid as exc:
        _print_policy_errors(str(file), exc)
        raise typer.Exit(EXIT_ERROR) from None
    typer.echo(f"{file}: valid ({len(policy.stages)} stages, "
               f"{len(policy.document.transitions)} transitions)")


@policy_app.command("apply")
def apply(ctx: typer.Context, file: FileArg, as_json: JsonOpt = False) -> None:
    """Apply a policy file; an identical policy is a no-op. Every change is versioned and audited."""
    try:
        result = get_client(ctx).apply_policy(file)
    except Invalid as exc:
        if not isinstance(exc.details.get("errors"), list):
            raise
        _print_policy_errors(str(file), exc)
        raise typer.Exit(EXIT_ERROR) from None
    if as_json:
        print_json(result.raw)
    elif result.changed:
        typer.echo(f"policy version {result.version} applied (sha256 {result.digest[:16]})")
        envs = result.environments
        for name in envs.get("created", []):
            typer.echo(f"  environment {name}: created")
        for change in envs.get("updated", []):
            typer.echo(f"  environment {change['name']}: min_stage "
                       f"{change['before']['min_stage']} → {change['after']['min_stage']}")
    else:
        typer.echo(f"policy unchanged (version {result.version} is identical)")


@policy_app.command("show")
def show(
    ctx: typer.Context,
    version: Annotated[int | None, typer.Option("--version", min=0,
                                                help="An applied version (0: the default).")] = None,
    document: Annotated[bool, typer.Option("--document", help="Print the YAML document.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The policy in effect (or --version N): stages, transitions, history."""
    info = get_client(ctx).get_policy(version)
    if as_json:
        print_json({**info.raw, "history": [
            {"version": h.version, "digest": h.digest, "applied_at": h.applied_at,
             "applied_by": h.applied_by} for h in info.history]})
        return
    if document:
        typer.echo(info.document, nl=False)
        return
    print_fields([
        ("version", f"{info.version}" + (" (embedded default)" if info.embedded_default else "")),
        ("digest", info.digest), ("applied", when(info.applied_at)), ("applied by", info.applied_by),
    ])
    p = info.policy
    stages = [s["name"] + (" (single)" if s.get("single_in_stage") else "")
              for s in p.get("stages", [])]
    typer.echo("stages:  " + " → ".join(stages))
    print_table(
        ["FROM", "TO", "APPROVALS", "CHECKS", "ARCHIVES SUPERSEDED"],
        ([t["from"], t["to"],
          f"{t['approvals']['count']} of {t['approvals']['role']}" if t["approvals"]["count"] else "-",
          ", ".join(t.get("checks", [])) or "-", "yes" if t.get("archive_superseded") else "-"]
         for t in p.get("transitions", [])),
        empty="no transitions allowed",
    )
    if info.history:
        typer.echo("history: " + ", ".join(f"v{h.version} {when(h.applied_at)} by {h.applied_by}"
                                          for h in info.history[:10]))


# --------------------------------------------------------------------------- transitions


def _print_request(r: TransitionRequest) -> None:
    print_fields([
        ("request", r.id), ("version", r.ref), ("move", f"{r.from_stage} → {r.to_stage}"),
        ("status", r.status), ("requested", f"{when(r.requested_at)} by {r.requested_by}"),
        ("justification", r.justification),
        ("approvals", f"{r.approval_count}/{r.required_approvals}"
         + (f" (role {r.approver_role})" if r.approver_role else "")
         if r.required_approvals is not None else "not allowed by the current policy"),
    ])
    for c in r.checks:
        mark = "pass" if c.passed else "FAIL"
        typer.echo(f"  [{mark}] {c.check}" + (f": {c.detail}" if c.detail else ""))
    for a in r.approvals:
        typer.echo(f"  {a.decision} by {a.approver} at {when(a.at)}"
                   + (f": {a.comment}" if a.comment else ""))
    for m in r.missing:
        typer.echo(f"  missing: {m}")


@transition_app.command("request")
def request(
    ctx: typer.Context, ref: RefArg, stage: StageArg,
    justification: Annotated[str, typer.Option("--justification", "-j",
                                               help="Why this move (required).")],
    as_json: JsonOpt = False,
) -> None:
    """Request moving MODEL_REF to STAGE; shows the checks and what is missing."""
    r = get_client(ctx).request_transition(ref, stage, justification)
    if as_json:
        print_json(r.raw)
    else:
        _print_request(r)


@transition_app.command("approve")
def approve(
    ctx: typer.Context, request_id: IdArg,
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why you approve.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Approve request ID (never your own); it applies once approvals suffice."""
    r = get_client(ctx).approve_transition(request_id, comment)
    if as_json:
        print_json(r.raw)
    else:
        _print_request(r)


@transition_app.command("reject")
def reject(
    ctx: typer.Context, request_id: IdArg,
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why (required).")],
    as_json: JsonOpt = False,
) -> None:
    """Reject request ID with a comment."""
    r = get_client(ctx).reject_transition(request_id, comment)
    if as_json:
        print_json(r.raw)
    else:
        _print_request(r)


@transition_app.command("cancel")
def cancel(ctx: typer.Context, request_id: IdArg, as_json: JsonOpt = False) -> None:
    """Withdraw your own pending request ID."""
    r = get_client(ctx).cancel_transition(request_id)
    if as_json:
        print_json(r.raw)
    else:
        _print_request(r)


@transition_app.command("show")
def show_request(ctx: typer.Context, request_id: IdArg, as_json: JsonOpt = False) -> None:
    """Request ID with its checks and approvals."""
    r = get_client(ctx).get_transition(request_id)
    if as_json:
        print_json(r.raw)
    else:
        _print_request(r)


@transition_app.command("list")
def list_requests(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(
        "--status", help="pending | applied | rejected | cancelled | superseded")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only this model.")] = None,
    limit: LimitOpt = 50,
    as_json: JsonOpt = False,
) -> None:
    """Transition requests, newest first (--status pending: the approvals queue)."""
    items = list(get_client(ctx).list_transitions(status=status, model=model,
                                                  limit=limit or None))
    if as_json:
        print_json([r.raw for r in items])
        return
    print_table(
        ["ID", "VERSION", "MOVE", "STATUS", "APPROVALS", "CHECKS", "REQUESTED BY", "REQUESTED"],
        ([r.id, r.ref, f"{r.from_stage} → {r.to_stage}", r.status,
          f"{r.approval_count}/{r.required_approvals if r.required_approvals is not None else '-'}",
          "pass" if r.checks_passed else "FAIL", r.requested_by, when(r.requested_at)]
         for r in items),
        empty="no transition requests",
    )


def break_glass(
    ctx: typer.Context, ref: RefArg, stage: StageArg,
    reason: Annotated[str, typer.Option("--reason", help="Mandatory; kept in the audit log.")],
    as_json: JsonOpt = False,
) -> None:
    """Force MODEL_REF into STAGE, bypassing checks and approvals (admins only, audited)."""
    v = get_client(ctx).break_glass(ref, stage, reason)
    if as_json:
        print_json(v.raw)
    else:
        typer.echo(f"BREAK-GLASS: {v.ref} is now in {v.stage} (recorded in the audit log)")


def history(ctx: typer.Context, ref: RefArg, as_json: JsonOpt = False) -> None:
    """Stage history of MODEL_REF: every move, who asked, who approved, on what evidence."""
    events = get_client(ctx).stage_history(ref)
    if as_json:
        print_json([e.raw for e in events])
        return
    for e in events:
        move = f"{e.from_stage} → {e.to_stage}" if e.from_stage else e.to_stage
        flag = "BREAK-GLASS " if e.break_glass else ""
        typer.echo(f"{when(e.at)}  {flag}{move}  by {e.actor}"
                   + (f": {e.reason}" if e.reason and not e.request else ""))
        if e.request is not None:
            r = e.request
            typer.echo(f"    request {r.id} by {r.requested_by}: {r.justification}")
            for c in r.checks:
                typer.echo(f"    [{'pass' if c.passed else 'FAIL'}] {c.check}")
            for a in r.approvals:
                typer.echo(f"    {a.decision}d by {a.approver} at {when(a.at)}"
                           + (f": {a.comment}" if a.comment else ""))


# --------------------------------------------------------------------------- reviews


@review_app.command("overdue")
def overdue(
    ctx: typer.Context,
    at: Annotated[str | None, typer.Option("--at", help="ISO-8601 instant (default: now).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Models past their next review date, most overdue first."""
    models = get_client(ctx).overdue_reviews(at)
    if as_json:
        print_json([m.raw for m in models])
        return
    print_table(["MODEL", "RISK TIER", "OWNER TEAM", "REVIEW DUE"],
                ([m.name, m.risk_tier, m.owner_team, when(m.next_review_at)] for m in models),
                empty="no overdue reviews")


@review_app.command("done")
def reviewed(ctx: typer.Context,
             model: Annotated[str, typer.Argument(help="Model name.", metavar="MODEL")],
             as_json: JsonOpt = False) -> None:
    """Record a periodic review of MODEL; prints the next due date."""
    m = get_client(ctx).mark_reviewed(model)
    if as_json:
        print_json(m.raw)
    else:
        typer.echo(f"{m.name} reviewed; next review due {when(m.next_review_at)}")


def install(app: typer.Typer) -> None:
    """Called from ``cli/main.py``."""
    app.add_typer(policy_app, name="policy")
    app.add_typer(transition_app, name="transition")
    app.add_typer(review_app, name="review")
    app.command("break-glass")(break_glass)
    app.command("history")(history)
