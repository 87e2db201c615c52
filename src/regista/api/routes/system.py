"""Health and server information."""

from __future__ import annotations

from fastapi import APIRouter, Response

from regista import __version__
from regista.api.deps import AUTHENTICATED, PUBLIC, ServicesDep, rule
from regista.api.lean import LeanRoute
from regista.api.responses import JSON

router = APIRouter(prefix="/api/v1", tags=["system"], route_class=LeanRoute)


@router.get("/health", dependencies=[rule(PUBLIC)])
async def health() -> Response:
    """Liveness: answers without touching the database."""
    # async: nothing here blocks, so FastAPI need not hop to the thread pool for it.
    return JSON({"status": "ok"})


@router.get("/info", dependencies=[rule(AUTHENTICATED)])
def info(svc: ServicesDep) -> Response:
    """What this server runs on (no secrets)."""
    return JSON(
        {
            "version": __version__,
            "database": svc.db.dialect,
            "blob_store": svc.blob_store.describe().split(":", 1)[0],
            "auth_mode": svc.settings.auth_mode,
        }
    )
