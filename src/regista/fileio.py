"""Small file-descriptor helpers shared by the blob store and the client."""

from __future__ import annotations

import os
from collections.abc import Sequence

Buffer = bytes | bytearray | memoryview
IOV_MAX = 512  # buffers per writev call (Linux allows 1024)


def writev_all(fd: int, buffers: Sequence[Buffer]) -> None:
    """``os.writev`` every buffer, in order, however short the writes."""
    views = list(buffers)
    i = 0
    while i < len(views):
        written = os.writev(fd, views[i:i + IOV_MAX])
        # Skip what was written: whole buffers, then the head of a partial one.
        while i < len(views) and written >= len(views[i]):
            written -= len(views[i])
            i += 1
        if written:
            views[i] = memoryview(views[i])[written:]
