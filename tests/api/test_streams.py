"""consume_body: request body pieces reach the worker thread in order, uncopied, bounded."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anyio
import pytest
from starlette.requests import Request
from starlette.types import Message

from regista.api import streams
from regista.api.streams import consume_body
from regista.errors import DigestMismatch

KiB = 1024


def request(parts: list[bytes], *, disconnect_after: int | None = None) -> Request:
    sent = 0

    async def receive() -> Message:
        nonlocal sent
        if disconnect_after is not None and sent == disconnect_after:
            return {"type": "http.disconnect"}
        if sent == len(parts):
            return {"type": "http.disconnect"}
        sent += 1
        return {"type": "http.request", "body": parts[sent - 1], "more_body": sent < len(parts)}

    return Request({"type": "http", "method": "PUT", "path": "/", "headers": []}, receive)


def parts_of(total: int, size: int) -> list[bytes]:
    return [bytes([i % 251]) * size for i in range(total // size)]


def test_pieces_arrive_in_order_and_uncopied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "HANDOFF", 256 * KiB)
    parts = parts_of(4096 * KiB, 64 * KiB)
    seen: list[bytes] = []
    worker: list[str] = []

    def consume(chunks: Iterator[bytes]) -> int:
        worker.append(threading.current_thread().name)
        for chunk in chunks:
            seen.append(chunk)
        return len(seen)

    async def main() -> int:
        return await consume_body(request(parts), consume)

    assert anyio.run(main) == len(parts)
    assert all(a is b for a, b in zip(seen, parts, strict=True))  # the very same objects
    assert worker != [threading.current_thread().name]


def test_the_consumers_error_surfaces_as_itself() -> None:
    parts = parts_of(1024 * KiB, 64 * KiB)

    def consume(chunks: Iterator[bytes]) -> None:
        next(iter(chunks))
        raise DigestMismatch("bad bytes")

    async def main() -> None:
        await consume_body(request(parts), consume)

    with pytest.raises(DigestMismatch):
        anyio.run(main)


def test_a_disconnect_ends_the_stream_early(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "HANDOFF", 128 * KiB)
    parts = parts_of(1024 * KiB, 64 * KiB)

    def consume(chunks: Iterator[bytes]) -> int:
        return sum(len(c) for c in chunks)

    async def main() -> int:
        return await consume_body(request(parts, disconnect_after=5), consume)

    # Only whole batches handed over before the disconnect arrive.
    assert anyio.run(main) <= 5 * 64 * KiB
