"""Users, teams, service accounts, role bindings, API tokens and ``whoami``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from regista.api import schemas as s
from regista.api.deps import AUTHENTICATED, ActorDep, ServicesDep, rule
from regista.api.lean import LeanRoute
from regista.api.responses import JSON
from regista.domain.models import PrincipalKind
from regista.service.access import Permission
from regista.service.identity import ApiToken, IssuedToken, Principal, RoleBinding, WhoAmI

router = APIRouter(prefix="/api/v1", tags=["identity"], route_class=LeanRoute)
ERRORS = s.error_responses(400, 401, 403, 404, 409, 422)
MANAGE = [rule(Permission.PRINCIPAL_MANAGE)]
Name = Annotated[str, Field(max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserCreate(_Strict):
    name: Name
    display_name: str | None = Field(default=None, max_length=300)
    email: str | None = Field(default=None, max_length=400)
    password: str | None = Field(default=None, max_length=2000)
    admin: bool = Field(default=False, description="Also grant admin at registry scope.")
    issue_token: bool = Field(
        default=False, description="Also issue an API token for the new user (shown once).")


class PrincipalCreate(_Strict):
    name: Name
    display_name: str | None = Field(default=None, max_length=300)


class PasswordSet(_Strict):
    password: str = Field(max_length=2000)


class OwnPasswordSet(_Strict):
    password: str = Field(max_length=2000)
    current_password: str | None = Field(default=None, max_length=2000)


class RoleGrant(_Strict):
    principal: Name
    role: str = Field(max_length=40)
    model: str | None = Field(default=None, max_length=200, description="Model scope.")
    team: str | None = Field(default=None, max_length=200, description="Team scope.")


class TokenCreate(_Strict):
    name: str = Field(default="default", max_length=200)
    scopes: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=100,
        description="Permissions and/or role names the token is narrowed to (default: all "
                    "of its principal's rights).")
    models: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, max_length=100, description="Models the token is restricted to.")
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    expires_at: datetime | None = None


class PrincipalOut(BaseModel):
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


class RoleBindingOut(BaseModel):
    id: int
    principal: str
    principal_kind: str
    role: str
    scope_type: str
    scope: str
    created_at: datetime
    created_by: str


class TokenOut(BaseModel):
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


class IssuedTokenOut(TokenOut):
    secret: str = Field(description="The whole token (rgst_…). Shown once, never stored.")


def principal_out(p: Principal) -> dict[str, Any]:
    return {"name": p.name, "kind": p.kind.value, "display_name": p.display_name, "email": p.email,
            "disabled": p.disabled, "has_password": p.has_password, "teams": p.teams,
            "members": p.members, "created_at": p.created_at, "created_by": p.created_by}


def binding_out(b: RoleBinding) -> dict[str, Any]:
    return {"id": b.id, "principal": b.principal, "principal_kind": b.principal_kind, "role": b.role,
            "scope_type": b.scope_type, "scope": b.scope, "created_at": b.created_at,
            "created_by": b.created_by}


def token_out(t: ApiToken) -> dict[str, Any]:
    return {"token_id": t.token_id, "prefix": t.prefix, "principal": t.principal, "name": t.name,
            "scopes": t.permissions, "models": t.models, "expires_at": t.expires_at,
            "revoked_at": t.revoked_at, "created_at": t.created_at, "last_used_at": t.last_used_at}


def issued_out(t: IssuedToken) -> dict[str, Any]:
    return {**token_out(t.token), "secret": t.secret}


def whoami_out(w: WhoAmI, token_id: str | None) -> dict[str, Any]:
    a = w.actor
    return {
        "name": a.name,
        "kind": a.kind.value,
        "local_mode": w.local_mode,
        "auth_mode": w.auth_mode,
        "principal": principal_out(w.principal) if w.principal else None,
        "roles": [{"role": g.role.value, "scope_type": g.scope_type.value, "scope": g.scope,
                   "via": g.via} for g in w.grants],
        "token": None if a.token_scopes is None and a.token_models is None and token_id is None
        else {"token_id": token_id, "scopes": list(a.token_scopes) if a.token_scopes is not None
              else None, "models": list(a.token_models) if a.token_models is not None else None},
    }


# --------------------------------------------------------------------------- whoami


@router.get("/whoami", dependencies=[rule(AUTHENTICATED)], responses=ERRORS)
def whoami(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    """Who this request acts as: principal, teams, roles, token restrictions, local mode."""
    token_id = request.scope.get("state", {}).get("token_id")
    return JSON(whoami_out(svc.identity.whoami(actor), token_id))


@router.put("/whoami/password", dependencies=[rule(AUTHENTICATED)], status_code=204,
            responses=ERRORS)
def set_own_password(body: OwnPasswordSet, actor: ActorDep, svc: ServicesDep) -> Response:
    """Change your own password (``current_password`` required once one is set)."""
    svc.identity.set_password(actor, actor.name, body.password,
                              current_password=body.current_password)
    return Response(status_code=204)


# --------------------------------------------------------------------------- users


@router.post("/users", dependencies=MANAGE, status_code=201,
             responses={201: {"model": PrincipalOut}, **ERRORS})
def create_user(body: UserCreate, actor: ActorDep, svc: ServicesDep) -> Response:
    """Create a user. In local mode this bootstraps the first admin (and ends local mode).

    With ``issue_token`` the response carries ``token`` whose ``secret`` is shown once.
    """
    user = svc.identity.create_user(actor, body.name, display_name=body.display_name,
                                    email=body.email, password=body.password, admin=body.admin)
    out = principal_out(user)
    if body.issue_token:
        out["token"] = issued_out(svc.identity.create_token(actor, name="initial", principal=user.name))
    return JSON(out, status_code=201)


@router.get("/users", dependencies=MANAGE, responses={200: {"model": list[PrincipalOut]}, **ERRORS})
def list_users(actor: ActorDep, svc: ServicesDep) -> Response:
    return JSON([principal_out(p) for p in svc.identity.list_principals(actor, PrincipalKind.USER)])


@router.get("/users/{user}", dependencies=MANAGE, responses={200: {"model": PrincipalOut}, **ERRORS})
def get_user(user: str, actor: ActorDep, svc: ServicesDep) -> Response:
    return JSON(principal_out(svc.identity.get_principal(actor, user, PrincipalKind.USER)))


@router.post("/users/{user}/disable", dependencies=MANAGE,
             responses={200: {"model": PrincipalOut}, **ERRORS})
def disable_user(user: str, actor: ActorDep, svc: ServicesDep) -> Response:
    """Disable a user: its tokens and sessions stop working at once (audited)."""
    return JSON(principal_out(svc.identity.set_disabled(actor, user, True, PrincipalKind.USER)))


@router.post("/users/{user}/enable", dependencies=MANAGE,
             responses={200: {"model": PrincipalOut}, **ERRORS})
def enable_user(user: str, actor: ActorDep, svc: ServicesDep) -> Response:
    return JSON(principal_out(svc.identity.set_disabled(actor, user, False, PrincipalKind.USER)))


@router.put("/users/{user}/password", dependencies=MANAGE, status_code=204, responses=ERRORS)
def set_user_password(user: str, body: PasswordSet, actor: ActorDep, svc: ServicesDep) -> Response:
    """Set a user's password (admin)."""
    svc.identity.set_password(actor, user, body.password)
    return Response(status_code=204)


