"""Choose the authorizer and the governance hooks the core registry consults.

The authorizer is the role-based one (fail closed; local single-user mode grants
everything until the first user exists); the hooks read the current policy.
"""

from __future__ import annotations

from typing import Any

from regista.config import Settings
from regista.service.access import Authorizer
from regista.service.hooks import GovernanceHooks
from regista.store.sql.engine import Database


def wire_governance(settings: Settings, db: Database,
                    secret: bytes) -> tuple[Authorizer, GovernanceHooks, dict[str, Any]]:
    from regista.service.authz import RoleAuthorizer
    from regista.service.policy import PolicyHooks, PolicyService

    authz = RoleAuthorizer(db)
    policy = PolicyService(db, authz, settings)
    return authz, PolicyHooks(policy, settings), {"policy": policy}
