"""Core registry commands: models, register, versions, pull, alias, search, info."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from regista.cli._common import (
    JsonOpt,
    LimitOpt,
    OrderByOpt,
    fmt_tags,
    get_client,
    human_size,
    merge_tags,
    parse_pairs,
    print_fields,
    print_json,
    print_table,
    when,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from regista.client import AliasEvent, Model, Version

models_app = typer.Typer(help="Models: named families of versions.", no_args_is_help=True)
versions_app = typer.Typer(help="Versions of a model.", no_args_is_help=True)
alias_app = typer.Typer(help="Aliases: named, movable pointers to versions.", no_args_is_help=True)
search_app = typer.Typer(help="Search with the filter language (see docs/search.md).",
                         no_args_is_help=True)

TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="Tag KEY=VALUE (repeatable).")]
UntagOpt = Annotated[list[str] | None, typer.Option("--untag", help="Remove tag KEY (repeatable).")]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="Description text.")]
FilterOpt = Annotated[str | None, typer.Option("--filter", help='Filter, e.g. "tags.team = \'risk\'".')]
RefArg = Annotated[str, typer.Argument(help="Version: NAME/7, NAME@alias or NAME@latest.",
                                       metavar="MODEL_REF")]
ModelArg = Annotated[str, typer.Argument(help="Model name.", metavar="MODEL")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="Show a progress bar (on a terminal).")]


def _limit(limit: int) -> int | None:
    return limit or None


# ---------------------------------------------------------------------------- output


def _model_fields(m: Model) -> None:
    print_fields([
        ("name", m.name),
        ("normalized", m.normalized_name),
        ("description", m.description),
        ("owner team", m.owner_team),
        ("risk tier", m.risk_tier),
        ("tags", fmt_tags(m.tags)),
        ("archived", "yes" if m.archived else "no"),
        ("latest version", m.latest_version),
        ("versions", m.version_count),
        ("aliases", ", ".join(f"{a}→{n}" for a, n in sorted(m.aliases.items())) or "-"),
        ("next review", when(m.next_review_at) if m.next_review_at else None),
        ("created", f"{when(m.created_at)} by {m.created_by}"),
        ("updated", when(m.updated_at)),
    ])


def _models_table(models: Iterable[Model]) -> None:
    print_table(
        ["NAME", "LATEST", "VERSIONS", "OWNER", "TAGS", "UPDATED"],
        ([m.name + (" (archived)" if m.archived else ""), m.latest_version, m.version_count,
          m.owner_team, fmt_tags(m.tags), when(m.updated_at)] for m in models),
        empty="no models",
    )


def _version_fields(v: Version) -> None:
    meta = v.metadata
    code = meta.get("training_code") or {}
    data = meta.get("training_data") or {}
    print_fields([
        ("version", v.ref),
        ("digest", v.digest),
        ("stage", v.stage),
        ("description", v.description),
        ("tags", fmt_tags(v.tags)),
        ("aliases", ", ".join(v.aliases) or "-"),
        ("framework", meta.get("framework")),
        ("training code", " ".join(str(x) for x in (code.get("repository"), code.get("commit"))
                                   if x) or None),
        ("training data", data.get("uri")),
        ("metrics", ", ".join(f"{k}={val}" for k, val in sorted(v.metrics.items())) or "-"),
        ("parent", v.parent),
        ("files", f"{v.file_count} ({human_size(v.total_size)})"),
        ("created", f"{when(v.created_at)} by {v.created_by}"),
    ])
    if v.files:
        typer.echo("")
        print_table(["PATH", "ROLE", "SIZE", "SHA256"],
                    ([f.path, f.role, human_size(f.size), f.sha256[:16]] for f in v.files),
                    empty="")


def _versions_table(versions: Iterable[Version]) -> None:
    print_table(
        ["VERSION", "STAGE", "DIGEST", "FILES", "SIZE", "ALIASES", "CREATED"],
        ([v.ref, v.stage, v.digest[:12], v.file_count, human_size(v.total_size),
          ", ".join(v.aliases) or "-", when(v.created_at)] for v in versions),
        empty="no versions",
    )


def _alias_table(events: Iterable[AliasEvent]) -> None:
    print_table(
        ["AT", "ALIAS", "VERSION", "ACTOR"],
        ([when(e.at), e.alias, e.version if e.version is not None else "(deleted)", e.actor]
         for e in events),
        empty="no alias moves",
    )


# ---------------------------------------------------------------------------- models


@models_app.command("create")
def models_create(
    ctx: typer.Context,
    name: ModelArg,
    description: Annotated[str, typer.Option(help="Description text.")] = "",
    owner_team: Annotated[str | None, typer.Option(help="Owning team.")] = None,
    risk_tier: Annotated[str | None, typer.Option(help="Risk tier (per policy).")] = None,
    tag: TagOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a model."""
    m = get_client(ctx).create_model(name, description=description, owner_team=owner_team,
                                  risk_tier=risk_tier, tags=parse_pairs(tag))
    if as_json:
        print_json(m.raw)
    else:
        typer.echo(f"created model {m.name}")


