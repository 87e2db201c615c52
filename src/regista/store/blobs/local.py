"""Blobs in a local directory.

Layout under the root::

    sha256/ab/cd/abcd…   one read-only (0o444) file per blob, fanned out by the first
                         two byte pairs so no directory grows past ~65k entries
    .staging/<tok>.tmp   put_stream writes here first (same filesystem as sha256/,
                         so publishing is a rename-like atomic step)
    .uploads/<handle>    one growing file per resumable upload

Durability: a blob is fsynced, linked into place, and its directory fsynced before
``put_stream``/``upload_complete`` return; every ``upload_append`` fsyncs before it
returns. Several processes may share one root: publishing uses ``link(2)``, which
never replaces an existing name, and appends take an ``flock`` on the upload file.

Large blobs: ``put_stream`` hashes in the calling thread while a writer thread writes
(with ``O_DIRECT`` from 64 MiB on, where the filesystem allows it), and transfers of
64 MiB or more go through a small recycled window of the page cache instead of filling
it (see ``_Writer``, ``_DirectWriter`` and ``_Window``; docs/blob-storage.md).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import mmap
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from regista.errors import (
    Conflict,
    DigestMismatch,
    NotFound,
    PayloadTooLarge,
    RangeNotSatisfiable,
    Unavailable,
)
from regista.fileio import Buffer, writev_all

from .base import (
    CHUNK_SIZE,
    BlobStore,
    check_received,
    is_digest,
    resolve_range,
    too_many_bytes,
    validate_digest,
    validate_size,
)

_HANDLE_RE = re.compile(r"\A[0-9a-f]{32}\Z")
_FANOUT_RE = re.compile(r"\A[0-9a-f]{2}\Z")
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Filesystems without hard links answer link(2) with one of these; we then fall back
# to rename, which is still atomic but may replace an identical existing blob.
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# put_stream hands finished ranges of this size to the kernel for writeback.
_WRITEBACK_BYTES = 32 * CHUNK_SIZE
# put_stream's writer thread takes the stream in batches of this many bytes, at most
# _QUEUED_BATCHES of them waiting; chunks below _SMALL bytes are coalesced first.
_BATCH_BYTES = 4 * CHUNK_SIZE
_QUEUED_BATCHES = 1
_SMALL = 64 * 1024
# Transfers of at least this many bytes pass through a small window of the page cache
# instead of filling it (see _Window).
_UNCACHED_BYTES = 64 * CHUNK_SIZE
_FADV_DONTNEED: int | None = getattr(os, "POSIX_FADV_DONTNEED", None)
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)
_DIRECT_ALIGN = 4096  # O_DIRECT wants buffer, length and offset aligned to the block size
_FADV_SEQUENTIAL: int | None = getattr(os, "POSIX_FADV_SEQUENTIAL", None)


class LocalBlobStore(BlobStore):
    """A :class:`BlobStore` in a directory of the local filesystem."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Use (and create if needed) the store rooted at ``root``."""
        self._root = Path(root).absolute()
        self._blobs = str(self._root / "sha256")
        self._staging = str(self._root / ".staging")
        self._uploads = str(self._root / ".uploads")
        for path in (self._blobs, self._staging, self._uploads):
            os.makedirs(path, exist_ok=True)

    @property
    def root(self) -> Path:
        """The directory holding the store."""
        return self._root

    def describe(self) -> str:
        """``local:<root>``."""
        return f"local:{self._root}"

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self._root)!r})"

    # -- paths -----------------------------------------------------------------

    def _blob_path(self, digest: str) -> str:
        digest = validate_digest(digest)
        return os.path.join(self._blobs, digest[:2], digest[2:4], digest)

    def _upload_path(self, handle: str) -> str:
        # A handle that cannot be one of ours is just an unknown upload.
        if not isinstance(handle, str) or _HANDLE_RE.match(handle) is None:
            raise NotFound("no such upload", details={"upload": str(handle)[:80]})
        return os.path.join(self._uploads, handle)

    # -- reading ---------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        """Whether the blob is stored."""
        return os.path.isfile(self._blob_path(digest))

    def size(self, digest: str) -> int:
        """Size of the blob in bytes; NotFound if it is not stored."""
        path = self._blob_path(digest)
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            raise _blob_not_found(digest) from None

    def open(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream an inclusive byte range of the blob in ~1 MiB chunks."""
        path = self._blob_path(digest)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            raise _blob_not_found(digest) from None
        first, stop = resolve_range(start, end, size)
        return _read_range(path, digest, first, stop)

    def verify(self, digest: str) -> bool:
        """Re-hash the stored file and compare with its name."""
        path = self._blob_path(digest)
        try:
            fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
        except FileNotFoundError:
            raise _blob_not_found(digest) from None
        try:
            return _hash_fd(fd) == digest
        finally:
            os.close(fd)

    def iter_digests(self) -> Iterator[str]:
        """Every stored digest, in sorted order."""
        for first in _sorted_names(self._blobs, _FANOUT_RE):
            level1 = os.path.join(self._blobs, first)
            for second in _sorted_names(level1, _FANOUT_RE):
                level2 = os.path.join(level1, second)
                for name in _sorted_names(level2, None):
                    # Skip anything that is not a blob in its proper place.
                    if is_digest(name) and name[:2] == first and name[2:4] == second:
                        yield name

    def presigned_url(
        self, digest: str, *, expires_seconds: int = 300, filename: str | None = None
    ) -> str | None:
        """None: a local directory has no URL of its own; the server streams the bytes."""
        validate_digest(digest)
        return None

    # -- writing ---------------------------------------------------------------

    def put_stream(self, chunks: Iterable[bytes], *, digest: str, size: int) -> bool:
        """Stream into ``.staging``, verify, fsync, then link into place."""
        final = self._blob_path(digest)
        size = validate_size(size)
        tmp = os.path.join(self._staging, secrets.token_hex(16) + ".tmp")
        try:
            with _disk_errors():
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600)
                try:
                    actual_digest, actual_size = _write_hashed(fd, chunks, size)
                    check_received(digest=digest, size=size,
                                   actual_digest=actual_digest, actual_size=actual_size)
                    os.fchmod(fd, 0o444)
                    os.fsync(fd)
                    if size >= _UNCACHED_BYTES:
                        _dontneed(fd, 0, size)  # all clean now: leave none of it cached
                finally:
                    os.close(fd)
                return self._publish(tmp, final)
        finally:
            # After a successful publish the name is gone already.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _publish(self, src: str, final: str) -> bool:
        """Give the fsynced file ``src`` its content-addressed name; True if new.

        ``link`` fails instead of replacing, so of several writers of one blob exactly
        one learns it was new. ``src`` is removed in every case.
        """
        directory = os.path.dirname(final)
        self._ensure_dirs(directory)
        try:
            os.link(src, final)
        except FileExistsError:
            os.unlink(src)
            return False
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise
            if os.path.exists(final):
                os.unlink(src)
                return False
            os.replace(src, final)
        else:
            os.unlink(src)
        _fsync_dir(directory)
        return True

    def _ensure_dirs(self, directory: str) -> None:
        """Create the two fan-out levels above a blob, fsyncing each new entry's parent."""
        level1 = os.path.dirname(directory)
        for parent, child in ((self._blobs, level1), (level1, directory)):
            try:
                os.mkdir(child)
            except FileExistsError:
                continue
            _fsync_dir(parent)

    def delete(self, digest: str) -> None:
        """Unlink the blob; a missing blob is fine."""
        path = self._blob_path(digest)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    # -- resumable uploads -----------------------------------------------------

    def upload_start(self) -> str:
        """Create an empty, durable upload file and return its name as the handle."""
        handle = secrets.token_hex(16)
        with _disk_errors():
            fd = os.open(os.path.join(self._uploads, handle),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_dir(self._uploads)
        return handle

    def upload_offset(self, handle: str) -> int:
        """The size of the upload file."""
        path = self._upload_path(handle)
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            raise _upload_not_found(handle) from None

    def upload_append(
        self, handle: str, offset: int, chunks: Iterable[bytes], *, max_size: int
    ) -> int:
        """Append under an exclusive lock, then fsync before acknowledging."""
        path = self._upload_path(handle)
        offset = validate_size(offset)
        fd = _open_locked(path, os.O_WRONLY, handle)
        try:
            current = os.fstat(fd).st_size
            if offset != current:
                raise RangeNotSatisfiable(
                    f"append at offset {offset}, but the upload holds {current} bytes",
                    details={"expected_offset": current},
                )
            os.lseek(fd, current, os.SEEK_SET)
            written = 0
            room = max_size - current
            try:
                with _disk_errors():
                    # Each chunk is written as it comes, so what a failed request did
                    # deliver is kept and the client can resume after it.
                    for chunk in chunks:
                        if written + len(chunk) > room:
                            raise PayloadTooLarge(
                                f"upload would exceed the limit of {max_size} bytes",
                                details={"max_size": max_size},
                            )
                        _write_all(fd, chunk)
                        written += len(chunk)
            finally:
                with _disk_errors():
                    os.fsync(fd)
                if current + written >= _UNCACHED_BYTES:
                    _dontneed(fd, 0, current + written)  # clean after the fsync
            return current + written
        finally:
            os.close(fd)  # also releases the lock

    def upload_complete(self, handle: str, *, digest: str, size: int) -> bool:
        """Re-hash the upload file, then link it into place as the blob."""
        path = self._upload_path(handle)
        final = self._blob_path(digest)
        size = validate_size(size)
        fd = _open_locked(path, os.O_RDONLY, handle)
        try:
            actual_size = os.fstat(fd).st_size
            actual_digest = _hash_fd(fd) if actual_size == size else ""
            try:
                check_received(digest=digest, size=size,
                               actual_digest=actual_digest, actual_size=actual_size)
            except DigestMismatch:
                os.unlink(path)  # the upload is consumed, as documented
                raise
            os.fchmod(fd, 0o444)
            os.fsync(fd)
            with _disk_errors():
                stored = self._publish(path, final)
                # Make the upload's name go away durably too: after a crash it would
                # otherwise come back as a second name of the published blob.
                _fsync_dir(self._uploads)
            return stored
        finally:
            os.close(fd)

    def upload_abort(self, handle: str) -> None:
        """Remove the upload file, if any."""
        try:
            path = self._upload_path(handle)
        except NotFound:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def list_stale_uploads(self, older_than_seconds: float) -> list[str]:
        """Uploads whose file was last modified more than ``older_than_seconds`` ago."""
        cutoff = time.time() - older_than_seconds
        return [
            entry.name
            for entry in _old_entries(self._uploads, cutoff)
            if _HANDLE_RE.match(entry.name)
        ]

    def purge_staging(self, older_than_seconds: float) -> int:
        """Remove temporary files that crashed ``put_stream`` calls left in ``.staging``."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for entry in _old_entries(self._staging, cutoff):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
        return removed


# -- helpers -------------------------------------------------------------------


def _blob_not_found(digest: str) -> NotFound:
    return NotFound(f"blob {digest} not found", details={"digest": digest})


def _upload_not_found(handle: str) -> NotFound:
    return NotFound("no such upload", details={"upload": handle})


@contextlib.contextmanager
def _disk_errors() -> Iterator[None]:
    """Report a full disk as Unavailable (503) rather than an internal error."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _FULL_ERRNOS:
            raise Unavailable("blob storage is full") from exc
        raise


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """os.write until everything is written (a write may be short, e.g. past 2 GiB)."""
    written = os.write(fd, data)
    if written < len(data):
        with memoryview(data) as view:
            while written < len(view):
                written += os.write(fd, view[written:])


def _write_hashed(fd: int, chunks: Iterable[bytes], limit: int) -> tuple[str, int]:
    """Write ``chunks`` to ``fd`` while hashing them; return (sha256 hex, size).

    The calling thread hashes; once a stream is bigger than one batch, a
    :class:`_Writer` thread writes the batches already hashed meanwhile. hashlib and
    ``writev`` both release the GIL for large buffers, so the two run on two cores.
    Chunks are passed on as they are (no copy); only chunks smaller than
    :data:`_SMALL` are first coalesced into ~1 MiB pieces, so that hashing and writing
    happen in few large calls. Raises as soon as more than ``limit`` bytes have arrived.
    """
    sha = hashlib.sha256()
    update = sha.update
    total = 0
    batch: list[Buffer] = []
    batched = 0
    small = bytearray()
    writer: _Writer | None = None
    try:
        for chunk in chunks:
            size = len(chunk)
            total += size
            if total > limit:
                raise too_many_bytes(limit)
            piece: Buffer
            if size < _SMALL:
                small += chunk
                if len(small) < CHUNK_SIZE:
                    continue
                piece, small = small, bytearray()
            else:
                # Hashed now, written later, without a copy: only safe for immutable
                # bytes (a reused bytearray could change in between).
                piece = chunk if type(chunk) is bytes else bytes(chunk)
                if small:
                    update(small)
                    batch.append(small)
                    batched += len(small)
                    small = bytearray()
            update(piece)
            batch.append(piece)
            batched += len(piece)
            if batched >= _BATCH_BYTES:
                if writer is None:
                    writer = _Writer(fd, limit)
                writer.write(batch)
                batch, batched = [], 0
        if small:
            update(small)
            batch.append(small)
        if writer is None:
            writev_all(fd, batch)  # a small blob: no thread needed
        else:
            if batch:
                writer.write(batch)
            writer.finish()
    finally:
        if writer is not None:
            writer.stop()
    return sha.hexdigest(), total


class _Writer:
    """Writes batches of buffers to ``fd``, in order, on a thread of its own.

    At most :data:`_QUEUED_BATCHES` batches wait for it, so a writer that falls behind
    slows the caller down instead of holding the stream in memory. A blob of at least
    :data:`_UNCACHED_BYTES` is written with ``O_DIRECT`` where the filesystem allows it
    (see :class:`_DirectWriter`), else through a :class:`_Window` of the page cache.
    The first error it meets is re-raised to the caller; batches after it are dropped.
    """

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size
        self._queue: queue.Queue[list[Buffer] | None] = queue.Queue(maxsize=_QUEUED_BATCHES)
        self._error: BaseException | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="regista-blob-writer",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        direct: _DirectWriter | None = None
        try:
            try:
                if self._size >= _UNCACHED_BYTES:
                    direct = _DirectWriter.open(self._fd)
                window = _Window(self._fd, 0, self._size, writing=True)
            except BaseException as exc:  # e.g. no memory for the buffer: the caller
                self._error = exc  # must still get an error, and the queue drained
            while (batch := self._queue.get()) is not None:
                if self._error is not None or self._stopping:
                    continue
                try:
                    if direct is not None:
                        direct.write(batch)
                    else:
                        writev_all(self._fd, batch)
                        window.advance(sum(len(b) for b in batch))
                except BaseException as exc:  # re-raised to the caller
                    self._error = exc
            if direct is not None and self._error is None and not self._stopping:
                try:
                    direct.flush_tail()
                except BaseException as exc:
                    self._error = exc
        finally:
            if direct is not None:
                direct.release()

    def write(self, batch: list[Buffer]) -> None:
        """Queue one batch (waiting while the queue is full)."""
        if self._error is not None:
            raise self._error
        self._queue.put(batch)

    def finish(self) -> None:
        """Wait until everything queued is written; raise the writer's error, if any."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Drop what is still queued and wait for the thread (a no-op after finish)."""
        if self._thread.is_alive():
            self._stopping = True
            self._queue.put(None)
            self._thread.join()


class _DirectWriter:
    """Write a file with ``O_DIRECT``, through one page-aligned 4 MiB buffer.

    Direct I/O skips the page cache: no copy into it, no page allocation and no
    writeback bookkeeping per 4 KiB page, which for a 1 GiB upload was measured at ~0.1
    against ~0.3-0.4 CPU-seconds. The pieces are copied into the aligned buffer, which is
    written whenever it is full; the last partial block goes through the page cache
    (``O_DIRECT`` cleared). The caller still fsyncs: direct I/O does not make a file
    durable by itself. A filesystem that refuses direct I/O (tmpfs, some network
    filesystems) gets ordinary writes, decided at the first refusal.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = mmap.mmap(-1, _BATCH_BYTES)
        self._view = memoryview(self._buffer)
        self._filled = 0
        self._direct = True

    @classmethod
    def open(cls, fd: int) -> _DirectWriter | None:
        """Switch ``fd`` (empty so far) to direct I/O; None where that is not possible."""
        if not _O_DIRECT:
            return None
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | _O_DIRECT)
        except OSError:
            return None
        return cls(fd)

    def write(self, batch: list[Buffer]) -> None:
        view, size, filled = self._view, len(self._view), self._filled
        for piece in batch:
            with memoryview(piece) as data:
                offset, length = 0, len(data)
                while offset < length:
                    take = min(length - offset, size - filled)
                    view[filled:filled + take] = data[offset:offset + take]
                    filled += take
                    offset += take
                    if filled == size:
                        self._write(size)
                        filled = 0
        self._filled = filled

    def flush_tail(self) -> None:
        """Write what the buffer still holds: whole blocks directly, the rest buffered."""
        whole = self._filled - self._filled % _DIRECT_ALIGN
        if whole:
            self._write(whole)
        self._buffered()
        if self._filled > whole:
            _write_all(self._fd, self._view[whole:self._filled])
        self._filled = 0

    def release(self) -> None:
        """Unmap the buffer now, unless an error's traceback still holds a view of it
        (then it goes with the last reference)."""
        self._view.release()
        with contextlib.suppress(BufferError):
            self._buffer.close()

    def _write(self, length: int) -> None:
        if self._direct:
            start = os.lseek(self._fd, 0, os.SEEK_CUR)
            try:
                _write_all(self._fd, self._view[:length])
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._buffered()  # refused: fall back to the page cache from here on
                os.lseek(self._fd, start, os.SEEK_SET)  # rewrite from where it began
        _write_all(self._fd, self._view[:length])

    def _buffered(self) -> None:
        if self._direct:
            self._direct = False
            flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
            fcntl.fcntl(self._fd, fcntl.F_SETFL, flags & ~_O_DIRECT)


class _Window:
    """Keep a long sequential transfer to a small, recycled window of the page cache.

    Every :data:`_WRITEBACK_BYTES` of a write, the range just written is handed to
    ``POSIX_FADV_DONTNEED``, which starts its writeback (so the final ``fsync`` does
    not stall on a gigabyte of dirty pages); what came before it, written back by now,
    is dropped from the cache (that call drops clean pages). Reads drop what they have
    passed the same way, and ask for a larger read-ahead. A 1 GiB blob thus
    occupies ~64 MiB of page cache instead of 1 GiB, the pages freed are reused for
    the next ones, and the cache keeps what smaller, hotter files (the database)
    need. It also matters on virtual machines that hand free memory back to the host
    (virtio-balloon free page reporting): there, filling never-used page cache costs a
    host page fault per page and was measured at ~0.4 GB/s, against ~3 GB/s when the
    pages are recycled. Durability is unaffected (that is what ``fsync`` is for).
    Transfers shorter than :data:`_UNCACHED_BYTES` stay cached (writes still start
    writeback as they go). No-op off Linux.
    """

    def __init__(self, fd: int, start: int, length: int, *, writing: bool) -> None:
        self._fd = fd
        self._start = self._passed = self._done = start
        self._writing = writing
        self._on = length >= _UNCACHED_BYTES
        if self._on and not writing and _FADV_SEQUENTIAL is not None:
            with contextlib.suppress(OSError):  # a larger read-ahead
                os.posix_fadvise(fd, start, length, _FADV_SEQUENTIAL)

    def advance(self, count: int) -> None:
        """``count`` more bytes have been written or read."""
        self._done += count
        if self._done - self._passed >= _WRITEBACK_BYTES:
            if self._writing:
                _dontneed(self._fd, self._passed, self._done - self._passed)
            if self._on:
                _dontneed(self._fd, self._start, self._passed - self._start)
            self._passed = self._done

    def close(self) -> None:
        """Drop what a read left cached (a write must be fsynced first)."""
        if self._on:
            _dontneed(self._fd, self._start, self._done - self._start)


def _dontneed(fd: int, offset: int, length: int) -> None:
    """POSIX_FADV_DONTNEED: start writeback of the dirty pages of a range, drop its clean
    ones. No-op for an empty range, and where the call does not exist."""
    if _FADV_DONTNEED is not None and length > 0:
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, offset, length, _FADV_DONTNEED)


def _hash_fd(fd: int) -> str:
    """sha256 of a whole file, read through one reused 1 MiB buffer."""
    sha = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    offset = 0
    window = _Window(fd, 0, os.fstat(fd).st_size, writing=False)
    try:
        with memoryview(buffer) as view:
            while True:
                count = os.preadv(fd, [buffer], offset)
                if count == 0:
                    return sha.hexdigest()
                sha.update(view[:count])
                offset += count
                window.advance(count)
    finally:
        window.close()


def _read_range(path: str, digest: str, start: int, stop: int) -> Iterator[bytes]:
    """Yield bytes ``start..stop-1`` of a file; opened lazily so no fd can leak."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    except FileNotFoundError:
        raise _blob_not_found(digest) from None
    window = _Window(fd, start, stop - start, writing=False)
    try:
        position = start
        while position < stop:
            data = os.pread(fd, min(CHUNK_SIZE, stop - position), position)
            if not data:
                raise NotFound(f"blob {digest} is shorter than expected",
                               details={"digest": digest})
            position += len(data)
            yield data
            window.advance(len(data))
    finally:
        window.close()
        os.close(fd)


def _open_locked(path: str, flags: int, handle: str) -> int:
    """Open an upload file and take its exclusive lock without waiting.

    Raises Conflict if another append or completion holds the lock, and NotFound if
    the upload was completed or aborted meanwhile.
    """
    try:
        fd = os.open(path, flags | _O_CLOEXEC)
    except FileNotFoundError:
        raise _upload_not_found(handle) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict("another request is writing to this upload",
                           details={"upload": handle}) from None
        # Refuse a file that is (also) a published blob: a completion linked it into
        # place meanwhile, or a crash undid the removal of its upload name.
        opened = os.fstat(fd)
        try:
            same = os.stat(path).st_ino == opened.st_ino and opened.st_nlink == 1
        except FileNotFoundError:
            same = False
        if not same:
            raise _upload_not_found(handle)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fsync_dir(path: str) -> None:
    """Make a directory's entries (a new name, a new subdirectory) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sorted_names(path: str, pattern: re.Pattern[str] | None) -> list[str]:
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    if pattern is not None:
        names = [name for name in names if pattern.match(name)]
    names.sort()
    return names


def _old_entries(path: str, cutoff: float) -> list[os.DirEntry[str]]:
    """Regular files in ``path`` last modified before ``cutoff`` (epoch seconds)."""
    old = []
    with os.scandir(path) as entries:
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    old.append(entry)
            except FileNotFoundError:
                continue
    return old
