"""Identity and access: who am I, users, teams, service accounts, role bindings, API tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from regista.client._base import BaseClient, quote
from regista.client.types import parse_time
from regista.errors import NotFound


def _opt_time(value: Any) -> datetime | None:
    return parse_time(value) if value else None


@dataclass(frozen=True, slots=True)
class Principal:
    """A user, team or service account (``kind``); teams list their ``members``."""

    name: str
    kind: str
    display_name: str
    email: str | None
    disabled: bool
    has_password: bool
    teams: list[str]
    members: list[str]
    created_at: datetime
    created_by: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Principal:
        return cls(name=d["name"], kind=d["kind"], display_name=d.get("display_name") or "",
                   email=d.get("email"), disabled=bool(d.get("disabled")),
                   has_password=bool(d.get("has_password")), teams=list(d.get("teams") or []),
                   members=list(d.get("members") or []), created_at=parse_time(d["created_at"]),
                   created_by=d.get("created_by") or "", raw=d)


@dataclass(frozen=True, slots=True)
class RoleBinding:
    """``role`` held by ``principal`` at ``scope_type`` (registry | team | model) ``scope``."""

    id: int
    principal: str
    principal_kind: str
    role: str
    scope_type: str
    scope: str
    created_at: datetime
    created_by: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RoleBinding:
        return cls(id=int(d["id"]), principal=d["principal"], principal_kind=d["principal_kind"],
                   role=d["role"], scope_type=d["scope_type"], scope=d.get("scope") or "",
                   created_at=parse_time(d["created_at"]), created_by=d.get("created_by") or "",
                   raw=d)


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token's public description (never its secret)."""

    token_id: str
    prefix: str
    principal: str
    name: str
    scopes: list[str] | None
    models: list[str] | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ApiToken:
        return cls(token_id=d["token_id"], prefix=d.get("prefix") or f"rgst_{d['token_id']}",
                   principal=d["principal"], name=d.get("name") or "", scopes=d.get("scopes"),
                   models=d.get("models"), expires_at=_opt_time(d.get("expires_at")),
                   revoked_at=_opt_time(d.get("revoked_at")),
                   created_at=parse_time(d["created_at"]),
                   last_used_at=_opt_time(d.get("last_used_at")), raw=d)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: ``secret`` is the whole ``rgst_…`` string, shown this once only."""

    token: ApiToken
    secret: str = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> IssuedToken:
        return cls(token=ApiToken.from_json(d), secret=d["secret"])


@dataclass(frozen=True, slots=True)
class Grant:
    role: str
    scope_type: str
    scope: str
    via: str | None  # the team the role comes through, if any


@dataclass(frozen=True, slots=True)
class WhoAmI:
    """Who the client's credentials act as."""

    name: str
    kind: str
    local_mode: bool
    auth_mode: str
    principal: Principal | None
    roles: list[Grant]
    token: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> WhoAmI:
        return cls(name=d["name"], kind=d["kind"], local_mode=bool(d.get("local_mode")),
                   auth_mode=d.get("auth_mode") or "",
                   principal=Principal.from_json(d["principal"]) if d.get("principal") else None,
                   roles=[Grant(g["role"], g["scope_type"], g.get("scope") or "", g.get("via"))
                          for g in d.get("roles") or []],
                   token=d.get("token"), raw=d)


@dataclass(frozen=True, slots=True)
class NewUser:
    """A created user, and its first token when one was asked for."""

    user: Principal
    token: IssuedToken | None


