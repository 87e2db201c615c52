"""What the core registry asks of governance, with the defaults used before a policy exists."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol


class GovernanceHooks(Protocol):
    def required_metadata(self, stage: str) -> list[str]:
        """Dotted provenance fields a version must carry to be in ``stage``."""

    def protected_aliases(self) -> frozenset[str]:
        """Aliases that need ``alias:set-protected`` to move."""

    def review_interval(self, risk_tier: str | None) -> timedelta | None:
        """How often a model of this risk tier must be reviewed (None: never)."""
