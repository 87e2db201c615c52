"""Streaming file responses with HTTP Range support and the digest in the headers."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator

from fastapi import Request
from fastapi.responses import StreamingResponse

from regista.errors import RangeNotSatisfiable

_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})\Z")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range → inclusive (start, end)."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        raise RangeNotSatisfiable("only a single byte range 'bytes=START-END' is supported",
                                  details={"range": header[:100], "size": size})
    a, b = m.group(1), m.group(2)
    if a:
        start = int(a)
        end = min(int(b), size - 1) if b else size - 1
    else:
        n = int(b)
        if n == 0:
            raise RangeNotSatisfiable("empty suffix range", details={"size": size})
        start, end = max(0, size - n), size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiable(f"range {header[:100]!r} is outside the file of {size} bytes",
                                  details={"size": size})
    return start, end


def stream_blob(
    request: Request,
    *,
    digest: str,
    size: int,
    media_type: str,
    filename: str | None,
    opener: Callable[[int, int | None], Iterator[bytes]],
) -> StreamingResponse:
    headers = {
        "accept-ranges": "bytes",
        "etag": f'"{digest}"',
        "x-regista-sha256": digest,
        "repr-digest": f"sha-256=:{base64.b64encode(bytes.fromhex(digest)).decode()}:",
        "cache-control": "private, max-age=31536000, immutable",
        "x-content-type-options": "nosniff",
    }
    if filename:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", filename.rsplit("/", 1)[-1])[:200] or "file"
        headers["content-disposition"] = f'attachment; filename="{safe}"'
    if request.headers.get("if-none-match") == f'"{digest}"':
        return StreamingResponse(iter(()), status_code=304, headers=headers)
    rng = parse_range(request.headers.get("range"), size) if size else None
    if rng is None:
        headers["content-length"] = str(size)
        body = opener(0, None) if size else iter(())
        return StreamingResponse(body, media_type=media_type, headers=headers)
    start, end = rng
    headers["content-range"] = f"bytes {start}-{end}/{size}"
    headers["content-length"] = str(end - start + 1)
    return StreamingResponse(opener(start, end), status_code=206, media_type=media_type,
                             headers=headers)
