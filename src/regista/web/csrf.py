"""CSRF protection for the web UI's forms: a session-bound HMAC token.

Every browser gets a random nonce in the ``regista_csrf`` cookie (HttpOnly, SameSite=Lax).
A form carries ``HMAC(secret, nonce, session id)`` in a hidden ``csrf_token`` field (htmx
requests send the same form field). A state-changing request is accepted only when the
token matches the cookie it was issued for and the current session, and when its
``Origin`` (if the browser sends one) is this site. Signing in or out changes the
session id, so tokens issued before are void.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request

from regista.errors import Forbidden
from regista.web.session import CSRF_COOKIE, SAFE_METHODS, WebSession

FIELD = "csrf_token"
HEADER = "x-csrf-token"
_CONTEXT = b"regista.web.csrf.v1\x00"
_NONCE_STATE = "csrf_nonce"
_NEW_NONCE_STATE = "csrf_new_nonce"


def _expected(secret: bytes, nonce: str, session: WebSession | None) -> str:
    sid = session.sid if session is not None else ""
    mac = hmac.new(secret, _CONTEXT + nonce.encode() + b"\x00" + sid.encode(), hashlib.sha256)
    return mac.hexdigest()


def _nonce(request: Request) -> str:
    state = request.scope.setdefault("state", {})
    nonce = state.get(_NONCE_STATE)
    if nonce is None:
        nonce = state.get("web_cookies", {}).get(CSRF_COOKIE)
        if not nonce or len(nonce) > 64 or not nonce.replace("-", "").replace("_", "").isalnum():
            nonce = secrets.token_urlsafe(24)
            state[_NEW_NONCE_STATE] = nonce  # the response must set the cookie
        state[_NONCE_STATE] = nonce
    return str(nonce)


def new_nonce_to_set(request: Request) -> str | None:
    """A nonce created during this request, which the response must send as a cookie."""
    value = request.scope.get("state", {}).get(_NEW_NONCE_STATE)
    return str(value) if value else None


def csrf_token(request: Request, session: WebSession | None = None) -> str:
    """The token forms rendered for this request must carry."""
    if session is None:
        session = request.scope.get("state", {}).get("web_session")
    secret: bytes = request.app.state.services.secret
    return _expected(secret, _nonce(request), session)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # Browsers send Origin on cross-site POSTs; "null" comes from sandboxed or
        # privacy-sensitive contexts, which we refuse below unless the token is valid.
        return origin is None
    host = request.headers.get("host", "")
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc.lower() == host.lower()


async def verify_csrf(request: Request) -> None:
    """Refuse (403) a state-changing web request without a valid CSRF token."""
    if request.method in SAFE_METHODS:
        return
    if not _same_origin(request):
        raise Forbidden("cross-site request refused", details={"reason": "origin"})
    cookie = request.scope.get("state", {}).get("web_cookies", {}).get(CSRF_COOKIE)
    sent = request.headers.get(HEADER)
    if sent is None:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(FIELD)
            sent = value if isinstance(value, str) else None
    if not cookie or not sent:
        raise Forbidden("missing CSRF token: reload the page and submit the form again",
                        details={"reason": "csrf"})
    session = request.scope.get("state", {}).get("web_session")
    expected = _expected(request.app.state.services.secret, cookie, session)
    if not hmac.compare_digest(expected, sent):
        raise Forbidden("invalid CSRF token: reload the page and submit the form again",
                        details={"reason": "csrf"})
