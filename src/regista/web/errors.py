"""Friendly HTML error pages for the web UI; the JSON API keeps its JSON errors.

:func:`install_html_errors` wraps the app's existing exception handlers: a request for a
web page (any path outside ``/api``) gets an HTML page naming the problem (never a
traceback), an unauthenticated visitor is sent to the sign-in page, and every other
request is answered by the original JSON handler, unchanged.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from regista.errors import Forbidden, RegistryError
from regista.web.session import _SECURITY_HEADERS, SAFE_METHODS, is_web_path

log = logging.getLogger("regista.web")

Handler = Callable[[Request, Exception], Response | Awaitable[Response]]

_HEADINGS = {
    400: "That request is not valid",
    401: "Please sign in",
    403: "You may not do that",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    416: "Range not satisfiable",
    422: "That input is not valid",
    503: "Temporarily unavailable",
}
_HINTS = {
    403: "If you think you should be allowed, ask an administrator for the right role.",
    404: "Check the address, or find what you are looking for from the dashboard or the "
         "model catalogue.",
}


def _actor_or_none(request: Request) -> Any:
    state = request.scope.get("state", {})
    if state.get("actor") is not None:
        return state["actor"]
    try:
        from regista.api.deps import get_actor

        return get_actor(request)
    except Exception:  # an error page must render even when authentication fails
        return None


def error_page(request: Request, status: int, message: str, *, code: str | None = None) -> Response:
    """The HTML page for an error of ``status`` on a web request."""
    from regista.web.render import render

    _actor_or_none(request)
    context = {
        "heading": _HEADINGS.get(status, "Something went wrong" if status >= 500 else "Error"),
        "message": message,
        "hint": _HINTS.get(status, ""),
        "status": status,
        "code": code,
        "request_id": request.scope.get("state", {}).get("request_id"),
    }
    try:
        response: Response = render(request, "error.html", context, status=status)
    except Exception:
        log.exception("error page failed to render")
        response = HTMLResponse("<!doctype html><title>Error</title><h1>Something went wrong</h1>",
                                status_code=status)
    # A 500 is answered outside the web middleware: add its security headers here.
    present = {k.lower() for k in response.headers}
    for key, value in _SECURITY_HEADERS:
        if key.decode() not in present:
            response.headers[key.decode()] = value.decode()
    return response


def _to_sign_in(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _web_response(request: Request, exc: Exception) -> Response:
    if isinstance(exc, RegistryError):
        if exc.status == 401 and request.method in SAFE_METHODS:
            return _to_sign_in(request)
        if exc.status >= 500:
            log.error("internal error: %s", exc.message)
            return error_page(request, exc.status, "The server could not complete the request.",
                              code=exc.code)
        return error_page(request, exc.status, exc.message, code=exc.code)
    if isinstance(exc, RequestValidationError):
        problems = []
        for e in exc.errors()[:5]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "path", "body"))
            problems.append(f"{where or 'request'}: {str(e.get('msg', ''))[:200]}")
        return error_page(request, 400, "; ".join(problems) or "invalid request", code="invalid")
    if isinstance(exc, StarletteHTTPException):
        message = {404: "There is no page at this address.",
                   405: "This page does not accept that kind of request."}.get(
            exc.status_code, str(exc.detail))
        return error_page(request, exc.status_code, message)
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return error_page(request, 500, "The server hit an unexpected problem. It has been logged; "
                      "please try again, and tell an administrator if it persists.",
                      code="internal")


def _audit_denial(request: Request, exc: Forbidden) -> None:
    """Refused governed actions are audited on web pages as on the API."""
    try:
        from regista.api.auth import audit_forbidden

        audit_forbidden(request, exc)
    except Exception:  # auditing a denial must never turn it into a 500
        log.exception("could not audit a denied web request")


def _wrap(original: Handler) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handler(request: Request, exc: Exception) -> Response:
        if is_web_path(request.url.path):
            if isinstance(exc, Forbidden):
                # The audit write is blocking I/O: keep it off the event loop.
                await run_in_threadpool(_audit_denial, request, exc)
            return _web_response(request, exc)
        result = original(request, exc)
        if inspect.isawaitable(result):
            result = await result
        return result

    return handler


async def _reraise(request: Request, exc: Exception) -> Response:
    raise exc


def install_html_errors(app: FastAPI) -> None:
    """Answer errors on web pages with HTML, delegating API errors to the JSON handlers."""
    # Wrap every handler registered so far (not only the base classes): a handler for a
    # subclass such as Forbidden would otherwise win over the wrapped RegistryError one.
    for key, original in list(app.exception_handlers.items()):
        app.add_exception_handler(key, _wrap(original))
    for exc_class in (RegistryError, RequestValidationError, StarletteHTTPException, Exception):
        if exc_class not in app.exception_handlers:
            app.add_exception_handler(exc_class, _wrap(_reraise))
