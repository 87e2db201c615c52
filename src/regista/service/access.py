"""Authorisation: which actor may do what, where. Fails closed.

Every governed action is a :class:`Permission`. Services call
:meth:`Authorizer.require` before any read or write that needs one; an action with no
rule is denied.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class Permission(StrEnum):
    MODEL_READ = "model:read"
    MODEL_CREATE = "model:create"
    MODEL_UPDATE = "model:update"
    MODEL_ARCHIVE = "model:archive"
    VERSION_REGISTER = "version:register"
    VERSION_UPDATE = "version:update"
    BLOB_UPLOAD = "blob:upload"
    ALIAS_SET = "alias:set"
    ALIAS_SET_PROTECTED = "alias:set-protected"
    TRANSITION_REQUEST = "transition:request"
    TRANSITION_APPROVE = "transition:approve"
    TRANSITION_BREAK_GLASS = "transition:break-glass"
    DEPLOYMENT_RECORD = "deployment:record"
    OBSERVATION_REPORT = "observation:report"
    ENVIRONMENT_MANAGE = "environment:manage"
    POLICY_APPLY = "policy:apply"
    AUDIT_READ = "audit:read"
    PRINCIPAL_MANAGE = "principal:manage"
    HYGIENE_RUN = "hygiene:run"


class Authorizer(Protocol):
    def require(
        self,
        actor: object,
        permission: Permission,
        *,
        model: str | None = None,
        team: str | None = None,
    ) -> None:
        """Raise :class:`regista.errors.Forbidden` unless ``actor`` holds ``permission``."""

    def holds_anywhere(self, actor: object, permission: Permission) -> bool:
        """Whether ``actor`` holds ``permission`` at any scope (the coarse route check)."""

    def has_role(
        self, actor: object, role: str, *, model: str | None = None, team: str | None = None
    ) -> bool:
        """Whether ``actor`` holds ``role`` (or one including all its permissions) at this scope."""
