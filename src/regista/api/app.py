"""The ASGI application: REST API v1, web UI, error handling, limits."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from regista import __version__
from regista.api.errors import install_error_handlers
from regista.api.middleware import RequestGuard
from regista.api.responses import JSON
from regista.api.routes import audit, blobs, deployments, hygiene, identity, lifecycle, models, system
from regista.api.schemas import ErrorOut
from regista.config import Settings
from regista.service.container import Services, build_services

log = logging.getLogger("regista")


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """Build the app. Pass ``services`` to share them (tests); else built from settings."""
    settings = settings or (services.settings if services else Settings())
    owned = services is None
    svc = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            svc.close()

    app = FastAPI(
        title="Regista",
        version=__version__,
        summary="A governance-grade model registry",
        default_response_class=JSON,
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.services = svc
    app.state.inline_calls = settings.runs_inline()  # see regista.api.lean
    install_error_handlers(app)
    for router in (system.router, models.router, blobs.router, audit.router,
                   deployments.router, identity.router, hygiene.router, lifecycle.router):
        app.include_router(router)
    app.add_middleware(RequestGuard, max_body=settings.max_request_bytes,
                       max_depth=settings.max_json_depth)
    from regista.web import install_web

    install_web(app)  # last: its HTML error pages wrap the JSON handlers above
    _document_errors(app)
    return app


def _document_errors(app: FastAPI) -> None:
    """Put ``ErrorOut`` (which routes reference, see ``error_responses``) in the document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            error = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in error.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components.setdefault("ErrorOut", error)
            schema["components"]["schemas"] = dict(sorted(components.items()))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def iter_routes(app: FastAPI) -> list[tuple[str, frozenset[str], str | None]]:
    """Every (path, methods, rule) the app serves; the route-walk test uses this."""
    from fastapi.routing import APIRoute
    from starlette.routing import Route

    from regista.api.deps import RULE_ATTR

    out: list[tuple[str, frozenset[str], str | None]] = []

    def walk(routes: list[object]) -> None:
        for r in routes:
            original = getattr(r, "original_router", None)
            if original is not None:
                walk(list(original.routes))
            elif isinstance(r, APIRoute):
                rules = [getattr(d.dependency, RULE_ATTR, None) for d in r.dependencies]
                found = next((x for x in rules if x), None)
                out.append((r.path, frozenset(r.methods or ()), found))
            elif isinstance(r, Route):
                out.append((r.path, frozenset(r.methods or ()), "public"))

    walk(list(app.routes))
    return out
