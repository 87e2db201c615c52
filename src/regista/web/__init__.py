"""The web UI: server-rendered pages (Jinja2 + a little htmx) over the service layer.

:func:`install_web` adds it to the ASGI app: the page router, ``/static``, the session
and security-header middleware, and HTML error pages for web paths.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def install_web(app: FastAPI) -> None:
    """Mount the web UI on ``app`` (call after the API routers and error handlers)."""
    from regista.web.errors import install_html_errors
    from regista.web.routes import router
    from regista.web.session import WebMiddleware

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_html_errors(app)
    app.add_middleware(WebMiddleware, secret=app.state.services.secret)


__all__ = ["STATIC_DIR", "install_web"]
