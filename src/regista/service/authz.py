"""Role-based authorisation: roles at registry, team or model scope. Fails closed.

The role → permission table (:data:`ROLE_PERMISSIONS`) is the one place that says what
each role may do; everything else (the authorizer, the docs, the role-by-action matrix
test) reads it.

A principal holds a role through a *binding* at one scope:

- ``registry``: everywhere;
- ``team`` (a team name): on models whose ``owner_team`` is that team, and on team-scoped
  actions (creating a model owned by the team, managing its members);
- ``model`` (a normalised model name): on that model only.

Members of a team hold the team principal's bindings. An API token may narrow (never
widen) its principal's rights to some permissions and/or some models. The local
single-user actor and the internal ``system`` actor hold everything; any other actor
holds exactly what its bindings grant, and anything not granted is denied.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection

from regista.domain.models import Actor, PrincipalKind
from regista.domain.names import normalize_name
from regista.errors import Forbidden, Invalid
from regista.service.access import Permission
from regista.store.sql import identity as q
from regista.store.sql.engine import Database


class Role(StrEnum):
    VIEWER = "viewer"
    CONTRIBUTOR = "contributor"
    APPROVER = "approver"
    MAINTAINER = "maintainer"
    ADMIN = "admin"


class ScopeType(StrEnum):
    REGISTRY = "registry"
    TEAM = "team"
    MODEL = "model"


P = Permission
_VIEWER = frozenset({P.MODEL_READ})
_CONTRIBUTOR = _VIEWER | {
    P.MODEL_CREATE,  # creating a model is the first registration of its family
    P.VERSION_REGISTER,
    P.BLOB_UPLOAD,
    P.ALIAS_SET,
    P.TRANSITION_REQUEST,
    P.DEPLOYMENT_RECORD,
    P.OBSERVATION_REPORT,
}

#: What each role may do. Separation of duties: a maintainer does not approve, an
#: approver does not register; only admin holds both (and still cannot approve its own
#: request: that rule belongs to the lifecycle engine).
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _VIEWER,
    Role.CONTRIBUTOR: _CONTRIBUTOR,
    Role.APPROVER: _VIEWER | {P.TRANSITION_APPROVE, P.AUDIT_READ},
    Role.MAINTAINER: _CONTRIBUTOR | {
        P.MODEL_UPDATE,
        P.MODEL_ARCHIVE,
        P.VERSION_UPDATE,
        P.ALIAS_SET_PROTECTED,
        P.AUDIT_READ,
    },
    Role.ADMIN: frozenset(Permission),
}

_ROLE_NAMES = frozenset(r.value for r in Role)

#: Permissions not tied to any model: holding one at any scope is enough. Blobs are
#: content-addressed bytes shared by every model; they only become part of a model through
#: a (model-scoped) registration, so a team- or model-scoped contributor must be able to
#: upload them.
UNSCOPED_PERMISSIONS = frozenset({P.BLOB_UPLOAD})

#: How long one actor's resolved grants are reused. Actors built per HTTP request carry
#: that request's id, so in practice this only spares repeated lookups within a request
#: (and a second database connection inside a write transaction). Changes made in this
#: process clear the cache at once.
GRANT_TTL_SECONDS = 1.0
_GRANT_CACHE_MAX = 4096


def parse_role(value: str) -> Role:
    """A role by name, or :class:`Invalid` listing the valid ones."""
    try:
        return Role(value)
    except ValueError:
        raise Invalid(f"unknown role {str(value)[:40]!r}; roles are: "
                      + ", ".join(r.value for r in Role),
                      details={"field": "role", "value": str(value)[:40]}) from None


def expand_scopes(entries: Iterable[str]) -> frozenset[Permission]:
    """Permissions named by a token's scope list: permission values and/or role names."""
    out: set[Permission] = set()
    for e in entries:
        if e in _ROLE_NAMES:
            out |= ROLE_PERMISSIONS[Role(e)]
            continue
        try:
            out.add(Permission(e))
        except ValueError:
            raise Invalid(
                f"unknown token scope {str(e)[:60]!r}: use a permission "
                f"({', '.join(p.value for p in Permission)}) or a role "
                f"({', '.join(r.value for r in Role)})",
                details={"field": "scopes", "value": str(e)[:60]},
            ) from None
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Grant:
    """One role a principal holds at one scope; ``via`` names the team it comes through."""

    role: Role
    scope_type: ScopeType
    scope: str
    via: str | None = None


def is_unrestricted(actor: Actor) -> bool:
    """The local single-user actor and the internal system actor hold every permission.

    Neither can be produced from a request's credentials: ``local`` only by local mode,
    ``system`` only by server code (principal names ``local``/``system`` are reserved).
    """
    if actor.local_mode:
        return True
    return actor.name == "system" and actor.kind == PrincipalKind.SERVICE and actor.principal_id is None


