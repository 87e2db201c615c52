"""Identity: users, teams, service accounts, role bindings and API tokens.

Every mutation is one transaction that writes its audit event alongside the change;
no secret, password or hash ever reaches the audit log.

API tokens look like ``rgst_<token_id>_<secret>``: a recognisable prefix (so secret
scanners and people can spot a leaked one), a public id used to find the row, and a
secret stored only as its sha256. Tokens always expire (at most
``token_max_lifetime_days`` after creation) and can be narrowed to some permissions
and/or models. Each request looks its token up by id, so a revocation or a disabled
principal takes effect at once on every server process: validity is never cached.

Local single-user mode: with ``auth_mode=auto`` and no user yet, every request acts as
the all-powerful ``local`` actor, so ``regista serve`` works out of the box. Creating
the first user ends it for good (users are disabled, never deleted).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
import secrets
import string
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from regista.config import Settings
from regista.domain.models import Actor, PrincipalKind
from regista.domain.names import normalize_name, validate_name
from regista.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from regista.service import audit
from regista.service.access import Authorizer, Permission
from regista.service.authz import (
    ROLE_PERMISSIONS,
    Grant,
    RoleAuthorizer,
    ScopeType,
    expand_scopes,
    parse_role,
)
from regista.service.clock import utcnow
from regista.store.sql import identity as q
from regista.store.sql.engine import Database

log = logging.getLogger("regista.identity")

TOKEN_PREFIX = "rgst_"  # noqa: S105 (a public prefix, not a secret)
_TOKEN_ID_LEN = 16
_SECRET_LEN = 40
_BASE62 = string.ascii_letters + string.digits
_TOKEN_RE = re.compile(rf"rgst_([0-9a-f]{{{_TOKEN_ID_LEN}}})_([A-Za-z0-9]{{{_SECRET_LEN}}})\Z")
_TOKEN_ID_RE = re.compile(rf"[0-9a-f]{{{_TOKEN_ID_LEN}}}\Z")

AUTH_MODES = ("auto", "tokens", "local")
RESERVED_NAMES = frozenset({"local", "system", "anonymous", "me"})
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
MAX_DISPLAY_NAME = 255
MAX_EMAIL = 320
MAX_TOKEN_NAME = 128
MAX_SCOPE_ENTRIES = 100
#: last_used_at is written at most this often per token (not one write per request).
LAST_USED_RESOLUTION = timedelta(seconds=60)
#: How long the answer "no user exists yet" (local mode) is reused. "A user exists" is
#: final (users are never deleted) and is remembered for the life of the process.
LOCAL_MODE_TTL_SECONDS = 1.0

_hasher = PasswordHasher()



@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so both paths cost the same time.

    Computed on first use, not at import: an argon2 hash costs ~0.3 s and 64 MiB of peak
    memory that a server start should not pay.
    """
    return _hasher.hash(secrets.token_hex(16))

_local_warned = False
_local_warn_lock = threading.Lock()


# --------------------------------------------------------------------------- domain


@dataclass(frozen=True, slots=True)
class Principal:
    """A user, team or service account (never carries a password or its hash)."""

    id: int
    name: str
    kind: PrincipalKind
    display_name: str
    email: str | None
    disabled: bool
    has_password: bool
    created_at: datetime
    created_by: str
    teams: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RoleBinding:
    id: int
    principal: str
    principal_kind: str
    role: str
    scope_type: str
    scope: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token's public description; its secret is shown once, at creation, and never stored."""

    token_id: str
    principal: str
    name: str
    permissions: list[str] | None
    models: list[str] | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None

    @property
    def prefix(self) -> str:
        """The public, loggable part of the token (``rgst_<token_id>``)."""
        return f"{TOKEN_PREFIX}{self.token_id}"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: ApiToken
    secret: str  # the whole ``rgst_…`` string: returned once, never stored


@dataclass(frozen=True, slots=True)
class WhoAmI:
    actor: Actor
    principal: Principal | None
    grants: tuple[Grant, ...]
    local_mode: bool
    auth_mode: str


