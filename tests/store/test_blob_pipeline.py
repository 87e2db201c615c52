"""The local store's large-blob paths: writer thread, O_DIRECT, page-cache window.

The thresholds are shrunk so that a few MiB exercise what a 1 GiB upload does: a
writer thread fed batches, direct I/O through an aligned buffer (with a buffered tail),
the fallbacks when direct I/O is refused, and every failure leaving nothing behind.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regista.errors import DigestMismatch, Unavailable
from regista.store.blobs import local
from regista.store.blobs.local import LocalBlobStore

KiB = 1024
MiB = 1024 * KiB
SIZE = 5 * MiB + 12345  # several batches and a tail that is not a whole block


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture(autouse=True)
def small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "_BATCH_BYTES", 256 * KiB)
    monkeypatch.setattr(local, "_UNCACHED_BYTES", 1 * MiB)
    monkeypatch.setattr(local, "_WRITEBACK_BYTES", 512 * KiB)


def payload(size: int = SIZE, seed: int = 1) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """``data`` cut into pieces of the given sizes, cycling through them."""
    start = i = 0
    while start < len(data):
        n = sizes[i % len(sizes)]
        yield data[start:start + n]
        start += n
        i += 1


def stored(store: LocalBlobStore, digest: str) -> bytes:
    return b"".join(store.open(digest))


def leftovers(store: LocalBlobStore) -> list[str]:
    return sorted(os.listdir(store.root / ".staging"))


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "regista-blob-writer"]


@pytest.mark.parametrize("sizes", [[64 * KiB], [1000, 7, 70 * KiB], [3 * MiB], [1, 300 * KiB]],
                         ids=["uvicorn-like", "mixed-small", "huge", "odd"])
def test_large_put_round_trip(store: LocalBlobStore, sizes: list[int]) -> None:
    data = payload()
    assert store.put_stream(pieces(data, sizes), digest=sha(data), size=len(data))
    assert stored(store, sha(data)) == data
    assert store.verify(sha(data))
    assert leftovers(store) == []
    assert writer_threads() == []


def test_direct_io_is_used_for_large_blobs(store: LocalBlobStore,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[bool] = []
    original = local._DirectWriter.open

    def spy(fd: int) -> local._DirectWriter | None:
        writer = original(fd)
        opened.append(writer is not None)
        return writer

    monkeypatch.setattr(local._DirectWriter, "open", staticmethod(spy))
    data = payload()
    assert store.put_stream(pieces(data, [64 * KiB]), digest=sha(data), size=len(data))
    small = payload(512 * KiB, seed=2)  # one writer thread, but below _UNCACHED_BYTES
    assert store.put_stream(pieces(small, [64 * KiB]), digest=sha(small), size=len(small))
    assert opened == [bool(local._O_DIRECT)]
    assert stored(store, sha(data)) == data
    assert stored(store, sha(small)) == small


def test_without_direct_io(store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "_O_DIRECT", 0)
    data = payload()
    assert store.put_stream(pieces(data, [64 * KiB]), digest=sha(data), size=len(data))
    assert stored(store, sha(data)) == data


def test_direct_io_refused_at_write_falls_back(store: LocalBlobStore,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem that accepts O_DIRECT but refuses the I/O gets buffered writes."""
    if not local._O_DIRECT:
        pytest.skip("no O_DIRECT on this platform")
    import fcntl

    real = local._write_all
    refused: list[int] = []

    def refuse_direct(fd: int, data: Any) -> None:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & local._O_DIRECT:
            refused.append(len(data))
            raise OSError(errno.EINVAL, "direct I/O not supported here")
        real(fd, data)

    monkeypatch.setattr(local, "_write_all", refuse_direct)
    data = payload()
    assert store.put_stream(pieces(data, [64 * KiB]), digest=sha(data), size=len(data))
    assert refused == [local._BATCH_BYTES]  # refused once, then buffered
    assert stored(store, sha(data)) == data


def test_short_writes_are_completed(store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "_O_DIRECT", 0)
    real = os.writev

    def short(fd: int, buffers: Any) -> int:
        first = bytes(memoryview(buffers[0])[:1000])  # at most 1000 bytes per call
        return real(fd, [first])

    monkeypatch.setattr(os, "writev", short)
    data = payload(2 * MiB + 5)
    assert store.put_stream(pieces(data, [64 * KiB, 100]), digest=sha(data), size=len(data))
    assert stored(store, sha(data)) == data


def test_wrong_digest_after_the_writer_started(store: LocalBlobStore) -> None:
    data = payload()
    wrong = sha(b"something else")
    with pytest.raises(DigestMismatch):
        store.put_stream(pieces(data, [64 * KiB]), digest=wrong, size=len(data))
    assert not store.exists(wrong) and not store.exists(sha(data))
    assert leftovers(store) == []
    assert writer_threads() == []


