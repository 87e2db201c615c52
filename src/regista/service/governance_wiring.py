"""Choose the authorizer, the governance hooks and the policy service.

The authorizer is the role-based one (fail closed; local single-user mode grants
everything until the first user exists); the hooks read the current policy. One seam, so
the benchmark harness can measure what governance costs.
"""

from __future__ import annotations

from regista.config import Settings
from regista.service.access import Authorizer
from regista.service.authz import RoleAuthorizer
from regista.service.hooks import GovernanceHooks
from regista.service.policy import PolicyHooks, PolicyService
from regista.store.sql.engine import Database


def wire_governance(settings: Settings, db: Database,
                    secret: bytes) -> tuple[Authorizer, GovernanceHooks, PolicyService]:
    authz = RoleAuthorizer(db)
    policy = PolicyService(db, authz, settings)
    return authz, PolicyHooks(policy, settings), policy
