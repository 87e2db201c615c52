"""What the core registry asks of governance, with the defaults used before a policy exists."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from regista.config import Settings


class GovernanceHooks(Protocol):
    def required_metadata(self, stage: str) -> list[str]:
        """Dotted provenance fields a version must carry to be in ``stage``."""

    def protected_aliases(self) -> frozenset[str]:
        """Aliases that need ``alias:set-protected`` to move."""

    def review_interval(self, risk_tier: str | None) -> timedelta | None:
        """How often a model of this risk tier must be reviewed (None: never)."""


class SettingsHooks:
    """Defaults from :class:`Settings`: used when no policy has been applied."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def required_metadata(self, stage: str) -> list[str]:
        return list(self._settings.required_metadata) if stage == "registered" else []

    def protected_aliases(self) -> frozenset[str]:
        return frozenset()

    def review_interval(self, risk_tier: str | None) -> timedelta | None:
        return None