def test_too_many_bytes_after_the_writer_started(store: LocalBlobStore) -> None:
    data = payload()
    pulled = 0

    def stream() -> Iterator[bytes]:
        nonlocal pulled
        for piece in pieces(data + data, [64 * KiB]):
            pulled += len(piece)
            yield piece

    with pytest.raises(DigestMismatch):
        store.put_stream(stream(), digest=sha(data), size=len(data))
    assert pulled <= len(data) + 64 * KiB  # stopped at the first extra piece
    assert leftovers(store) == []
    assert writer_threads() == []


def test_interrupted_stream_after_the_writer_started(store: LocalBlobStore) -> None:
    data = payload()

    def stream() -> Iterator[bytes]:
        yield from pieces(data[:3 * MiB], [64 * KiB])
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put_stream(stream(), digest=sha(data), size=len(data))
    assert not store.exists(sha(data))
    assert leftovers(store) == []
    assert writer_threads() == []


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "buffered"])
def test_full_disk_in_the_writer_is_503(store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch,
                                        direct: bool) -> None:
    if not direct:
        monkeypatch.setattr(local, "_O_DIRECT", 0)
    calls = 0

    def full(fd: int, data: Any) -> int:
        nonlocal calls
        calls += 1
        if calls > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(data) if not isinstance(data, list) else sum(len(b) for b in data)

    monkeypatch.setattr(os, "write", full)
    monkeypatch.setattr(os, "writev", full)
    data = payload()
    with pytest.raises(Unavailable):
        store.put_stream(pieces(data, [64 * KiB]), digest=sha(data), size=len(data))
    monkeypatch.undo()
    assert not store.exists(sha(data))
    assert leftovers(store) == []
    assert writer_threads() == []


def test_large_transfers_pass_through_a_page_cache_window(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large writes start writeback and drop what is written back; large reads drop
    what they have passed; small transfers leave the cache alone."""
    monkeypatch.setattr(local, "_O_DIRECT", 0)
    advice: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def record(fd: int, offset: int, length: int, what: int) -> None:
        advice.append((offset, length, what))
        real(fd, offset, length, what)

    monkeypatch.setattr(os, "posix_fadvise", record)
    dontneed = getattr(os, "POSIX_FADV_DONTNEED", None)
    if dontneed is None:
        pytest.skip("no posix_fadvise here")
    data = payload()
    store.put_stream(pieces(data, [64 * KiB]), digest=sha(data), size=len(data))
    dropped = [(o, n) for o, n, w in advice if w == dontneed]
    assert (0, len(data)) in dropped  # the whole blob, after the fsync
    assert any(o == 0 and 0 < n < len(data) for o, n in dropped)  # the window, on the way

    advice.clear()
    assert stored(store, sha(data)) == data
    assert any(w == dontneed and o == 0 for o, _, w in advice)

    advice.clear()
    small = payload(100 * KiB, seed=3)
    store.put_stream([small], digest=sha(small), size=len(small))
    assert stored(store, sha(small)) == small
    assert advice == []


def test_large_resumable_upload(store: LocalBlobStore) -> None:
    data = payload()
    handle = store.upload_start()
    offset = 0
    for chunk in pieces(data, [2 * MiB]):
        offset = store.upload_append(handle, offset, [chunk], max_size=len(data))
    assert offset == len(data)
    assert store.upload_complete(handle, digest=sha(data), size=len(data))
    assert stored(store, sha(data)) == data
    assert b"".join(store.open(sha(data), 3 * MiB, 4 * MiB)) == data[3 * MiB:4 * MiB + 1]


@pytest.mark.parametrize("part", ["_DirectWriter", "_Window"])
def test_a_writer_that_cannot_start_fails_the_upload_instead_of_hanging(
        store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch, part: str) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise MemoryError("no room for the aligned buffer")

    if part == "_DirectWriter":
        monkeypatch.setattr(local._DirectWriter, "open", staticmethod(broken))
    else:
        monkeypatch.setattr(local, "_Window", broken)
    data = payload()
    result: list[BaseException | None] = []

    def upload() -> None:
        try:
            store.put_stream(pieces(data, [64 * KiB]), digest=sha(data), size=len(data))
            result.append(None)
        except BaseException as exc:  # recorded for the assertions
            result.append(exc)

    t = threading.Thread(target=upload)
    t.start()
    t.join(30)
    assert not t.is_alive(), "put_stream hung after its writer thread failed to start"
    assert len(result) == 1 and isinstance(result[0], MemoryError)
    monkeypatch.undo()
    assert not store.exists(sha(data))
    assert leftovers(store) == []
    assert writer_threads() == []