@models_app.command("list")
def models_list(
    ctx: typer.Context,
    filter: FilterOpt = None,
    order_by: OrderByOpt = None,
    limit: LimitOpt = 100,
    as_json: JsonOpt = False,
) -> None:
    """List models (optionally filtered)."""
    models = get_client(ctx).list_models(filter, order_by=order_by, limit=_limit(limit))
    if as_json:
        print_json([m.raw for m in models])
    else:
        _models_table(models)


@models_app.command("show")
def models_show(ctx: typer.Context, name: ModelArg, as_json: JsonOpt = False) -> None:
    """Show one model."""
    m = get_client(ctx).get_model(name)
    if as_json:
        print_json(m.raw)
    else:
        _model_fields(m)


@models_app.command("update")
def models_update(
    ctx: typer.Context,
    name: ModelArg,
    description: DescriptionOpt = None,
    owner_team: Annotated[str | None, typer.Option(help="Owning team.")] = None,
    risk_tier: Annotated[str | None, typer.Option(help="Risk tier (per policy).")] = None,
    tag: TagOpt = None,
    untag: UntagOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a model's description, owner team, risk tier or tags."""
    client = get_client(ctx)
    tags = merge_tags(client.get_model(name).tags, tag, untag) if (tag or untag) else None
    m = client.update_model(name, description=description, owner_team=owner_team,
                            risk_tier=risk_tier, tags=tags)
    if as_json:
        print_json(m.raw)
    else:
        typer.echo(f"updated model {m.name}")


@models_app.command("archive")
def models_archive(ctx: typer.Context, name: ModelArg, as_json: JsonOpt = False) -> None:
    """Archive a model (its versions stay; no new ones can be registered)."""
    m = get_client(ctx).archive_model(name)
    if as_json:
        print_json(m.raw)
    else:
        typer.echo(f"archived model {m.name}")


# ---------------------------------------------------------------------------- register / pull


def register(
    ctx: typer.Context,
    model: ModelArg,
    path: Annotated[Path, typer.Argument(help="A model directory or a single file.",
                                         metavar="PATH")],
    metadata: Annotated[Path | None, typer.Option(
        "--metadata", help="Provenance metadata: a JSON or YAML file.", metavar="FILE")] = None,
    alias: Annotated[list[str] | None, typer.Option(
        "--alias", help="Point this alias at the new version (repeatable).")] = None,
    tag: TagOpt = None,
    description: Annotated[str, typer.Option(help="Description of the version.")] = "",
    create_model: Annotated[bool, typer.Option(
        "--create-model", help="Create the model if it does not exist.")] = False,
    role: Annotated[list[str] | None, typer.Option(
        "--role", help="File role PATH_OR_GLOB=ROLE (model, config, eval_report, model_card, "
        "other); repeatable. Default: guessed from file names.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(
        help="Replay key (default: derived from the files and metadata).")] = None,
    progress: ProgressOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Register a directory (or file) as the next version of MODEL, atomically.

    Files the registry already holds are not uploaded again. Prints the new version and
    its digest.
    """
    v = get_client(ctx).register(
        model, path, metadata=metadata, tags=parse_pairs(tag), aliases=alias or [],
        description=description, create_model=create_model,
        roles=parse_pairs(role, "role"), idempotency_key=idempotency_key, progress=progress,
    )
    if as_json:
        print_json(v.raw)
    else:
        typer.echo(f"registered {v.ref} (version {v.version}) digest {v.digest}")


def pull(
    ctx: typer.Context,
    ref: RefArg,
    dest: Annotated[Path, typer.Argument(help="Directory to write the files into.",
                                         metavar="DEST")],
    file: Annotated[str | None, typer.Option(
        "--file", help="Download only this file of the version.")] = None,
    progress: ProgressOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Download a version's files into DEST, verifying every sha256."""
    client = get_client(ctx)
    if file is not None:
        dest.mkdir(parents=True, exist_ok=True)
        written = client.download_file(ref, file, dest, progress=progress)
        v = client.get_version(ref)
        entry = v.file(file)
        if as_json:
            print_json({"ref": v.ref, "path": entry.path, "sha256": entry.sha256, "size": entry.size,
                        "written": str(written)})
        else:
            typer.echo(f"pulled {entry.path} of {v.ref} to {written} (sha256 verified)")
        return
    v = client.pull(ref, dest, progress=progress)
    if as_json:
        print_json({"ref": v.ref, "digest": v.digest, "dest": str(dest),
                    "files": [f.to_json() for f in v.files]})
    else:
        typer.echo(f"pulled {v.ref}: {v.file_count} files, {human_size(v.total_size)} into {dest} "
                   "(sha256 verified)")


def info(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show which server the CLI talks to and what it runs on."""
    from regista import __version__

    client = get_client(ctx)
    i = client.info()
    if as_json:
        print_json({"url": client.url, "client_version": __version__, **i.raw})
    else:
        print_fields([("url", client.url), ("server version", i.version),
                      ("client version", __version__), ("database", i.database),
                      ("blob store", i.blob_store), ("auth mode", i.auth_mode)])


# ---------------------------------------------------------------------------- versions


@versions_app.command("list")
def versions_list(
    ctx: typer.Context,
    model: ModelArg,
    filter: FilterOpt = None,
    order_by: OrderByOpt = None,
    limit: LimitOpt = 100,
    as_json: JsonOpt = False,
) -> None:
    """List the versions of MODEL, newest first."""
    versions = get_client(ctx).list_versions(model, filter, order_by=order_by, limit=_limit(limit))
    if as_json:
        print_json([v.raw for v in versions])
    else:
        _versions_table(versions)


@versions_app.command("show")
def versions_show(
    ctx: typer.Context,
    ref: RefArg,
    as_of: Annotated[str | None, typer.Option(
        help="Resolve an alias as it was at this ISO-8601 instant.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one version with its files and provenance."""
    v = get_client(ctx).get_version(ref, as_of=as_of)
    if as_json:
        print_json(v.raw)
    else:
        _version_fields(v)


@versions_app.command("update")
def versions_update(
    ctx: typer.Context,
    ref: RefArg,
    description: DescriptionOpt = None,
    tag: TagOpt = None,
    untag: UntagOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a version's description or tags (files and provenance are frozen)."""
    client = get_client(ctx)
    tags = merge_tags(client.get_version(ref).tags, tag, untag) if (tag or untag) else None
    v = client.update_version(ref, description=description, tags=tags)
    if as_json:
        print_json(v.raw)
    else:
        typer.echo(f"updated {v.ref}")


# ---------------------------------------------------------------------------- aliases


@alias_app.command("set")
def alias_set(
    ctx: typer.Context,
    model: ModelArg,
    alias: Annotated[str, typer.Argument(help="Alias name, e.g. champion.", metavar="ALIAS")],
    version: Annotated[int, typer.Argument(help="Version number.", min=1, metavar="VERSION")],
    as_json: JsonOpt = False,
) -> None:
    """Point ALIAS of MODEL at VERSION (every move is kept)."""
    e = get_client(ctx).set_alias(model, alias, version)
    if as_json:
        print_json(e.raw)
    else:
        typer.echo(f"{e.model}@{e.alias} → {e.version}")


@alias_app.command("delete")
def alias_delete(
    ctx: typer.Context,
    model: ModelArg,
    alias: Annotated[str, typer.Argument(help="Alias name.", metavar="ALIAS")],
) -> None:
    """Delete ALIAS of MODEL (its history is kept)."""
    get_client(ctx).delete_alias(model, alias)
    typer.echo(f"deleted {model}@{alias}")


@alias_app.command("show")
def alias_show(
    ctx: typer.Context,
    model: ModelArg,
    alias: Annotated[str, typer.Argument(help="Alias name.", metavar="ALIAS")],
    as_of: Annotated[str | None, typer.Option(
        help="Where the alias pointed at this ISO-8601 instant.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the version ALIAS of MODEL points at (now or --as-of)."""
    v = get_client(ctx).get_alias(model, alias, as_of=as_of)
    if as_json:
        print_json(v.raw)
    else:
        _version_fields(v)


@alias_app.command("history")
def alias_history(
    ctx: typer.Context,
    model: ModelArg,
    alias: Annotated[str | None, typer.Option("--alias", help="Only this alias.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest moves to show.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Every alias move of MODEL, newest first."""
    events = get_client(ctx).alias_history(model, alias, limit=limit)
    if as_json:
        print_json([e.raw for e in events])
    else:
        _alias_table(events)


# ---------------------------------------------------------------------------- search


@search_app.command("models")
def search_models(
    ctx: typer.Context,
    filter: Annotated[str, typer.Argument(help='Filter, e.g. "tags.team = \'risk\'".',
                                          metavar="FILTER")],
    order_by: OrderByOpt = None,
    limit: LimitOpt = 100,
    as_json: JsonOpt = False,
) -> None:
    """Models matching FILTER."""
    models = get_client(ctx).search_models(filter, order_by=order_by, limit=_limit(limit))
    if as_json:
        print_json([m.raw for m in models])
    else:
        _models_table(models)


@search_app.command("versions")
def search_versions(
    ctx: typer.Context,
    filter: Annotated[str, typer.Argument(help='Filter, e.g. "metrics.auc > 0.9".',
                                          metavar="FILTER")],
    order_by: OrderByOpt = None,
    limit: LimitOpt = 100,
    as_json: JsonOpt = False,
) -> None:
    """Versions of all models matching FILTER."""
    versions = get_client(ctx).search_versions(filter, order_by=order_by, limit=_limit(limit))
    if as_json:
        print_json([v.raw for v in versions])
    else:
        _versions_table(versions)


def install(app: typer.Typer) -> None:
    """Add the core registry commands to the root ``regista`` app."""
    app.add_typer(models_app, name="models")
    app.command("register")(register)
    app.add_typer(versions_app, name="versions")
    app.command("pull")(pull)
    app.add_typer(alias_app, name="alias")
    app.add_typer(search_app, name="search")
    app.command("info")(info)
