"""The request guard at the ASGI level: bodies in chunks, limits, JSON checks, request ids."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import orjson

from regista.api.middleware import RequestGuard

# --------------------------------------------------------------------------- request guard


def _drive(guard: RequestGuard, messages: list[dict[str, Any]], *, method: str = "POST",
           headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, dict[bytes, bytes], bytes]:
    pending = list(messages)

    async def receive() -> MutableMapping[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    out: dict[str, Any] = {"body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = dict(message.get("headers", []))
        else:
            out["body"] += message.get("body", b"")

    scope = {"type": "http", "method": method, "path": "/api/v1/x", "state": {},
             "headers": headers if headers is not None else [(b"content-type", b"application/json")]}
    asyncio.run(guard(scope, receive, send))
    return out["status"], out["headers"], out["body"]


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    """Downstream app: answers with the body it reads (to the end, as Starlette does)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": body})


def test_guard_replays_a_body_sent_in_chunks() -> None:
    guard = RequestGuard(_echo, max_body=1024, max_depth=4)
    chunks = [b'{"a": [1, ', b'2, 3], "b"', b': {"c": "d"}}']
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)]
    status, headers, body = _drive(guard, messages)
    assert (status, body) == (200, b"".join(chunks))
    assert headers[b"x-a"] == b"1" and len(headers[b"x-request-id"]) == 16


def test_guard_refuses_an_oversized_body_in_any_chunk() -> None:
    guard = RequestGuard(_echo, max_body=1024, max_depth=4)
    for sizes in ((2000,), (600, 600), (1000, 0, 100)):
        messages = [{"type": "http.request", "body": b" " * n, "more_body": i < len(sizes) - 1}
                    for i, n in enumerate(sizes)]
        status, _, body = _drive(guard, messages)
        assert status == 413
        assert orjson.loads(body)["error"] == {
            "code": "payload_too_large", "message": "request body exceeds 1024 bytes",
            "details": {"limit": 1024}}


def test_guard_checks_json_and_keeps_the_request_id() -> None:
    guard = RequestGuard(_echo, max_body=1024, max_depth=2)
    rid = [(b"content-type", b"application/json"), (b"x-request-id", b"abc-123")]
    status, headers, body = _drive(guard, [{"type": "http.request", "body": b"{nope"}], headers=rid)
    assert status == 400 and headers[b"x-request-id"] == b"abc-123"
    assert orjson.loads(body)["error"]["message"].startswith("request body is not valid JSON: ")
    status, _, body = _drive(guard, [{"type": "http.request", "body": b"[[[1]]]"}])
    assert status == 400 and orjson.loads(body)["error"]["details"] == {"limit": 2}
    status, _, body = _drive(guard, [{"type": "http.request", "body": b"[[1]]"}])
    assert (status, body) == (200, b"[[1]]")
    # Bodyless methods and streamed uploads pass through unread.
    status, _, body = _drive(guard, [{"type": "http.request", "body": b"{nope"}], method="DELETE")
    assert (status, body) == (200, b"{nope")
