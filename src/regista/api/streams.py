"""Bridge an async request body to the synchronous, thread-safe blob store.

The event loop collects the body's pieces into batches of ~4 MiB and hands each batch
over through a bounded channel (so server memory stays constant); a worker thread
hashes and writes. The pieces are passed on as uvicorn delivered them: batching is a
list, not a copy, and one cross-thread hop per batch keeps the per-piece cost low.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import anyio
from starlette.requests import ClientDisconnect, Request

T = TypeVar("T")
#: Bytes per batch handed to the worker thread.
HANDOFF = 4 * 1024 * 1024
#: Batches waiting in the channel, besides the one the worker holds and the one filling.
BUFFERED = 1


async def consume_body(request: Request, fn: Callable[[Iterator[bytes]], T]) -> T:
    send, recv = anyio.create_memory_object_stream[list[bytes]](max_buffer_size=BUFFERED)

    def chunks() -> Iterator[bytes]:
        while True:
            try:
                batch = anyio.from_thread.run(recv.receive)
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return
            yield from batch
            del batch  # not held while waiting for the next one

    async def produce() -> None:
        async with send:
            batch: list[bytes] = []
            held = 0
            try:
                async for part in request.stream():
                    if not part:
                        continue
                    batch.append(part)
                    held += len(part)
                    if held >= HANDOFF:
                        await send.send(batch)
                        batch, held = [], 0
                if batch:
                    await send.send(batch)
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
