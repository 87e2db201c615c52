"""Regista: a governance-grade model registry.

The public Python API is what this module exports: the HTTP client and the errors.
"""

from __future__ import annotations

__version__ = "0.1.0"

from regista.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    MissingMetadata,
    NotFound,
    RegistryError,
    Unauthenticated,
)

__all__ = [
    "BadRequest",
    "Client",
    "Conflict",
    "Forbidden",
    "Invalid",
    "MissingMetadata",
    "NotFound",
    "RegistryError",
    "Unauthenticated",
    "__version__",
]


def __getattr__(name: str) -> object:
    # The client pulls in httpx and rich; load it only when asked for.
    if name == "Client":
        from regista.client import Client

        return Client
    raise AttributeError(name)
