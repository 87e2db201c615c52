"""The one place where errors become HTTP responses: ``{"error": {code, message, details}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from regista.api.responses import JSON
from regista.errors import Forbidden, RegistryError

log = logging.getLogger("regista.api")


def error_response(status: int, code: str, message: str,
                   details: dict[str, Any] | None = None) -> JSON:
    return JSON(
        {"error": {"code": code, "message": message, "details": details or {}}},
        status_code=status,
    )


def _clean_validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for e in exc.errors()[:50]:
        loc = [str(p) for p in e.get("loc", ())]
        out.append({"field": ".".join(loc), "message": str(e.get("msg", ""))[:300]})
    return out


def install_error_handlers(app: FastAPI) -> None:
    from regista.api.auth import audit_forbidden

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> JSON:
        # A refused governed action is itself audited (in its own transaction).
        await run_in_threadpool(audit_forbidden, request, exc)
        return JSON(exc.to_dict(), status_code=exc.status)

    @app.exception_handler(RegistryError)
    async def _registry_error(_: Request, exc: RegistryError) -> JSON:
        if exc.status >= 500:
            log.error("internal error: %s", exc.message)
        return JSON(exc.to_dict(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSON:
        errors = _clean_validation_errors(exc)
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        where = first["field"] or "request"
        return error_response(
            422, "invalid", f"{where}: {first['message']}", {"errors": errors}
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSON:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
                 400: "bad_request", 401: "unauthenticated", 403: "forbidden"}
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"),
                              str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSON:
        log.exception("unhandled error")
        return error_response(500, "internal", "internal server error")
