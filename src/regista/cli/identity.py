"""``regista whoami``, ``users``, ``teams``, ``service-accounts``, ``tokens`` and ``roles``.

Bootstrap on a fresh server (still in local single-user mode)::

    regista users create alice --admin --token     # prints alice's first API token, once
    export REGISTA_TOKEN=rgst_…                    # from now on every call needs a token
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from regista.cli._common import JsonOpt, get_client, print_fields, print_json, print_table, when

if TYPE_CHECKING:
    from regista.client import IssuedToken, Principal

users_app = typer.Typer(help="Users (people).", no_args_is_help=True)
teams_app = typer.Typer(help="Teams: their members hold the team's roles.", no_args_is_help=True)
accounts_app = typer.Typer(help="Service accounts (pipelines, serving systems).",
                           no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (rgst_…): scoped, expiring, revocable.",
                         no_args_is_help=True)
roles_app = typer.Typer(help="Role bindings at registry, team or model scope.", no_args_is_help=True)

ModelScope = Annotated[str | None, typer.Option("--model", help="Model scope.")]
TeamScope = Annotated[str | None, typer.Option("--team", help="Team scope.")]
DisplayName = Annotated[str | None, typer.Option("--display-name", help="Name shown in the UI.")]


def _principal_rows(items: list[Principal]) -> None:
    print_table(
        ["name", "kind", "display name", "teams/members", "disabled", "created"],
        [(p.name, p.kind, p.display_name, ", ".join(p.members if p.kind == "team" else p.teams) or "-",
          "yes" if p.disabled else "no", when(p.created_at)) for p in items],
        empty="none",
    )


def _print_issued(issued: IssuedToken) -> None:
    t = issued.token
    typer.echo(f"token {t.prefix} for {t.principal} (expires {when(t.expires_at)})")
    typer.echo("secret (shown once, store it now):")
    typer.echo(issued.secret)


# --------------------------------------------------------------------------- whoami


def whoami(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Who your credentials act as: principal, teams, roles, token restrictions."""
    me = get_client(ctx).whoami()
    if as_json:
        print_json(me.raw)
        return
    if me.local_mode:
        typer.echo("local (single-user mode: no authentication, every permission; "
                   "create a user with `regista users create NAME --admin` to end it)")
        return
    token = me.token or {}
    print_fields([
        ("name", me.name),
        ("kind", me.kind),
        ("teams", ", ".join(me.principal.teams) if me.principal else ""),
        ("roles", "; ".join(f"{g.role}@{g.scope_type}{':' + g.scope if g.scope else ''}"
                            + (f" (via {g.via})" if g.via else "") for g in me.roles) or "none"),
        ("token", f"rgst_{token['token_id']}" if token.get("token_id") else ""),
        ("token scopes", ", ".join(token["scopes"]) if token.get("scopes") is not None else "all"),
        ("token models", ", ".join(token["models"]) if token.get("models") is not None else "all"),
    ])


# --------------------------------------------------------------------------- users


