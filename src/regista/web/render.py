"""Rendering pages: one Jinja2 environment (autoescape always on), filters, Markdown.

User-provided text reaches templates only as data; Jinja escapes it. The two places that
produce markup from user data do it safely: :func:`markdown_to_html` (raw HTML disabled,
dangerous link schemes refused by markdown-it) and the SVG builders of
:mod:`regista.web.svg` (every text node escaped).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from jinja2 import Environment, PackageLoader, StrictUndefined
from markdown_it import MarkdownIt
from markupsafe import Markup
from starlette.responses import HTMLResponse

from regista import __version__
from regista.web import csrf
from regista.web.session import CSRF_COOKIE, cookie_header

MAX_MARKDOWN_CHARS = 200_000


def iso(value: datetime | None) -> str:
    """An instant as ISO 8601 in UTC with its zone: ``2026-03-02T10:15:00Z``."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_date(value: datetime | None) -> str:
    if value is None:
        return ""
    return iso(value)[:10]


def human_size(n: int | None) -> str:
    """Bytes in binary units (``1.5 MiB``); exact below 1 KiB."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def fmt_metric(value: Any) -> str:
    """A metric value with four significant digits (integers as they are)."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def short_digest(value: str | None, n: int = 12) -> str:
    return (value or "")[:n]


def url_path(value: str) -> str:
    """Quote a manifest path for a URL, keeping its slashes."""
    return quote(value, safe="/")


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # commonmark preset with raw HTML off: any <tag> in the text is shown as text.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    md.enable("strikethrough")
    return md


def markdown_to_html(text: str) -> Markup:
    """Markdown rendered to safe HTML: no raw HTML, no javascript:/data: links."""
    html = _markdown().render(text[:MAX_MARKDOWN_CHARS])
    return Markup(html)  # noqa: S704 - markdown-it escapes all text; raw HTML is disabled


def query(base: str, **params: Any) -> str:
    """``base?params`` leaving out empty values (lists repeat the key)."""
    items: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None or value == "" or value is False:
            continue
        if isinstance(value, list | tuple):
            items.extend((key, str(v)) for v in value if v not in (None, ""))
        else:
            items.append((key, str(value)))
    return f"{base}?{urlencode(items)}" if items else base


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The one Jinja2 environment of the web UI (autoescape on for every template)."""
    env = Environment(
        loader=PackageLoader("regista.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(
        iso=iso, iso_date=iso_date, size=human_size, metric=fmt_metric, short=short_digest,
        url_path=url_path, markdown=markdown_to_html,
    )
    from regista.web.pages import show

    env.globals.update(version=__version__, query=query, show=show)
    return env


def render(request: Request, template: str, context: dict[str, Any], *,
           status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    """Render ``template`` with the common context (actor, CSRF token, local-mode flag)."""
    state = request.scope.get("state", {})
    actor = state.get("actor")
    ctx = {
        "request": request,
        "actor": actor,
        "signed_in": actor is not None and not getattr(actor, "local_mode", False),
        "local_mode": bool(getattr(actor, "local_mode", False)),
        "csrf_token": csrf.csrf_token(request),
        "path": request.url.path,
        "nav": context.pop("nav", None),
    }
    ctx.update(context)
    body = environment().get_template(template).render(ctx)
    response = HTMLResponse(body, status_code=status, headers=headers)
    nonce = csrf.new_nonce_to_set(request)
    if nonce:
        response.headers.append(
            "set-cookie",
            cookie_header(CSRF_COOKIE, nonce, secure=request.url.scheme == "https",
                          max_age=None),
        )
    return response