def parse_token(token: str) -> tuple[str, str]:
    """(token_id, secret) of an ``rgst_…`` token, or :class:`Unauthenticated`."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
        raise Unauthenticated("not a Regista API token (tokens start with 'rgst_')",
                              details={"reason": "malformed_token"})
    m = _TOKEN_RE.match(token)
    if m is None:
        raise Unauthenticated("malformed API token: expected rgst_<16 hex>_<40 letters or digits>",
                              details={"reason": "malformed_token"})
    return m.group(1), m.group(2)


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _validate_password(password: str) -> str:
    if not isinstance(password, str) or not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise Invalid(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters",
                      details={"field": "password"})
    return password


def _validate_display_name(text: str | None, default: str) -> str:
    text = (text or "").strip() or default
    if len(text) > MAX_DISPLAY_NAME or not text.isprintable():
        raise Invalid(f"display name must be at most {MAX_DISPLAY_NAME} printable characters",
                      details={"field": "display_name"})
    return text


def _validate_email(email: str | None) -> str | None:
    if email is None or email == "":
        return None
    if (not isinstance(email, str) or len(email) > MAX_EMAIL or email.count("@") != 1
            or not email.isprintable() or " " in email or email.startswith("@")
            or email.endswith("@")):
        raise Invalid("email is not a valid address", details={"field": "email"})
    return email


def _validate_principal_name(name: str, what: str) -> str:
    validate_name(name, what=what)
    norm = normalize_name(name)
    if norm in RESERVED_NAMES:
        raise Invalid(f"{what} {name!r} is reserved", details={"field": what, "value": name})
    return norm


# --------------------------------------------------------------------------- service


class IdentityService:
    """Principals, memberships, role bindings, tokens and authentication."""

    def __init__(self, db: Database, authz: Authorizer, settings: Settings) -> None:
        if settings.auth_mode not in AUTH_MODES:
            raise Invalid(f"auth_mode must be one of {', '.join(AUTH_MODES)}, "
                          f"not {settings.auth_mode!r}", details={"field": "auth_mode"})
        self.db = db
        self.authz = authz
        self.settings = settings
        self.max_token_lifetime = timedelta(days=settings.token_max_lifetime_days)
        self._local_lock = threading.Lock()
        self._local_until = 0.0
        self._users_exist = False
        # token_id -> monotonic time of our last last_used_at write (a throttle, not validity).
        self._touched: dict[str, float] = {}

    # ------------------------------------------------------------------ local mode

    def is_local_mode(self) -> bool:
        """Whether requests without credentials act as the ``local`` all-powerful actor.

        ``auth_mode=local``: always; ``tokens``: never; ``auto``: until the first user
        exists. The "no user yet" answer is reused for at most
        :data:`LOCAL_MODE_TTL_SECONDS`, so a user created by another process ends local
        mode here within a second (at once in the creating process).
        """
        mode = self.settings.auth_mode
        if mode == "local":
            self._warn_local()
            return True
        if mode != "auto" or self._users_exist:
            return False
        now = time.monotonic()
        with self._local_lock:
            if now < self._local_until:
                return True
        with self.db.read() as conn:
            exists = q.any_user_exists(conn)
        with self._local_lock:
            if exists:
                self._users_exist = True
                return False
            self._local_until = now + LOCAL_MODE_TTL_SECONDS
        self._warn_local()
        return True

    def local_mode_cached(self) -> bool:
        """True when :meth:`is_local_mode` is known to be True without a database read."""
        mode = self.settings.auth_mode
        if mode == "local":
            return True
        if mode != "auto" or self._users_exist:
            return False
        with self._local_lock:
            return time.monotonic() < self._local_until

    @staticmethod
    def _warn_local() -> None:
        global _local_warned
        with _local_warn_lock:
            if _local_warned:
                return
            _local_warned = True
        log.warning(
            "Regista is in LOCAL single-user mode: requests without credentials act as "
            "'local' with every permission. Create the first user "
            "(`regista users create NAME --admin`) to require authentication."
        )

    def local_actor(self, request_id: str | None = None) -> Actor:
        return Actor(name="local", local_mode=True, request_id=request_id)

    # ------------------------------------------------------------------ authentication

    def authenticate_token(self, token: str, *, request_id: str | None = None) -> tuple[Actor, str]:
        """The actor an ``rgst_…`` token stands for, and the token id; or Unauthenticated."""
        token_id, secret = parse_token(token)
        now = utcnow()
        with self.db.read() as conn:
            row = q.token_by_token_id(conn, token_id)
            # Compare even when the id is unknown, so timing says nothing either way.
            expected = row.secret_hash if row is not None else _secret_hash("x" * _SECRET_LEN)
            if not hmac.compare_digest(expected, _secret_hash(secret)) or row is None:
                raise Unauthenticated("API token is not valid", details={"reason": "invalid_token"})
            if row.revoked_at is not None:
                raise Unauthenticated(f"API token {TOKEN_PREFIX}{token_id} was revoked",
                                      details={"reason": "revoked_token"})
            if row.expires_at is None or row.expires_at <= now:
                raise Unauthenticated(f"API token {TOKEN_PREFIX}{token_id} has expired",
                                      details={"reason": "expired_token"})
            if row.principal_disabled:
                raise Unauthenticated(f"principal {row.principal!r} is disabled",
                                      details={"reason": "disabled"})
            scopes = row.scopes if isinstance(row.scopes, dict) else {}
            perms = scopes.get("permissions")
            models = scopes.get("models")
            actor = Actor(
                name=row.principal,
                kind=PrincipalKind(row.principal_kind),
                principal_id=row.principal_id,
                token_scopes=(tuple(sorted(p.value for p in expand_scopes(perms)))
                              if perms is not None else None),
                token_models=tuple(models) if models is not None else None,
                request_id=request_id,
            )
            self._prime(actor, conn)
        self._touch(row.id, token_id, row.last_used_at, now)
        return actor, token_id

    def _prime(self, actor: Actor, conn: Connection) -> None:
        # Resolve grants now, on this read connection, so later checks inside a write
        # transaction need no second connection.
        if isinstance(self.authz, RoleAuthorizer):
            self.authz.grants(actor, conn)

    def _touch(self, pk: int, token_id: str, last_used: datetime | None, now: datetime) -> None:
        if last_used is not None and now - last_used < LAST_USED_RESOLUTION:
            return
        mono = time.monotonic()
        if mono - self._touched.get(token_id, -1e9) < LAST_USED_RESOLUTION.total_seconds():
            return
        if len(self._touched) > 10_000:
            self._touched.clear()
        self._touched[token_id] = mono
        try:
            with self.db.write() as conn:
                q.touch_token(conn, pk, now, now - LAST_USED_RESOLUTION)
        except SQLAlchemyError as exc:  # best effort: never fail a request over it
            log.warning("could not record token use: %s", exc.__class__.__name__)

    def actor_for_user(self, name: str, *, request_id: str | None = None) -> Actor:
        """The actor of an enabled user (web session, trusted proxy), or Unauthenticated."""
        if not isinstance(name, str) or not name or len(name) > 128:
            raise Unauthenticated("unknown user", details={"reason": "unknown_user"})
        norm = normalize_name(name)
        with self.db.read() as conn:
            row = q.principal_by_name(conn, norm)
            if row is None or row.kind != PrincipalKind.USER:
                raise Unauthenticated(f"user {name[:128]!r} is not registered in Regista",
                                      details={"reason": "unknown_user"})
            if row.disabled:
                raise Unauthenticated(f"user {row.name!r} is disabled", details={"reason": "disabled"})
            actor = Actor(name=row.name, kind=PrincipalKind.USER, principal_id=row.id,
                          request_id=request_id)
            self._prime(actor, conn)
            return actor

    def authenticate_password(self, name: str, password: str, *,
                              request_id: str | None = None) -> Actor:
        """Check a user's password (web sign-in); Unauthenticated on any mismatch."""
        failed = Unauthenticated("invalid user name or password", details={"reason": "bad_credentials"})
        if (not isinstance(name, str) or not isinstance(password, str) or not name
                or len(name) > 128 or len(password) > MAX_PASSWORD):
            raise failed
        with self.db.read() as conn:
            row = q.principal_by_name(conn, normalize_name(name))
        stored = row.password_hash if row is not None and row.kind == PrincipalKind.USER else None
        try:
            _hasher.verify(stored or _dummy_hash(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            raise failed from None
        if row is None or stored is None:
            raise failed
        if row.disabled:
            raise Unauthenticated(f"user {row.name!r} is disabled", details={"reason": "disabled"})
        if _hasher.check_needs_rehash(stored):
            with self.db.write() as conn:
                q.update_principal(conn, row.id, {"password_hash": _hasher.hash(password)})
        return self.actor_for_user(row.name, request_id=request_id)

    # ------------------------------------------------------------------ principals

    def create_user(self, actor: Actor, name: str, *, display_name: str | None = None,
                    email: str | None = None, password: str | None = None,
                    admin: bool = False) -> Principal:
        """Create a user; ``admin`` also grants the admin role at registry scope.

        In local mode this is how the first admin is bootstrapped; it ends local mode.
        """
        norm = _validate_principal_name(name, "user name")
        values = self._principal_values(actor, norm, PrincipalKind.USER, display_name or name)
        values["email"] = _validate_email(email)
        if password is not None:
            _validate_password(password)
        self.authz.require(actor, Permission.PRINCIPAL_MANAGE)
        if password is not None:  # hashing is slow on purpose: only for allowed callers
            values["password_hash"] = _hasher.hash(password)
        with self._writing(f"a principal named {norm!r} already exists") as conn:
            pid = self._insert_principal(conn, actor, values)
            if admin:
                self._insert_binding(conn, actor, pid, norm, "user", "admin", ScopeType.REGISTRY, "")
            principal = self._principal(conn, pid)
        with self._local_lock:
            self._users_exist = True
        return principal

    def create_service_account(self, actor: Actor, name: str, *,
                               display_name: str | None = None) -> Principal:
        """Create a service account (authenticates with API tokens only)."""
        norm = _validate_principal_name(name, "service account name")
        values = self._principal_values(actor, norm, PrincipalKind.SERVICE, display_name or name)
        self.authz.require(actor, Permission.PRINCIPAL_MANAGE)
        with self._writing(f"a principal named {norm!r} already exists") as conn:
            pid = self._insert_principal(conn, actor, values)
            return self._principal(conn, pid)

    def create_team(self, actor: Actor, name: str, *, display_name: str | None = None) -> Principal:
        """Create a team; its members hold its role bindings."""
        norm = _validate_principal_name(name, "team name")
        values = self._principal_values(actor, norm, PrincipalKind.TEAM, display_name or name)
        self.authz.require(actor, Permission.PRINCIPAL_MANAGE)
        with self._writing(f"a principal named {norm!r} already exists") as conn:
            pid = self._insert_principal(conn, actor, values)
            return self._principal(conn, pid)

    def _principal_values(self, actor: Actor, norm: str, kind: PrincipalKind,
                          display_name: str) -> dict[str, Any]:
        return {"name": norm, "kind": kind.value,
                "display_name": _validate_display_name(display_name, norm),
                "email": None, "password_hash": None, "disabled": False,
                "created_at": utcnow(), "created_by": actor.name}

    @contextmanager
    def _writing(self, conflict: str) -> Iterator[Connection]:
        """A write transaction that turns a unique-key race into a 409 and clears caches."""
        try:
            with self.db.write() as conn:
                yield conn
        except IntegrityError:
            raise Conflict(conflict, details={"rule": "unique"}) from None
        finally:
            self._invalidate()

    def _invalidate(self) -> None:
        if isinstance(self.authz, RoleAuthorizer):
            self.authz.invalidate()

    def _insert_principal(self, conn: Connection, actor: Actor, values: dict[str, Any]) -> int:
        if q.principal_by_name(conn, values["name"]) is not None:
            raise Conflict(f"a principal named {values['name']!r} already exists",
                           details={"name": values["name"]})
        pid = q.insert_principal(conn, values)
        audit.append(conn, actor, "principal.create", at=values["created_at"], target=values["name"],
                     after={"kind": values["kind"], "display_name": values["display_name"],
                            "email": values["email"],
                            "password_set": values["password_hash"] is not None})
        return pid

    def _principal(self, conn: Connection, pid: int) -> Principal:
        row = q.principal_by_id(conn, pid)
        assert row is not None
        return self._to_principals(conn, [row])[0]

    @staticmethod
    def _to_principals(conn: Connection, rows: Sequence[Any]) -> list[Principal]:
        ids = [r.id for r in rows]
        teams = q.teams_of(conn, ids)
        members = q.members_of(conn, [r.id for r in rows if r.kind == PrincipalKind.TEAM])
        return [
            Principal(id=r.id, name=r.name, kind=PrincipalKind(r.kind), display_name=r.display_name,
                      email=r.email, disabled=bool(r.disabled),
                      has_password=r.password_hash is not None, created_at=r.created_at,
                      created_by=r.created_by, teams=teams.get(r.id, []),
                      members=members.get(r.id, []))
            for r in rows
        ]

    def _row(self, conn: Connection, name: str, kind: PrincipalKind | None = None) -> Any:
        if not isinstance(name, str) or not name or len(name) > 128:
            raise NotFound("principal not found", details={"name": str(name)[:128]})
        row = q.principal_by_name(conn, normalize_name(name))
        if row is None or (kind is not None and row.kind != kind):
            what = kind.value if kind is not None else "principal"
            what = {"service": "service account"}.get(what, what)
            raise NotFound(f"{what} {name!r} not found", details={"name": name})
        return row

    def get_principal(self, actor: Actor, name: str, kind: PrincipalKind | None = None) -> Principal:
        self.authz.require(actor, Permission.PRINCIPAL_MANAGE)
        with self.db.read() as conn:
            return self._to_principals(conn, [self._row(conn, name, kind)])[0]

    def list_principals(self, actor: Actor, kind: PrincipalKind | None = None) -> list[Principal]:
        """Principals by name; teams are readable by anyone who can read the registry."""
        if kind == PrincipalKind.TEAM:
            self.authz.require(actor, Permission.MODEL_READ)
        else:
            self.authz.require(actor, Permission.PRINCIPAL_MANAGE)
        with self.db.read() as conn:
            return self._to_principals(conn, q.list_principals(conn, kind.value if kind else None))

    def set_disabled(self, actor: Actor, name: str, disabled: bool,
                     kind: PrincipalKind | None = None) -> Principal:
        """Disable (or re-enable) a principal: its tokens, sessions and bindings stop at once."""
        self.authz.require(actor, Permission.PRINCIPAL_MANAGE)
        with self._writing("the principal changed concurrently; retry") as conn:
            row = self._row(conn, name, kind)
            if bool(row.disabled) != disabled:
                before = q.registry_admins(conn)
                q.update_principal(conn, row.id, {"disabled": disabled})
                self._keep_an_admin(conn, before)
                audit.append(conn, actor, "principal.disable" if disabled else "principal.enable",
                             at=utcnow(), target=row.name, before={"disabled": bool(row.disabled)},
                             after={"disabled": disabled})
            return self._principal(conn, row.id)

    def set_password(self, actor: Actor, name: str, password: str, *,
                     current_password: str | None = None) -> None:
        """Set a user's password: an admin for anyone, a user for itself with its current one."""
        _validate_password(password)
        own = actor.principal_id is not None and normalize_name(name) == actor.name
        if not own:
            self.authz.require(actor, Permission.PRINCIPAL_MANAGE)
        elif actor.token_scopes is not None or actor.token_models is not None:
            # A narrowed token must not be able to turn itself into a full web session.
            raise Forbidden("a restricted token cannot change its user's password",
                            details={"permission": Permission.PRINCIPAL_MANAGE.value})
        new_hash = _hasher.hash(password)
        with self.db.write() as conn:
            row = self._row(conn, name, PrincipalKind.USER)
            if own and row.password_hash is not None:
                try:
                    _hasher.verify(row.password_hash, current_password or "")
                except (VerifyMismatchError, VerificationError, InvalidHashError):
                    raise Forbidden("the current password is not correct",
                                    details={"field": "current_password"}) from None
            q.update_principal(conn, row.id, {"password_hash": new_hash})
            audit.append(conn, actor, "principal.password", at=utcnow(), target=row.name,
                         after={"password_set": True})

    # ------------------------------------------------------------------ teams

    def add_member(self, actor: Actor, team: str, member: str) -> Principal:
        """Add a user or service account to a team (idempotent)."""
        self.authz.require(actor, Permission.PRINCIPAL_MANAGE, team=normalize_name(team))
        with self._writing("the team changed concurrently; retry") as conn:
            t = self._row(conn, team, PrincipalKind.TEAM)
            m = self._row(conn, member)
            if m.kind == PrincipalKind.TEAM:
                raise Invalid("teams cannot be members of teams", details={"field": "member"})
            if q.add_member(conn, t.id, m.id):
                audit.append(conn, actor, "team.member.add", at=utcnow(), target=t.name,
                             after={"member": m.name})
            return self._principal(conn, t.id)

    def remove_member(self, actor: Actor, team: str, member: str) -> Principal:
        """Remove a member from a team (404 if it was not one)."""
        self.authz.require(actor, Permission.PRINCIPAL_MANAGE, team=normalize_name(team))
        with self._writing("the team changed concurrently; retry") as conn:
            t = self._row(conn, team, PrincipalKind.TEAM)
            m = self._row(conn, member)
            before = q.registry_admins(conn)
            if not q.remove_member(conn, t.id, m.id):
                raise NotFound(f"{m.name!r} is not a member of team {t.name!r}",
                               details={"team": t.name, "member": m.name})
            self._keep_an_admin(conn, before)
            audit.append(conn, actor, "team.member.remove", at=utcnow(), target=t.name,
                         before={"member": m.name})
            return self._principal(conn, t.id)

    @staticmethod
    def _keep_an_admin(conn: Connection, before: set[int]) -> None:
        # Never lock everyone out: some enabled principal must stay a registry admin.
        if before and not q.registry_admins(conn):
            raise Conflict("this change would leave the registry without an enabled admin; "
                           "grant admin to another principal first", details={"rule": "last_admin"})

    # ------------------------------------------------------------------ role bindings

    def _scope(self, model: str | None,
               team: str | None) -> tuple[ScopeType, str]:
        if model and team:
            raise Invalid("a role binding is at registry, team or model scope, not both team and model",
                          details={"field": "scope"})
        if model:
            validate_name(model)
            return ScopeType.MODEL, normalize_name(model)
        if team:
            validate_name(team, what="team name")
            return ScopeType.TEAM, normalize_name(team)
        return ScopeType.REGISTRY, ""

    def _require_at(self, actor: Actor, scope_type: ScopeType, scope: str) -> None:
        self.authz.require(actor, Permission.PRINCIPAL_MANAGE,
                           model=scope if scope_type == ScopeType.MODEL else None,
                           team=scope if scope_type == ScopeType.TEAM else None)

    def grant_role(self, actor: Actor, principal: str, role: str, *, model: str | None = None,
                   team: str | None = None) -> RoleBinding:
        """Bind ``role`` to a principal at registry, team or model scope (idempotent)."""
        r = parse_role(role)
        scope_type, scope = self._scope(model, team)
        self._require_at(actor, scope_type, scope)
        with self._writing("this role binding was just granted concurrently; retry") as conn:
            p = self._row(conn, principal)
            if scope_type == ScopeType.MODEL:
                exists, _ = q.model_owner_team(conn, scope)
                if not exists:
                    raise NotFound(f"model {model!r} not found", details={"model": model})
            elif scope_type == ScopeType.TEAM:
                self._row(conn, scope, PrincipalKind.TEAM)
            found = q.find_binding(conn, p.id, r.value, scope_type.value, scope)
            if found is None:
                bid = self._insert_binding(conn, actor, p.id, p.name, p.kind, r.value, scope_type, scope)
            else:
                bid = found.id
            b = q.binding_by_id(conn, bid)
            return self._binding(b)

    def _insert_binding(self, conn: Connection, actor: Actor, pid: int, pname: str, pkind: str,
                        role: str, scope_type: ScopeType, scope: str) -> int:
        now = utcnow()
        bid = q.insert_binding(conn, {"principal_id": pid, "role": role,
                                      "scope_type": scope_type.value, "scope": scope,
                                      "created_at": now, "created_by": actor.name})
        audit.append(conn, actor, "role.grant", at=now, target=pname,
                     model=scope if scope_type == ScopeType.MODEL else None,
                     after={"principal": pname, "principal_kind": pkind, "role": role,
                            "scope_type": scope_type.value, "scope": scope})
        return bid

    def revoke_role(self, actor: Actor, binding_id: int) -> RoleBinding:
        """Remove one role binding by id."""
        with self._writing("the role binding changed concurrently; retry") as conn:
            b = q.binding_by_id(conn, binding_id)
            if b is None:
                raise NotFound(f"role binding {binding_id} not found", details={"id": binding_id})
            self._require_at(actor, ScopeType(b.scope_type), b.scope)
            before = q.registry_admins(conn)
            q.delete_binding(conn, binding_id)
            self._keep_an_admin(conn, before)
            audit.append(conn, actor, "role.revoke", at=utcnow(), target=b.principal,
                         model=b.scope if b.scope_type == ScopeType.MODEL else None,
                         before={"principal": b.principal, "role": b.role,
                                 "scope_type": b.scope_type, "scope": b.scope})
            return self._binding(b)

    def list_role_bindings(self, actor: Actor, *, principal: str | None = None,
                           model: str | None = None, team: str | None = None) -> list[RoleBinding]:
        """Bindings, optionally of one principal and/or at one team or model scope."""
        scope_type, scope = self._scope(model, team)
        self._require_at(actor, scope_type, scope)
        with self.db.read() as conn:
            pid = self._row(conn, principal).id if principal else None
            rows = q.list_bindings(
                conn, principal_id=pid,
                scope_type=None if scope_type == ScopeType.REGISTRY else scope_type.value,
                scope=None if scope_type == ScopeType.REGISTRY else scope,
            )
            return [self._binding(b) for b in rows]

    @staticmethod
    def _binding(b: Any) -> RoleBinding:
        return RoleBinding(id=b.id, principal=b.principal, principal_kind=b.principal_kind,
                           role=b.role, scope_type=b.scope_type, scope=b.scope,
                           created_at=b.created_at, created_by=b.created_by)

    # ------------------------------------------------------------------ tokens

    def create_token(
        self,
        actor: Actor,
        *,
        name: str = "default",
        principal: str | None = None,
        scopes: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        expires_in_days: int | None = None,
        expires_at: datetime | None = None,
    ) -> IssuedToken:
        """Issue an API token; the returned secret is never shown again.

        Without ``principal`` the token is the caller's own. Issuing one for another
        principal (a service account, a new user) needs ``principal:manage``. A token
        used to issue a token can only hand on what it holds itself.
        """
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_TOKEN_NAME \
                or not name.isprintable():
            raise Invalid(f"token name must be 1..{MAX_TOKEN_NAME} printable characters",
                          details={"field": "name"})
        perms, model_list = self._token_scopes(actor, scopes, models)
        expiry = self._token_expiry(expires_in_days, expires_at)
        if principal is None:
            if actor.principal_id is None:
                raise Invalid(
                    "the local actor owns no tokens: name the principal the token is for",
                    details={"field": "principal"})
            owner_name = actor.name
        else:
            owner_name = normalize_name(principal) if isinstance(principal, str) else ""
            if owner_name != actor.name or actor.principal_id is None:
                self.authz.require(actor, Permission.PRINCIPAL_MANAGE)
        token_id = secrets.token_hex(_TOKEN_ID_LEN // 2)
        secret = "".join(secrets.choice(_BASE62) for _ in range(_SECRET_LEN))
        now = utcnow()
        with self.db.write() as conn:
            p = self._row(conn, owner_name if principal is None else principal)
            if p.kind == PrincipalKind.TEAM:
                raise Invalid("teams cannot hold tokens: issue one for a user or service account",
                              details={"field": "principal"})
            if p.disabled:
                raise Conflict(f"principal {p.name!r} is disabled", details={"principal": p.name})
            scope_doc = {"permissions": perms, "models": model_list}
            pk = q.insert_token(conn, {"token_id": token_id, "secret_hash": _secret_hash(secret),
                                       "principal_id": p.id, "name": name.strip(),
                                       "scopes": scope_doc, "expires_at": expiry,
                                       "created_at": now})
            audit.append(conn, actor, "token.create", at=now, target=p.name,
                         after={"token_id": token_id, "name": name.strip(), "principal": p.name,
                                "scopes": scope_doc, "expires_at": expiry.isoformat()})
            row = q.token_by_token_id(conn, token_id)
            assert row is not None and row.id == pk
            return IssuedToken(token=self._token(row), secret=f"{TOKEN_PREFIX}{token_id}_{secret}")

    def _token_scopes(self, actor: Actor, scopes: Sequence[str] | None,
                      models: Sequence[str] | None) -> tuple[list[str] | None, list[str] | None]:
        perms: list[str] | None = None
        if scopes is not None:
            if isinstance(scopes, str) or len(scopes) > MAX_SCOPE_ENTRIES:
                raise Invalid(f"scopes must be a list of at most {MAX_SCOPE_ENTRIES} entries",
                              details={"field": "scopes"})
            expand_scopes(scopes)  # validates each entry
            perms = sorted(set(scopes))
        model_list: list[str] | None = None
        if models is not None:
            if isinstance(models, str) or len(models) > MAX_SCOPE_ENTRIES:
                raise Invalid(f"models must be a list of at most {MAX_SCOPE_ENTRIES} names",
                              details={"field": "models"})
            model_list = sorted({normalize_name(validate_name(m)) for m in models})
        # A restricted token can only issue tokens inside its own restriction.
        if actor.token_scopes is not None:
            if perms is None:
                perms = list(actor.token_scopes)
            extra = {p.value for p in expand_scopes(perms)} - set(actor.token_scopes)
            if extra:
                raise Forbidden("a token cannot issue a token with more rights than its own: "
                                + ", ".join(sorted(extra)),
                                details={"permission": sorted(extra)[0], "field": "scopes"})
        if actor.token_models is not None:
            if model_list is None:
                model_list = list(actor.token_models)
            outside = set(model_list) - set(actor.token_models)
            if outside:
                raise Forbidden("a token restricted to models cannot issue one for other models: "
                                + ", ".join(sorted(outside)),
                                details={"permission": Permission.MODEL_READ.value, "field": "models"})
        return perms, model_list

    def _token_expiry(self, days: int | None, at: datetime | None) -> datetime:
        now = utcnow()
        limit = now + self.max_token_lifetime
        if days is not None and at is not None:
            raise Invalid("give expires_in_days or expires_at, not both", details={"field": "expires_at"})
        if days is not None:
            if isinstance(days, bool) or not isinstance(days, int) or days < 1 \
                    or days > self.max_token_lifetime.days:
                raise Invalid(f"expires_in_days must be 1..{self.max_token_lifetime.days}",
                              details={"field": "expires_in_days"})
            return now + timedelta(days=days)
        if at is not None:
            if at.tzinfo is None:
                raise Invalid("expires_at needs a time zone", details={"field": "expires_at"})
            if at <= now:
                raise Invalid("expires_at must be in the future", details={"field": "expires_at"})
            if at > limit + timedelta(seconds=60):
                raise Invalid(f"a token may live at most {self.max_token_lifetime.days} days",
                              details={"field": "expires_at"})
            return at
        return limit

    def list_tokens(self, actor: Actor, *, principal: str | None = None,
                    all_principals: bool = False, include_revoked: bool = True) -> list[ApiToken]:
        """The caller's tokens; anyone's (or one principal's) with ``principal:manage``."""
        if all_principals or (principal is not None and normalize_name(principal) != actor.name):
            self.authz.require(actor, Permission.PRINCIPAL_MANAGE)
        with self.db.read() as conn:
            if principal is not None:
                ids: list[int] | None = [self._row(conn, principal).id]
            elif all_principals:
                ids = None
            elif actor.principal_id is None:
                return []
            else:
                ids = [actor.principal_id]
            return [self._token(r) for r in q.list_tokens(conn, principal_ids=ids,
                                                          include_revoked=include_revoked)]

    def revoke_token(self, actor: Actor, token_id: str) -> ApiToken:
        """Revoke a token at once, on every server process (idempotent).

        Someone else's token is "not found" unless the caller holds ``principal:manage``,
        so token ids cannot be probed.
        """
        if isinstance(token_id, str) and token_id.startswith(TOKEN_PREFIX):
            token_id = token_id[len(TOKEN_PREFIX):].split("_", 1)[0]
        if not isinstance(token_id, str) or not _TOKEN_ID_RE.match(token_id):
            raise NotFound("token not found", details={"token_id": str(token_id)[:40]})
        missing = NotFound(f"token {TOKEN_PREFIX}{token_id} not found", details={"token_id": token_id})
        with self.db.write() as conn:
            row = q.token_by_token_id(conn, token_id)
            if row is None:
                raise missing
            if row.principal_id != actor.principal_id and not self.authz_allows(
                    actor, Permission.PRINCIPAL_MANAGE):
                raise missing
            if row.revoked_at is None:
                now = utcnow()
                q.revoke_token(conn, row.id, now)
                audit.append(conn, actor, "token.revoke", at=now, target=row.principal,
                             before={"token_id": token_id, "name": row.name, "revoked": False},
                             after={"token_id": token_id, "revoked": True})
                row = q.token_by_token_id(conn, token_id)
            return self._token(row)

    def authz_allows(self, actor: Actor, permission: Permission) -> bool:
        try:
            self.authz.require(actor, permission)
        except Forbidden:
            return False
        return True

    @staticmethod
    def _token(row: Any) -> ApiToken:
        scopes = row.scopes if isinstance(row.scopes, dict) else {}
        return ApiToken(token_id=row.token_id, principal=row.principal, name=row.name,
                        permissions=scopes.get("permissions"), models=scopes.get("models"),
                        expires_at=row.expires_at, revoked_at=row.revoked_at,
                        created_at=row.created_at, last_used_at=row.last_used_at)

    # ------------------------------------------------------------------ who am I

    def whoami(self, actor: Actor) -> WhoAmI:
        """The acting principal, its teams and the roles it holds (directly or via teams)."""
        principal = None
        grants: tuple[Grant, ...] = ()
        if actor.principal_id is not None:
            with self.db.read() as conn:
                row = q.principal_by_id(conn, actor.principal_id)
                if row is not None:
                    principal = self._to_principals(conn, [row])[0]
            if isinstance(self.authz, RoleAuthorizer):
                grants = self.authz.grants(actor)
        return WhoAmI(actor=actor, principal=principal, grants=grants,
                      local_mode=actor.local_mode,
                      auth_mode=self.settings.auth_mode)

    # ------------------------------------------------------------------ denials

    def record_denial(self, actor: Actor, permission: str, *, target: str,
                      model: str | None = None, detail: dict[str, Any] | None = None) -> None:
        """Audit a refused governed action, in its own transaction (the refused one rolled back)."""
        with self.db.write() as conn:
            audit.append(conn, actor, str(permission)[:64], at=utcnow(), outcome="denied",
                         model=model, target=target[:512], after=detail or None)


def role_permissions() -> dict[str, list[str]]:
    """The role table as plain data (for the API and docs)."""
    return {r.value: sorted(p.value for p in perms) for r, perms in ROLE_PERMISSIONS.items()}