@users_app.command("create")
def users_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
    admin: Annotated[bool, typer.Option("--admin", help="Also grant admin at registry scope.")] = False,
    display_name: DisplayName = None,
    email: Annotated[str | None, typer.Option("--email")] = None,
    set_password: Annotated[bool, typer.Option(
        "--set-password", help="Prompt for a password (for the web UI).")] = False,
    token: Annotated[bool, typer.Option(
        "--token", help="Also issue the user's first API token (printed once).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a user. On a fresh server, `--admin --token` bootstraps the first admin."""
    password = None
    if set_password:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    created = get_client(ctx).create_user(name, display_name=display_name, email=email,
                                          password=password, admin=admin, issue_token=token)
    if as_json:
        print_json(created.user.raw | ({"token": created.token.token.raw | {"secret": created.token.secret}}
                                       if created.token else {}))
        return
    typer.echo(f"created user {created.user.name}" + (" (admin)" if admin else ""))
    if created.token is not None:
        _print_issued(created.token)


@users_app.command("list")
def users_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every user."""
    users = get_client(ctx).list_users()
    if as_json:
        print_json([u.raw for u in users])
        return
    _principal_rows(users)


@users_app.command("disable")
def users_disable(ctx: typer.Context, name: Annotated[str, typer.Argument(help="User name.")],
                  as_json: JsonOpt = False) -> None:
    """Disable a user: its tokens and sessions stop working at once."""
    user = get_client(ctx).disable_user(name)
    if as_json:
        print_json(user.raw)
        return
    typer.echo(f"disabled user {user.name}")


@users_app.command("enable")
def users_enable(ctx: typer.Context, name: Annotated[str, typer.Argument(help="User name.")],
                 as_json: JsonOpt = False) -> None:
    """Re-enable a disabled user."""
    user = get_client(ctx).enable_user(name)
    if as_json:
        print_json(user.raw)
        return
    typer.echo(f"enabled user {user.name}")


# --------------------------------------------------------------------------- teams


@teams_app.command("create")
def teams_create(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Team name.")],
                 display_name: DisplayName = None, as_json: JsonOpt = False) -> None:
    """Create a team."""
    team = get_client(ctx).create_team(name, display_name=display_name)
    if as_json:
        print_json(team.raw)
        return
    typer.echo(f"created team {team.name}")


@teams_app.command("add-member")
def teams_add_member(ctx: typer.Context, team: Annotated[str, typer.Argument(help="Team.")],
                     member: Annotated[str, typer.Argument(help="User or service account.")],
                     as_json: JsonOpt = False) -> None:
    """Add a user or service account to a team."""
    t = get_client(ctx).add_team_member(team, member)
    if as_json:
        print_json(t.raw)
        return
    typer.echo(f"team {t.name}: {', '.join(t.members)}")


@teams_app.command("remove-member")
def teams_remove_member(ctx: typer.Context, team: Annotated[str, typer.Argument(help="Team.")],
                        member: Annotated[str, typer.Argument(help="Member to remove.")],
                        as_json: JsonOpt = False) -> None:
    """Remove a member from a team."""
    t = get_client(ctx).remove_team_member(team, member)
    if as_json:
        print_json(t.raw)
        return
    typer.echo(f"team {t.name}: {', '.join(t.members) or 'no members'}")


@teams_app.command("list")
def teams_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Teams and their members."""
    teams = get_client(ctx).list_teams()
    if as_json:
        print_json([t.raw for t in teams])
        return
    _principal_rows(teams)


# --------------------------------------------------------------------------- service accounts


@accounts_app.command("create")
def accounts_create(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Account name.")],
                    display_name: DisplayName = None, as_json: JsonOpt = False) -> None:
    """Create a service account (then `regista tokens create --for NAME`)."""
    account = get_client(ctx).create_service_account(name, display_name=display_name)
    if as_json:
        print_json(account.raw)
        return
    typer.echo(f"created service account {account.name}")


@accounts_app.command("list")
def accounts_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every service account."""
    accounts = get_client(ctx).list_service_accounts()
    if as_json:
        print_json([a.raw for a in accounts])
        return
    _principal_rows(accounts)


@accounts_app.command("disable")
def accounts_disable(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Account name.")],
                     as_json: JsonOpt = False) -> None:
    """Disable a service account: its tokens stop working at once."""
    account = get_client(ctx).disable_service_account(name)
    if as_json:
        print_json(account.raw)
        return
    typer.echo(f"disabled service account {account.name}")


# --------------------------------------------------------------------------- tokens


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="A label for the token.")] = "default",
    scope: Annotated[list[str] | None, typer.Option(
        "--scope", help="Narrow to a permission (model:read) or role (viewer); repeatable.")] = None,
    model: Annotated[list[str] | None, typer.Option(
        "--model", help="Restrict to a model; repeatable.")] = None,
    expires_in_days: Annotated[int | None, typer.Option(
        "--expires-in-days", min=1, help="Lifetime (default and maximum: the server's limit).")] = None,
    for_principal: Annotated[str | None, typer.Option(
        "--for", help="Issue it for this user or service account (admin).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue an API token; the secret is printed once and never stored by the server."""
    issued = get_client(ctx).create_token(name, scopes=scope or None, models=model or None,
                                          expires_in_days=expires_in_days, principal=for_principal)
    if as_json:
        print_json(issued.token.raw | {"secret": issued.secret})
        return
    _print_issued(issued)


@tokens_app.command("list")
def tokens_list(
    ctx: typer.Context,
    all_principals: Annotated[bool, typer.Option("--all", help="Everyone's tokens (admin).")] = False,
    principal: Annotated[str | None, typer.Option("--principal", help="One principal's (admin).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Your tokens (never their secrets)."""
    tokens = get_client(ctx).list_tokens(all_principals=all_principals, principal=principal)
    if as_json:
        print_json([t.raw for t in tokens])
        return
    print_table(
        ["token", "principal", "name", "scopes", "models", "expires", "last used", "revoked"],
        [(t.prefix, t.principal, t.name, ", ".join(t.scopes) if t.scopes is not None else "all",
          ", ".join(t.models) if t.models is not None else "all", when(t.expires_at),
          when(t.last_used_at), when(t.revoked_at)) for t in tokens],
        empty="no tokens",
    )


@tokens_app.command("revoke")
def tokens_revoke(ctx: typer.Context,
                  token_id: Annotated[str, typer.Argument(help="Token id or rgst_<id> prefix.")],
                  as_json: JsonOpt = False) -> None:
    """Revoke a token: refused on every server from the next request on."""
    t = get_client(ctx).revoke_token(token_id)
    if as_json:
        print_json(t.raw)
        return
    typer.echo(f"revoked {t.prefix} ({t.principal})")


# --------------------------------------------------------------------------- roles


def _scope_text(scope_type: str, scope: str) -> str:
    return "registry" if scope_type == "registry" else f"{scope_type} {scope}"


@roles_app.command("grant")
def roles_grant(ctx: typer.Context,
                principal: Annotated[str, typer.Argument(help="User, team or service account.")],
                role: Annotated[str, typer.Argument(
                    help="viewer | contributor | approver | maintainer | admin")],
                model: ModelScope = None, team: TeamScope = None, as_json: JsonOpt = False) -> None:
    """Grant a role at registry scope (default), or at --model or --team scope."""
    b = get_client(ctx).grant_role(principal, role, model=model, team=team)
    if as_json:
        print_json(b.raw)
        return
    typer.echo(f"{b.principal} is {b.role} at {_scope_text(b.scope_type, b.scope)} (binding {b.id})")


@roles_app.command("revoke")
def roles_revoke(ctx: typer.Context,
                 principal: Annotated[str, typer.Argument(help="User, team or service account.")],
                 role: Annotated[str, typer.Argument(help="The role to take away.")],
                 model: ModelScope = None, team: TeamScope = None, as_json: JsonOpt = False) -> None:
    """Revoke a role binding (refused if it would leave no enabled admin)."""
    b = get_client(ctx).revoke_role(principal, role, model=model, team=team)
    if as_json:
        print_json(b.raw)
        return
    typer.echo(f"{b.principal} is no longer {b.role} at {_scope_text(b.scope_type, b.scope)}")


@roles_app.command("list")
def roles_list(ctx: typer.Context,
               principal: Annotated[str | None, typer.Option("--principal")] = None,
               model: ModelScope = None, team: TeamScope = None, as_json: JsonOpt = False) -> None:
    """Role bindings, optionally of one principal or at one scope."""
    bindings = get_client(ctx).list_role_bindings(principal=principal, model=model, team=team)
    if as_json:
        print_json([b.raw for b in bindings])
        return
    print_table(
        ["id", "principal", "kind", "role", "scope", "granted", "by"],
        [(b.id, b.principal, b.principal_kind, b.role, _scope_text(b.scope_type, b.scope),
          when(b.created_at), b.created_by) for b in bindings],
        empty="no role bindings",
    )


def install(app: typer.Typer) -> None:
    """Add the identity commands to the root ``regista`` command."""
    app.command("whoami")(whoami)
    app.add_typer(users_app, name="users")
    app.add_typer(teams_app, name="teams")
    app.add_typer(accounts_app, name="service-accounts")
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(roles_app, name="roles")