class RoleAuthorizer:
    """The :class:`~regista.service.access.Authorizer` of role bindings (see module doc)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._cache: dict[Actor, tuple[float, tuple[Grant, ...]]] = {}

    # ------------------------------------------------------------------ grants

    def grants(self, actor: Actor, conn: Connection | None = None) -> tuple[Grant, ...]:
        """What ``actor``'s principal holds (directly and via teams), briefly cached."""
        if actor.principal_id is None:
            return ()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(actor)
        if hit is not None and hit[0] > now:
            return hit[1]
        if conn is not None:
            found = self._load(conn, actor.principal_id)
        else:
            with self.db.read() as c:
                found = self._load(c, actor.principal_id)
        with self._lock:
            if len(self._cache) >= _GRANT_CACHE_MAX:
                self._cache.clear()
            self._cache[actor] = (now + GRANT_TTL_SECONDS, found)
        return found

    @staticmethod
    def _load(conn: Connection, principal_id: int) -> tuple[Grant, ...]:
        out = []
        for r in q.grants_of(conn, principal_id):
            try:
                out.append(Grant(Role(r.role), ScopeType(r.scope_type), r.scope, r.via))
            except ValueError:
                continue  # a row naming an unknown role or scope grants nothing
        return tuple(out)

    def invalidate(self) -> None:
        """Forget cached grants (called after any change of bindings, teams or principals)."""
        with self._lock:
            self._cache.clear()

    # ------------------------------------------------------------------ checks

    def effective(self, actor: Actor, *, model: str | None = None,
                  team: str | None = None) -> frozenset[Permission]:
        """Every permission ``actor`` holds at this scope (token restrictions applied).

        With neither ``model`` nor ``team`` the scope is the whole registry, so only
        registry-scope bindings count.
        """
        if is_unrestricted(actor):
            return frozenset(Permission)
        if actor.principal_id is None:
            return frozenset()
        model_n = normalize_name(model) if model else None
        if actor.token_models is not None and (model_n is None or model_n not in actor.token_models):
            return frozenset()
        grants = self.grants(actor)
        team_n = normalize_name(team) if team else None
        if team_n is None and model_n is not None and any(g.scope_type == ScopeType.TEAM for g in grants):
            team_n = self._owner_team(model_n)
        held: set[Permission] = set()
        for g in grants:
            if (g.scope_type == ScopeType.REGISTRY
                    or (g.scope_type == ScopeType.MODEL and g.scope == model_n and model_n)
                    or (g.scope_type == ScopeType.TEAM and g.scope == team_n and team_n)):
                held |= ROLE_PERMISSIONS[g.role]
        if actor.token_scopes is not None:
            held &= {p for p in Permission if p.value in actor.token_scopes}
        return frozenset(held)

    def _owner_team(self, model: str) -> str | None:
        with self.db.read() as conn:
            _, team = q.model_owner_team(conn, model)
        return normalize_name(team) if team else None

    def allows(self, actor: object, permission: Permission, *, model: str | None = None,
               team: str | None = None) -> bool:
        """Whether ``actor`` holds ``permission`` at this scope."""
        if not isinstance(actor, Actor):
            return False
        if is_unrestricted(actor):
            return True
        if permission in UNSCOPED_PERMISSIONS and model is None and team is None:
            return self.holds_anywhere(actor, permission)
        return permission in self.effective(actor, model=model, team=team)

    def require(self, actor: object, permission: Permission, *, model: str | None = None,
                team: str | None = None) -> None:
        """Raise :class:`Forbidden`, naming the permission and scope, unless allowed."""
        if self.allows(actor, permission, model=model, team=team):
            return
        name = getattr(actor, "name", "?")
        if model:
            where, details = f"on model {model!r}", {"scope_type": "model", "scope": model}
        elif team:
            where, details = f"in team {team!r}", {"scope_type": "team", "scope": team}
        else:
            where, details = "in this registry", {"scope_type": "registry", "scope": ""}
        reason = ""
        if isinstance(actor, Actor):
            if actor.token_scopes is not None and permission.value not in actor.token_scopes:
                reason = " (the token's scopes do not include it)"
            elif actor.token_models is not None and (
                    not model or normalize_name(model) not in actor.token_models):
                reason = " (the token is restricted to models " + ", ".join(actor.token_models) + ")"
        raise Forbidden(
            f"{name} does not hold {permission.value} {where}{reason}",
            details={"permission": permission.value, **details,
                     **({"model": normalize_name(model)} if model else {})},
        )

    def holds_anywhere(self, actor: object, permission: Permission) -> bool:
        """Whether ``actor`` holds ``permission`` at some scope (the coarse route check)."""
        if not isinstance(actor, Actor):
            return False
        if is_unrestricted(actor):
            return True
        if actor.principal_id is None:
            return False
        if actor.token_scopes is not None and permission.value not in actor.token_scopes:
            return False
        for g in self.grants(actor):
            if permission not in ROLE_PERMISSIONS[g.role]:
                continue
            if (actor.token_models is None or g.scope_type != ScopeType.MODEL
                    or g.scope in actor.token_models):
                return True
        return False

    def has_role(self, actor: object, role: Role | str, *, model: str | None = None,
                 team: str | None = None) -> bool:
        """Whether ``actor`` holds ``role`` (or a role including it) at this scope.

        "Holds the role" means: holds every permission of the role there, after token
        restrictions; so admin satisfies any role, a maintainer does not satisfy
        approver, and an unknown role name is never satisfied (fail closed).
        """
        if not isinstance(actor, Actor):
            return False
        try:
            wanted = ROLE_PERMISSIONS[Role(role)]
        except ValueError:
            return False
        if is_unrestricted(actor):
            return True
        return wanted <= self.effective(actor, model=model, team=team)


def roles_granting(permission: Permission) -> list[Role]:
    """The roles that include ``permission`` (for messages and docs)."""
    return [r for r in Role if permission in ROLE_PERMISSIONS[r]]


def permissions_table() -> Sequence[tuple[Permission, list[Role]]]:
    """Rows of the permission-by-role table (a test checks docs/security.md against it)."""
    return [(p, roles_granting(p)) for p in Permission]
