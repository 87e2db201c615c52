"""Choose the authorizer and governance hooks.

Until the governance layer lands this grants everything to the local single-user actor
and denies everyone else (fail closed).
"""

from __future__ import annotations

from typing import Any

from regista.config import Settings
from regista.errors import Forbidden
from regista.service.access import Authorizer, Permission
from regista.service.hooks import GovernanceHooks, SettingsHooks
from regista.store.sql.engine import Database


class LocalOnlyAuthorizer:
    def require(self, actor: object, permission: Permission, *, model: str | None = None,
                team: str | None = None) -> None:
        if not getattr(actor, "local_mode", False):
            raise Forbidden(f"{getattr(actor, 'name', '?')} may not {permission.value}",
                            details={"permission": permission.value})


    def holds_anywhere(self, actor: object, permission: Permission) -> bool:
        return bool(getattr(actor, "local_mode", False))


def wire_governance(settings: Settings, db: Database,
                    secret: bytes) -> tuple[Authorizer, GovernanceHooks, dict[str, Any]]:
    return LocalOnlyAuthorizer(), SettingsHooks(settings), {}