# --------------------------------------------------------------------------- teams


@router.post("/teams", dependencies=MANAGE, status_code=201,
             responses={201: {"model": PrincipalOut}, **ERRORS})
def create_team(body: PrincipalCreate, actor: ActorDep, svc: ServicesDep) -> Response:
    return JSON(principal_out(svc.identity.create_team(actor, body.name,
                                                       display_name=body.display_name)), 201)


@router.get("/teams", dependencies=[rule(Permission.MODEL_READ)],
            responses={200: {"model": list[PrincipalOut]}, **ERRORS})
def list_teams(actor: ActorDep, svc: ServicesDep) -> Response:
    """Teams and their members (readable by anyone who can read the registry)."""
    return JSON([principal_out(p) for p in svc.identity.list_principals(actor, PrincipalKind.TEAM)])


@router.put("/teams/{team}/members/{member}", dependencies=MANAGE,
            responses={200: {"model": PrincipalOut}, **ERRORS})
def add_member(team: str, member: str, actor: ActorDep, svc: ServicesDep) -> Response:
    """Add a user or service account to a team (idempotent)."""
    return JSON(principal_out(svc.identity.add_member(actor, team, member)))


@router.delete("/teams/{team}/members/{member}", dependencies=MANAGE,
               responses={200: {"model": PrincipalOut}, **ERRORS})
def remove_member(team: str, member: str, actor: ActorDep, svc: ServicesDep) -> Response:
    return JSON(principal_out(svc.identity.remove_member(actor, team, member)))


# --------------------------------------------------------------------------- service accounts


@router.post("/service-accounts", dependencies=MANAGE, status_code=201,
             responses={201: {"model": PrincipalOut}, **ERRORS})
def create_service_account(body: PrincipalCreate, actor: ActorDep, svc: ServicesDep) -> Response:
    """Create a service account (a pipeline or serving system; authenticates by token)."""
    return JSON(principal_out(svc.identity.create_service_account(
        actor, body.name, display_name=body.display_name)), 201)


@router.get("/service-accounts", dependencies=MANAGE,
            responses={200: {"model": list[PrincipalOut]}, **ERRORS})
