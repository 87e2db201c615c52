"""Queries of identity and access: principals, team members, role bindings, API tokens.

Plain functions over a :class:`sqlalchemy.Connection`; the service layer
(:mod:`regista.service.identity`, :mod:`regista.service.authz`) decides the rules and the
transaction, this module only reads and writes rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    String,
    and_,
    cast,
    delete,
    exists,
    insert,
    null,
    or_,
    select,
    union_all,
    update,
)

from regista.store.sql.tables import api_tokens, models, principals, role_bindings, team_members

# --------------------------------------------------------------------------- principals


def principal_by_name(conn: Connection, name: str) -> Row[Any] | None:
    """The principal named ``name`` (names are stored in their normal form)."""
    return conn.execute(select(principals).where(principals.c.name == name)).first()


def principal_by_id(conn: Connection, principal_id: int) -> Row[Any] | None:
    return conn.execute(select(principals).where(principals.c.id == principal_id)).first()


def insert_principal(conn: Connection, values: Mapping[str, Any]) -> int:
    q = insert(principals).values(**values).returning(principals.c.id)
    return int(conn.execute(q).scalar_one())


def update_principal(conn: Connection, principal_id: int, values: Mapping[str, Any]) -> None:
    conn.execute(update(principals).where(principals.c.id == principal_id).values(**values))


def list_principals(conn: Connection, kind: str | None = None, *, limit: int = 10_000) -> list[Row[Any]]:
    q = select(principals).order_by(principals.c.name).limit(limit)
    if kind is not None:
        q = q.where(principals.c.kind == kind)
    return list(conn.execute(q))


def any_user_exists(conn: Connection) -> bool:
    """Whether at least one user principal exists (ends the local single-user mode)."""
    q = select(exists().where(principals.c.kind == "user"))
    return bool(conn.execute(q).scalar())


# --------------------------------------------------------------------------- teams


def add_member(conn: Connection, team_id: int, member_id: int) -> bool:
    """Add a member; False when it already was one."""
    q = select(team_members).where(team_members.c.team_id == team_id,
                                   team_members.c.member_id == member_id)
    if conn.execute(q).first() is not None:
        return False
    conn.execute(insert(team_members).values(team_id=team_id, member_id=member_id))
    return True


def remove_member(conn: Connection, team_id: int, member_id: int) -> bool:
    """Remove a member; False when it was not one."""
    res = conn.execute(delete(team_members).where(team_members.c.team_id == team_id,
                                                  team_members.c.member_id == member_id))
    return bool(res.rowcount)


def members_of(conn: Connection, team_ids: Sequence[int]) -> dict[int, list[str]]:
    """Member names of each team, sorted."""
    out: dict[int, list[str]] = defaultdict(list)
    if team_ids:
        q = (select(team_members.c.team_id, principals.c.name)
             .join(principals, principals.c.id == team_members.c.member_id)
             .where(team_members.c.team_id.in_(team_ids))
             .order_by(principals.c.name))
        for r in conn.execute(q):
            out[r.team_id].append(r.name)
    return out


def teams_of(conn: Connection, member_ids: Sequence[int]) -> dict[int, list[str]]:
    """Team names each principal belongs to, sorted."""
    out: dict[int, list[str]] = defaultdict(list)
    if member_ids:
        team = principals.alias("team")
        q = (select(team_members.c.member_id, team.c.name)
             .join(team, team.c.id == team_members.c.team_id)
             .where(team_members.c.member_id.in_(member_ids))
             .order_by(team.c.name))
        for r in conn.execute(q):
            out[r.member_id].append(r.name)
    return out


# --------------------------------------------------------------------------- role bindings


def grants_of(conn: Connection, principal_id: int) -> list[Row[Any]]:
    """(role, scope_type, scope, via) the principal holds: directly, or through its teams.

    Nothing is returned for a disabled principal; a disabled team grants nothing.
    """
    me = principals.alias("me")
    team = principals.alias("team")
    direct = (
        select(role_bindings.c.role, role_bindings.c.scope_type, role_bindings.c.scope,
               cast(null(), String).label("via"))
        .join(me, me.c.id == role_bindings.c.principal_id)
        .where(role_bindings.c.principal_id == principal_id, me.c.disabled.is_(False))
    )
    through_team = (
        select(role_bindings.c.role, role_bindings.c.scope_type, role_bindings.c.scope,
               team.c.name.label("via"))
        .join(team_members, team_members.c.team_id == role_bindings.c.principal_id)
        .join(team, team.c.id == team_members.c.team_id)
        .join(me, me.c.id == team_members.c.member_id)
        .where(team_members.c.member_id == principal_id, team.c.disabled.is_(False),
               me.c.disabled.is_(False))
    )
    return list(conn.execute(union_all(direct, through_team)))


def insert_binding(conn: Connection, values: Mapping[str, Any]) -> int:
    q = insert(role_bindings).values(**values).returning(role_bindings.c.id)
    return int(conn.execute(q).scalar_one())


def find_binding(conn: Connection, principal_id: int, role: str, scope_type: str,
                 scope: str) -> Row[Any] | None:
    q = select(role_bindings).where(
        role_bindings.c.principal_id == principal_id, role_bindings.c.role == role,
        role_bindings.c.scope_type == scope_type, role_bindings.c.scope == scope,
    )
    return conn.execute(q).first()


def _bindings_query() -> Any:
    return (select(role_bindings, principals.c.name.label("principal"),
                   principals.c.kind.label("principal_kind"))
            .join(principals, principals.c.id == role_bindings.c.principal_id))


def binding_by_id(conn: Connection, binding_id: int) -> Row[Any] | None:
    return conn.execute(_bindings_query().where(role_bindings.c.id == binding_id)).first()


def list_bindings(
    conn: Connection, *, principal_id: int | None = None, scope_type: str | None = None,
    scope: str | None = None, limit: int = 10_000,
) -> list[Row[Any]]:
    q = _bindings_query().order_by(role_bindings.c.id).limit(limit)
    if principal_id is not None:
        q = q.where(role_bindings.c.principal_id == principal_id)
    if scope_type is not None:
        q = q.where(role_bindings.c.scope_type == scope_type)
    if scope is not None:
        q = q.where(role_bindings.c.scope == scope)
    return list(conn.execute(q))


def delete_binding(conn: Connection, binding_id: int) -> None:
    conn.execute(delete(role_bindings).where(role_bindings.c.id == binding_id))


def registry_admins(conn: Connection) -> set[int]:
    """Enabled principals holding ``admin`` at registry scope, directly or via an enabled team."""
    admin = and_(role_bindings.c.role == "admin", role_bindings.c.scope_type == "registry")
    direct = (select(principals.c.id)
              .join(role_bindings, role_bindings.c.principal_id == principals.c.id)
              .where(admin, principals.c.disabled.is_(False), principals.c.kind != "team"))
    team = principals.alias("team")
    member = principals.alias("member")
    via = (select(member.c.id)
           .join(team_members, team_members.c.member_id == member.c.id)
           .join(team, team.c.id == team_members.c.team_id)
           .join(role_bindings, role_bindings.c.principal_id == team.c.id)
           .where(admin, team.c.disabled.is_(False), member.c.disabled.is_(False)))
    return {int(r[0]) for r in conn.execute(union_all(direct, via))}


# --------------------------------------------------------------------------- models


def model_owner_team(conn: Connection, normalized_model: str) -> tuple[bool, str | None]:
    """(exists, owner_team) of a model by its normal name."""
    row = conn.execute(select(models.c.owner_team)
                       .where(models.c.normalized_name == normalized_model)).first()
    if row is None:
        return False, None
    return True, row.owner_team


# --------------------------------------------------------------------------- tokens


def _tokens_query() -> Any:
    return (select(api_tokens, principals.c.name.label("principal"),
                   principals.c.kind.label("principal_kind"),
                   principals.c.disabled.label("principal_disabled"))
            .join(principals, principals.c.id == api_tokens.c.principal_id))


def insert_token(conn: Connection, values: Mapping[str, Any]) -> int:
    q = insert(api_tokens).values(**values).returning(api_tokens.c.id)
    return int(conn.execute(q).scalar_one())


def token_by_token_id(conn: Connection, token_id: str) -> Row[Any] | None:
    """One token with its principal's name, kind and disabled flag (indexed lookup)."""
    return conn.execute(_tokens_query().where(api_tokens.c.token_id == token_id)).first()


def list_tokens(conn: Connection, *, principal_ids: Iterable[int] | None = None,
                include_revoked: bool = True, limit: int = 10_000) -> list[Row[Any]]:
    q = _tokens_query().order_by(api_tokens.c.id).limit(limit)
    if principal_ids is not None:
        q = q.where(api_tokens.c.principal_id.in_(list(principal_ids)))
    if not include_revoked:
        q = q.where(api_tokens.c.revoked_at.is_(None))
    return list(conn.execute(q))


def revoke_token(conn: Connection, token_pk: int, at: datetime) -> None:
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_pk,
                                          api_tokens.c.revoked_at.is_(None))
                 .values(revoked_at=at))


def touch_token(conn: Connection, token_pk: int, at: datetime, older_than: datetime) -> bool:
    """Set last_used_at unless another request already did so recently (one write a minute)."""
    res = conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_pk,
               or_(api_tokens.c.last_used_at.is_(None), api_tokens.c.last_used_at < older_than))
        .values(last_used_at=at)
    )
    return bool(res.rowcount)
