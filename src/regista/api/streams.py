"""Bridge an async request body to the synchronous, thread-safe blob store.

The event loop reads the body and hands it over in ~4 MiB pieces through a bounded
channel (so server memory stays constant); a worker thread hashes and writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import anyio
from starlette.requests import ClientDisconnect, Request

T = TypeVar("T")
HANDOFF = 4 * 1024 * 1024


async def consume_body(request: Request, fn: Callable[[Iterator[bytes]], T]) -> T:
    send, recv = anyio.create_memory_object_stream[bytes](max_buffer_size=4)

    def chunks() -> Iterator[bytes]:
        while True:
            try:
                data = anyio.from_thread.run(recv.receive)
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return
            yield data

    async def produce() -> None:
        async with send:
            parts: list[bytes] = []
            held = 0
            try:
                async for part in request.stream():
                    if not part:
                        continue
                    parts.append(part)
                    held += len(part)
                    if held >= HANDOFF:
                        await send.send(b"".join(parts))
                        parts, held = [], 0
                if parts:
                    await send.send(b"".join(parts))
            except (ClientDisconnect, anyio.BrokenResourceError):
                return

    # The consumer's error is caught inside the task group, so it surfaces as itself
    # (e.g. DigestMismatch → 400), not wrapped in an ExceptionGroup.
    error: BaseException | None = None
    result: T | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        try:
            result = await anyio.to_thread.run_sync(lambda: fn(chunks()))
        except Exception as exc:
            error = exc
        finally:
            recv.close()
            tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return result  # type: ignore[return-value]
