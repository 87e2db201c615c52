"""``regista hygiene``: the debt report, garbage collection, blob verification."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from regista.cli._common import JsonOpt, get_client, human_size, print_json, print_table

hygiene_app = typer.Typer(help="Registry hygiene: leftovers, stale data, integrity.",
                          no_args_is_help=True)


def _refs(failure: dict[str, Any]) -> str:
    refs = [f"{v.get('model')}/{v.get('version')}" for v in failure.get("versions") or []]
    return ", ".join(dict.fromkeys(refs)) or "(no version)"


@hygiene_app.command("report")
def report(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option(
        "--limit", min=1, max=100, help="Longest list per section (server default 10).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the hygiene debt: orphaned blobs, stale uploads, superseded and unverified versions."""
    body = get_client(ctx).hygiene_report(limit=limit).raw
    if as_json:
        print_json(body)
        return
    o, u = body["orphaned_blobs"], body["stale_uploads"]
    s, v = body["superseded_versions"], body["unverified_versions"]
    f = body["verification_failures"]
    typer.echo(f"orphaned blobs:         {o['count']} ({human_size(o['bytes'])})")
    typer.echo(f"stale uploads:          {u['count']} ({human_size(u['bytes'])} declared; "
               f"older than {u['expiry_seconds']} s)")
    typer.echo(f"superseded, unarchived: {s['count']} version(s) below the newest "
               f"{s['production_stage']} version")
    typer.echo(f"unverified files:       {v['count']} version(s), {v['blobs']} blob(s) not "
               f"verified within {v['window_seconds']} s")
    checked = f["checked_at"] or "never"
    typer.echo(f"verification failures:  {f['count']} (last verification: {checked})")
    if s["by_model"]:
        typer.echo("")
        typer.echo("Superseded but not archived, by model:")
        print_table(("MODEL", "VERSIONS"), ((m["model"], m["count"]) for m in s["by_model"]),
                    empty="")
    if v["by_model"]:
        typer.echo("")
        typer.echo("Versions with unverified files, by model:")
        print_table(("MODEL", "VERSIONS"), ((m["model"], m["count"]) for m in v["by_model"]),
                    empty="")
    if f["items"]:
        typer.echo("")
        typer.echo("Missing or corrupt blobs:")
        print_table(("DIGEST", "PROBLEM", "VERSIONS"),
                    ((i["digest"][:16] + "…", i["problem"], _refs(i)) for i in f["items"]),
                    empty="")


@hygiene_app.command("gc")
def gc(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would be removed; remove nothing.")] = False,
    grace: Annotated[int | None, typer.Option(
        "--grace", min=0, help="Keep orphaned blobs younger than this many seconds "
        "(server default 86400).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete orphaned blobs older than the grace period, and stale uploads."""
    body = get_client(ctx).hygiene_gc(dry_run=dry_run, grace_seconds=grace).raw
    if as_json:
        print_json(body)
        return
    verb = "would remove" if body["dry_run"] else "removed"
    typer.echo(f"{verb} {body['blobs']} orphaned blob(s) ({human_size(body['bytes_freed'])}), "
               f"{body['uploads']} stale upload(s), {body['upload_files']} stray upload file(s)"
               + ("" if body["staging_files"] is None
                  else f", {body['staging_files']} staging file(s)"))
    if body["skipped"]:
        typer.echo(f"kept {body['skipped']} blob(s) a concurrent registration was using")
    if body["truncated"]:
        typer.echo("more remains: run the collection again")


@hygiene_app.command("verify-blobs")
def verify_blobs(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option(
        "--limit", min=1, help="Re-hash at most this many blobs (default: all).")] = None,
    older_than: Annotated[int | None, typer.Option(
        "--older-than", min=0, help="Skip blobs verified within this many seconds.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-hash stored blobs; exit status 1 if any is missing or corrupt."""
    result = get_client(ctx).hygiene_verify_blobs(limit=limit, older_than_seconds=older_than)
    body = result.raw
    if as_json:
        print_json(body)
    else:
        typer.echo(f"checked {body['checked']} blob(s): {body['ok']} ok, "
                   f"{len(body['missing'])} missing, {len(body['corrupt'])} corrupt"
                   + (f", {body['errors']} unreadable" if body["errors"] else ""))
    if result.failed:
        for failure in body["missing"] + body["corrupt"]:
            typer.echo(f"{failure['problem']}: {failure['digest']} ({_refs(failure)})", err=True)
        raise typer.Exit(1)


def install(app: typer.Typer) -> None:
    """Add ``regista hygiene`` to the root app."""
    app.add_typer(hygiene_app, name="hygiene")
