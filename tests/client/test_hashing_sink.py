"""HashingSink: downloads hashed (and written) on a second thread, in order."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from regista.client._transfer import HashingSink
from regista.fileio import writev_all as write_all

KiB = 1024


def data(size: int) -> bytes:
    block = hashlib.sha256(b"sink").digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def cut(payload: bytes, size: int) -> list[bytes]:
    return [payload[i:i + size] for i in range(0, len(payload), size)]


def hash_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "regista-hash"]


@pytest.mark.parametrize("piece", [1, 1000, 64 * KiB, 700 * KiB])
def test_digest_and_file_match_the_stream(tmp_path: Path, piece: int) -> None:
    payload = data(300 * KiB + 17 if piece < 1000 else 3 * 1024 * KiB + 17)
    target = tmp_path / "out.bin"
    with open(target, "wb", buffering=0) as out, \
            HashingSink(fd=out.fileno(), handoff=256 * KiB) as sink:
        for p in cut(payload, piece):
            sink.feed(p)
        digest = sink.finish()
    assert digest == hashlib.sha256(payload).hexdigest()
    assert sink.size == len(payload)
    assert target.read_bytes() == payload
    assert hash_threads() == []


def test_continues_a_given_hash() -> None:
    head, tail = data(100 * KiB), data(900 * KiB)
    h = hashlib.sha256(head)
    with HashingSink(h, handoff=64 * KiB) as sink:
        for p in cut(tail, 10 * KiB):
            sink.feed(p)
        assert sink.finish() == hashlib.sha256(head + tail).hexdigest()


def test_one_batch_needs_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    real = threading.Thread.start

    def spy(self: threading.Thread) -> None:
        started.append(self.name)
        real(self)

    monkeypatch.setattr(threading.Thread, "start", spy)
    with HashingSink(handoff=1024 * KiB) as sink:
        sink.feed(b"x" * 1000)
        assert sink.finish() == hashlib.sha256(b"x" * 1000).hexdigest()
    assert "regista-hash" not in started


def test_a_write_error_reaches_the_reader(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDONLY | os.O_CREAT, 0o600)  # not writable
    try:
        with pytest.raises(OSError) as caught, HashingSink(fd=fd, handoff=64 * KiB) as sink:
            for p in cut(data(2 * 1024 * KiB), 64 * KiB):
                sink.feed(p)
            sink.finish()
        assert caught.value.errno == errno.EBADF
    finally:
        os.close(fd)
    assert hash_threads() == []


def test_leaving_by_an_exception_stops_the_thread_and_keeps_a_prefix(tmp_path: Path) -> None:
    payload = data(4 * 1024 * KiB)
    target = tmp_path / "part"
    with pytest.raises(ConnectionError), open(target, "wb", buffering=0) as out, \
            HashingSink(fd=out.fileno(), handoff=128 * KiB, depth=1) as sink:
        for i, p in enumerate(cut(payload, 64 * KiB)):
            if i == 40:
                raise ConnectionError("network gone")
            sink.feed(p)
    assert hash_threads() == []
    written = target.read_bytes()
    assert payload.startswith(written) and len(written) % (64 * KiB) == 0


def test_write_all_completes_short_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.writev

    def short(fd: int, buffers: Any) -> int:
        return real(fd, [bytes(memoryview(buffers[0])[:333])])

    monkeypatch.setattr(os, "writev", short)
    parts = [data(5000), b"", data(70 * KiB), b"abc"]
    fd = os.open(tmp_path / "w", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        write_all(fd, parts)
    finally:
        os.close(fd)
    assert (tmp_path / "w").read_bytes() == b"".join(parts)
