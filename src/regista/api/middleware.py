"""Pure-ASGI middleware (cheap per request): request ids, body limits, JSON depth."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The streamed upload bodies (bounded by the upload size limit, hashed as they arrive):
# PUT /api/v1/blobs/{sha256} and PATCH /api/v1/uploads/{id}. Everything else, including
# POST /api/v1/blobs/check and POST /api/v1/uploads, is held to the request body limit.
STREAMING = (("PUT", "/api/v1/blobs/"), ("PATCH", "/api/v1/uploads/"))


def is_streaming_upload(method: str, path: str) -> bool:
    return any(method == m and path.startswith(p) and "/" not in path[len(p):]
               for m, p in STREAMING)


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value, stopping once past ``limit``.

    Walked level by level: returns ``limit + 1`` as soon as a level past the limit holds
    a container, else the depth.
    """
    level: list[Any] = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return depth
        below: list[Any] = []
        for node in level:
            for child in node.values() if isinstance(node, dict) else node:
                if isinstance(child, dict | list):
                    below.append(child)
        level = below
    return depth


def too_deep(raw: bytes, parsed: Any, limit: int) -> bool:
    """Whether a JSON body (``raw``, and ``parsed`` from it) nests deeper than ``limit``.

    Every object or array opens with ``{`` or ``[`` (strings may hold more of them), so a
    body with at most ``limit`` of those cannot be deeper: two C-speed counts settle the
    usual body without walking the parsed value.
    """
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False
    return json_depth(parsed, limit) > limit


async def _send_error(send: Send, status: int, code: str, message: str,
                      details: dict[str, Any] | None = None) -> None:
    body = orjson.dumps({"error": {"code": code, "message": message, "details": details or {}}})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
_STREAMING_METHODS = frozenset(m for m, _ in STREAMING)


class RequestGuard:
    """Give every request an id; refuse oversized or too deeply nested JSON bodies.

    Streaming upload routes are exempt from the body limit: they are bounded by the size
    they declare and verified by the blob store.
    """

    def __init__(self, app: ASGIApp, *, max_body: int, max_depth: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        rid = headers.get(b"x-request-id", b"")[:64].decode("latin-1")
        if not rid or not rid.replace("-", "").isalnum():
            rid = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        method: str = scope["method"]
        if method in _BODYLESS or (method in _STREAMING_METHODS
                                   and is_streaming_upload(method, scope["path"])):
            await self.app(scope, receive, send_with_id)
            return
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                n = int(declared)
            except ValueError:
                await _send_error(send_with_id, 400, "bad_request", "invalid Content-Length")
                return
            if n > self.max_body:
                await _send_error(send_with_id, 413, "payload_too_large",
                                  f"request body exceeds {self.max_body} bytes",
                                  {"limit": self.max_body})
                return
        # Buffer the (bounded) body so we can check it, then replay it downstream.
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        raw: bytes = message.get("body", b"")
        if len(raw) > self.max_body:
            await _send_error(send_with_id, 413, "payload_too_large",
                              f"request body exceeds {self.max_body} bytes",
                              {"limit": self.max_body})
            return
        if message.get("more_body", False):  # more than one chunk (the usual body is one)
            chunks = [raw]
            total = len(raw)
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body = message.get("body", b"")
                total += len(body)
                if total > self.max_body:
                    await _send_error(send_with_id, 413, "payload_too_large",
                                      f"request body exceeds {self.max_body} bytes",
                                      {"limit": self.max_body})
                    return
                chunks.append(body)
                if not message.get("more_body", False):
                    break
            raw = b"".join(chunks)
        if raw and b"json" in headers.get(b"content-type", b""):
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                await _send_error(send_with_id, 400, "bad_request",
                                  f"request body is not valid JSON: {str(exc)[:200]}")
                return
            if too_deep(raw, parsed, self.max_depth):
                await _send_error(send_with_id, 400, "bad_request",
                                  f"JSON body is nested deeper than {self.max_depth} levels",
                                  {"limit": self.max_depth})
                return
        replay: list[Message] = [{"type": "http.request", "body": raw, "more_body": False}]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send_with_id)