class IdentityMixin(BaseClient):
    """Identity and access methods of :class:`regista.Client`."""

    # -- who am I ------------------------------------------------------------------------------

    def whoami(self) -> WhoAmI:
        """The principal, teams, roles and token restrictions of this client's credentials."""
        return WhoAmI.from_json(self._json("GET", "/api/v1/whoami"))

    def change_password(self, password: str, *, current_password: str | None = None) -> None:
        """Change your own password (the current one is needed once one is set)."""
        self._request("PUT", "/api/v1/whoami/password", expected=(204,),
                      json={"password": password, "current_password": current_password})

    def roles(self) -> dict[str, list[str]]:
        """The role → permissions table of the server."""
        return dict(self._json("GET", "/api/v1/roles"))

    # -- users ---------------------------------------------------------------------------------

    def create_user(self, name: str, *, display_name: str | None = None, email: str | None = None,
                    password: str | None = None, admin: bool = False,
                    issue_token: bool = False) -> NewUser:
        """Create a user (``admin``: also admin at registry scope; ``issue_token``: a first token).

        On a server still in local single-user mode this bootstraps the first admin.
        """
        body = {"name": name, "display_name": display_name, "email": email, "password": password,
                "admin": admin, "issue_token": issue_token}
        d = self._json("POST", "/api/v1/users", json=body, expected=(201,))
        token = IssuedToken.from_json(d["token"]) if d.get("token") else None
        return NewUser(user=Principal.from_json(d), token=token)

    def list_users(self) -> list[Principal]:
        return [Principal.from_json(d) for d in self._json("GET", "/api/v1/users")]

    def get_user(self, name: str) -> Principal:
        return Principal.from_json(self._json("GET", f"/api/v1/users/{quote(name)}"))

    def disable_user(self, name: str) -> Principal:
        """Disable a user: its tokens and sessions stop working at once."""
        return Principal.from_json(self._json("POST", f"/api/v1/users/{quote(name)}/disable"))

    def enable_user(self, name: str) -> Principal:
        return Principal.from_json(self._json("POST", f"/api/v1/users/{quote(name)}/enable"))

    def set_user_password(self, name: str, password: str) -> None:
        """Set another user's password (admin)."""
        self._request("PUT", f"/api/v1/users/{quote(name)}/password", json={"password": password},
                      expected=(204,))

    # -- teams ---------------------------------------------------------------------------------

    def create_team(self, name: str, *, display_name: str | None = None) -> Principal:
        d = self._json("POST", "/api/v1/teams", json={"name": name, "display_name": display_name},
                       expected=(201,))
        return Principal.from_json(d)

    def list_teams(self) -> list[Principal]:
        return [Principal.from_json(d) for d in self._json("GET", "/api/v1/teams")]

    def add_team_member(self, team: str, member: str) -> Principal:
        """Add a user or service account to a team (idempotent); returns the team."""
        path = f"/api/v1/teams/{quote(team)}/members/{quote(member)}"
        return Principal.from_json(self._json("PUT", path))

    def remove_team_member(self, team: str, member: str) -> Principal:
        path = f"/api/v1/teams/{quote(team)}/members/{quote(member)}"
        return Principal.from_json(self._json("DELETE", path))

    # -- service accounts ----------------------------------------------------------------------

    def create_service_account(self, name: str, *, display_name: str | None = None) -> Principal:
        d = self._json("POST", "/api/v1/service-accounts",
                       json={"name": name, "display_name": display_name}, expected=(201,))
        return Principal.from_json(d)

    def list_service_accounts(self) -> list[Principal]:
        return [Principal.from_json(d) for d in self._json("GET", "/api/v1/service-accounts")]

    def disable_service_account(self, name: str) -> Principal:
        path = f"/api/v1/service-accounts/{quote(name)}/disable"
        return Principal.from_json(self._json("POST", path))

    # -- role bindings -------------------------------------------------------------------------

    def grant_role(self, principal: str, role: str, *, model: str | None = None,
                   team: str | None = None) -> RoleBinding:
        """Grant ``role`` at registry scope, or at ``model`` or ``team`` scope (idempotent)."""
        body = {"principal": principal, "role": role, "model": model, "team": team}
        return RoleBinding.from_json(self._json("POST", "/api/v1/role-bindings", json=body,
                                                expected=(201,)))

    def list_role_bindings(self, *, principal: str | None = None, model: str | None = None,
                           team: str | None = None) -> list[RoleBinding]:
        params = {"principal": principal, "model": model, "team": team}
        return [RoleBinding.from_json(d)
                for d in self._json("GET", "/api/v1/role-bindings", params=params)]

    def revoke_role_binding(self, binding_id: int) -> RoleBinding:
        return RoleBinding.from_json(self._json("DELETE", f"/api/v1/role-bindings/{int(binding_id)}"))

    def revoke_role(self, principal: str, role: str, *, model: str | None = None,
                    team: str | None = None) -> RoleBinding:
        """Revoke the binding of ``role`` to ``principal`` at that scope (NotFound if none)."""
        scope_type = "model" if model else "team" if team else "registry"
        for b in self.list_role_bindings(principal=principal, model=model, team=team):
            if b.role == role and b.scope_type == scope_type:
                return self.revoke_role_binding(b.id)
        where = f"model {model}" if model else f"team {team}" if team else "registry scope"
        raise NotFound(f"{principal} holds no {role} role at {where}",
                       details={"principal": principal, "role": role})

    # -- tokens --------------------------------------------------------------------------------

    def create_token(self, name: str = "default", *, scopes: Sequence[str] | None = None,
                     models: Sequence[str] | None = None, expires_in_days: int | None = None,
                     expires_at: datetime | str | None = None,
                     principal: str | None = None) -> IssuedToken:
        """Issue a token (yours, or ``principal``'s with principal:manage); secret shown once.

        ``scopes`` (permissions and/or role names) and ``models`` narrow it; it never holds
        more than its principal.
        """
        at = expires_at.isoformat() if isinstance(expires_at, datetime) else expires_at
        body = {"name": name, "scopes": list(scopes) if scopes is not None else None,
                "models": list(models) if models is not None else None,
                "expires_in_days": expires_in_days, "expires_at": at}
        path = "/api/v1/tokens" if principal is None else f"/api/v1/principals/{quote(principal)}/tokens"
        return IssuedToken.from_json(self._json("POST", path, json=body, expected=(201,)))

    def list_tokens(self, *, all_principals: bool = False,
                    principal: str | None = None) -> list[ApiToken]:
        """Your tokens; with ``all_principals`` or ``principal``, anyone's (admin)."""
        if all_principals or principal is not None:
            data = self._json("GET", "/api/v1/tokens/all", params={"principal": principal})
        else:
            data = self._json("GET", "/api/v1/tokens")
        return [ApiToken.from_json(d) for d in data]

    def revoke_token(self, token_id: str) -> ApiToken:
        """Revoke a token (by id, ``rgst_<id>`` prefix or whole token) at once, everywhere."""
        if token_id.startswith("rgst_"):
            token_id = token_id[5:].split("_", 1)[0]
        return ApiToken.from_json(self._json("DELETE", f"/api/v1/tokens/{quote(token_id)}"))
