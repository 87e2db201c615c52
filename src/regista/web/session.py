"""Signed session cookies for the web UI, and the middleware that reads them.

A session cookie is ``base64url(json) "." base64url(hmac-sha256)`` under the registry's
secret: it names the signed-in user (password sign-in) or carries the API token the user
signed in with (token sign-in, so the token's scopes and expiry keep applying), the
instant it was issued and a random session id that CSRF tokens are bound to. Nothing in
it is secret from its owner; the signature only makes it unforgeable. It expires after
:data:`SESSION_MAX_AGE` whatever the browser does with it.

:class:`WebMiddleware` runs on every request:

- it verifies the cookie and hands the identity to authentication through the request
  scope: ``scope["state"]["session_user"]`` for a password session (read by
  :func:`regista.api.auth.authenticate`), or an ``Authorization: Bearer`` header for a
  token session. Unsafe methods (POST, PUT, PATCH, DELETE) are authenticated by the
  cookie only on web pages, where every form carries a CSRF token; the JSON API accepts
  cookies only for reading (the file download links of the version page);
- it adds the security headers (a strict Content-Security-Policy and friends) to every
  HTML response.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "regista_session"
CSRF_COOKIE = "regista_csrf"
SESSION_MAX_AGE = 12 * 3600
"""Seconds a session lasts after sign-in."""
MAX_COOKIE_LENGTH = 4096
_CONTEXT = b"regista.web.session.v1\x00"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


def is_web_path(path: str) -> bool:
    """Whether ``path`` belongs to the web UI (everything outside ``/api``)."""
    return not (path == "/api" or path.startswith("/api/"))


@dataclass(frozen=True, slots=True)
class WebSession:
    """What a verified session cookie says."""

    sid: str
    issued_at: int
    user: str | None = None
    token: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _CONTEXT + payload, hashlib.sha256).digest()


def encode_session(secret: bytes, *, user: str | None = None, token: str | None = None,
                   now: float | None = None) -> tuple[str, WebSession]:
    """A new signed cookie value for a user (password sign-in) or a token."""
    session = WebSession(sid=secrets.token_urlsafe(16), issued_at=int(now or time.time()),
                         user=user, token=token)
    body = {"sid": session.sid, "iat": session.issued_at}
    if user is not None:
        body["u"] = user
    if token is not None:
        body["t"] = token
    payload = orjson.dumps(body)
    return f"{_b64(payload)}.{_b64(_sign(secret, payload))}", session


def decode_session(secret: bytes, value: str | None, *,
                   now: float | None = None) -> WebSession | None:
    """The session a cookie value carries, or None if it is absent, forged or expired."""
    if not value or len(value) > MAX_COOKIE_LENGTH or value.count(".") != 1:
        return None
    body_text, sig_text = value.split(".")
    try:
        payload = _unb64(body_text)
        signature = _unb64(sig_text)
    except (binascii.Error, ValueError):
        return None
    if _b64(payload) != body_text or _b64(signature) != sig_text:
        return None  # only the canonical encoding: no second spelling of a cookie verifies
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        return None
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    sid, iat = body.get("sid"), body.get("iat")
    user, token = body.get("u"), body.get("t")
    if not isinstance(sid, str) or not isinstance(iat, int):
        return None
    if not (isinstance(user, str) or isinstance(token, str)):
        return None
    current = now if now is not None else time.time()
    if iat > current + 60 or current - iat > SESSION_MAX_AGE:
        return None
    return WebSession(sid=sid, issued_at=iat,
                      user=user if isinstance(user, str) else None,
                      token=token if isinstance(token, str) else None)


def parse_cookies(header: str) -> dict[str, str]:
    """The cookies of a ``Cookie`` header (first value of each name wins)."""
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in out:
            out[name] = value.strip().strip('"')
    return out


def cookie_header(name: str, value: str, *, secure: bool, max_age: int | None,
                  http_only: bool = True) -> str:
    """A ``Set-Cookie`` value with the flags every Regista cookie carries."""
    parts = [f"{name}={value}", "Path=/", "SameSite=Lax"]
    if http_only:
        parts.append("HttpOnly")
    if secure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


class WebMiddleware:
    """Read the session cookie into the request scope; add security headers to HTML."""

    def __init__(self, app: ASGIApp, *, secret: bytes) -> None:
        self.app = app
        self.secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        raw_cookie = b""
        has_authorization = False
        for key, value in scope["headers"]:
            if key == b"cookie":
                raw_cookie = raw_cookie + b"; " + value if raw_cookie else value
            elif key == b"authorization":
                has_authorization = True
        cookies = parse_cookies(raw_cookie.decode("latin-1")) if raw_cookie else {}
        state["web_cookies"] = cookies
        session = decode_session(self.secret, cookies.get(SESSION_COOKIE))
        state["web_session"] = session
        path: str = scope["path"]
        web = is_web_path(path)
        if session is not None and (web or scope["method"] in SAFE_METHODS):
            if session.user is not None:
                state["session_user"] = session.user
            elif session.token is not None and not has_authorization:
                scope = dict(scope)
                scope["headers"] = [*scope["headers"],
                                    (b"authorization", f"Bearer {session.token}".encode())]

        if not web:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html"):
                    present = {k.lower() for k, _ in headers}
                    headers.extend(h for h in _SECURITY_HEADERS if h[0] not in present)
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