def list_service_accounts(actor: ActorDep, svc: ServicesDep) -> Response:
    return JSON([principal_out(p) for p in svc.identity.list_principals(actor, PrincipalKind.SERVICE)])


@router.post("/service-accounts/{account}/disable", dependencies=MANAGE,
             responses={200: {"model": PrincipalOut}, **ERRORS})
def disable_service_account(account: str, actor: ActorDep, svc: ServicesDep) -> Response:
    return JSON(principal_out(svc.identity.set_disabled(actor, account, True, PrincipalKind.SERVICE)))


@router.post("/service-accounts/{account}/enable", dependencies=MANAGE,
             responses={200: {"model": PrincipalOut}, **ERRORS})
def enable_service_account(account: str, actor: ActorDep, svc: ServicesDep) -> Response:
    return JSON(principal_out(svc.identity.set_disabled(actor, account, False, PrincipalKind.SERVICE)))


@router.post("/principals/{principal}/tokens", dependencies=MANAGE, status_code=201,
             responses={201: {"model": IssuedTokenOut}, **ERRORS})
def create_token_for(principal: str, body: TokenCreate, actor: ActorDep, svc: ServicesDep) -> Response:
    """Issue a token for another principal, e.g. a service account (secret shown once)."""
    issued = svc.identity.create_token(
        actor, name=body.name, principal=principal, scopes=body.scopes, models=body.models,
        expires_in_days=body.expires_in_days, expires_at=body.expires_at)
    return JSON(issued_out(issued), status_code=201)


# --------------------------------------------------------------------------- role bindings


@router.post("/role-bindings", dependencies=MANAGE, status_code=201,
             responses={201: {"model": RoleBindingOut}, **ERRORS})
def grant_role(body: RoleGrant, actor: ActorDep, svc: ServicesDep) -> Response:
    """Grant a role at registry scope, or at ``team`` or ``model`` scope (idempotent)."""
    b = svc.identity.grant_role(actor, body.principal, body.role, model=body.model, team=body.team)
    return JSON(binding_out(b), status_code=201)


@router.get("/role-bindings", dependencies=MANAGE,
            responses={200: {"model": list[RoleBindingOut]}, **ERRORS})
def list_role_bindings(
    actor: ActorDep,
    svc: ServicesDep,
    principal: Annotated[str | None, Query(max_length=200)] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    team: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    bindings = svc.identity.list_role_bindings(actor, principal=principal, model=model, team=team)
    return JSON([binding_out(b) for b in bindings])


@router.delete("/role-bindings/{binding_id}", dependencies=MANAGE,
               responses={200: {"model": RoleBindingOut}, **ERRORS})
def revoke_role(binding_id: int, actor: ActorDep, svc: ServicesDep) -> Response:
    """Revoke one role binding (refused if it would leave no enabled admin)."""
    return JSON(binding_out(svc.identity.revoke_role(actor, binding_id)))


@router.get("/roles", dependencies=[rule(AUTHENTICATED)], responses=ERRORS)
def list_roles() -> Response:
    """The role → permission table."""
    from regista.service.identity import role_permissions

    return JSON(role_permissions())


# --------------------------------------------------------------------------- tokens


@router.post("/tokens", dependencies=[rule(AUTHENTICATED)], status_code=201,
             responses={201: {"model": IssuedTokenOut}, **ERRORS})
def create_token(body: TokenCreate, actor: ActorDep, svc: ServicesDep) -> Response:
    """Issue a token for yourself; the ``secret`` is returned once and never stored."""
    issued = svc.identity.create_token(
        actor, name=body.name, scopes=body.scopes, models=body.models,
        expires_in_days=body.expires_in_days, expires_at=body.expires_at)
    return JSON(issued_out(issued), status_code=201)


@router.get("/tokens", dependencies=[rule(AUTHENTICATED)],
            responses={200: {"model": list[TokenOut]}, **ERRORS})
def list_own_tokens(actor: ActorDep, svc: ServicesDep) -> Response:
    """Your tokens (never their secrets)."""
    return JSON([token_out(t) for t in svc.identity.list_tokens(actor)])


@router.get("/tokens/all", dependencies=MANAGE, responses={200: {"model": list[TokenOut]}, **ERRORS})
def list_all_tokens(
    actor: ActorDep,
    svc: ServicesDep,
    principal: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Every principal's tokens, or one principal's (admin)."""
    tokens = svc.identity.list_tokens(actor, principal=principal, all_principals=principal is None)
    return JSON([token_out(t) for t in tokens])


@router.delete("/tokens/{token_id}", dependencies=[rule(AUTHENTICATED)],
               responses={200: {"model": TokenOut}, **ERRORS})
def revoke_token(token_id: str, actor: ActorDep, svc: ServicesDep) -> Response:
    """Revoke one of your tokens (anyone's, with principal:manage); effective at once."""
    return JSON(token_out(svc.identity.revoke_token(actor, token_id)))
