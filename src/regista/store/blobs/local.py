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
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import secrets
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
_FADV_DONTNEED: int | None = getattr(os, "POSIX_FADV_DONTNEED", None)


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

    Small chunks are copied into one preallocated 1 MiB buffer so that hashing and
    writing happen in few large calls (a growing/shrinking bytearray would cost an
    mmap and page faults per block); large chunks go straight through without a copy.
    Raises as soon as more than ``limit`` bytes have arrived.
    """
    sha = hashlib.sha256()
    update = sha.update
    buffer = bytearray(CHUNK_SIZE)
    filled = 0
    total = 0
    flushed = 0
    with memoryview(buffer) as view:
        for chunk in chunks:
            size = len(chunk)
            total += size
            if total > limit:
                raise too_many_bytes(limit)
            if filled + size > CHUNK_SIZE:
                if filled:
                    update(view[:filled])
                    _write_all(fd, view[:filled])
                    filled = 0
                if size >= CHUNK_SIZE:
                    update(chunk)
                    _write_all(fd, chunk)
                else:
                    view[:size] = chunk
                    filled = size
            else:
                view[filled:filled + size] = chunk
                filled += size
            if total - flushed >= _WRITEBACK_BYTES:
                _start_writeback(fd, flushed, total - filled - flushed)
                flushed = total - filled
        if filled:
            update(view[:filled])
            _write_all(fd, view[:filled])
    return sha.hexdigest(), total


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a finished range to disk now, without waiting.

    Otherwise a large blob stays dirty in the page cache until the final fsync, which
    then writes it all while nothing else happens. On Linux, POSIX_FADV_DONTNEED
    starts asynchronous writeback of the range (and drops pages already clean, which
    a freshly uploaded blob does not need). Elsewhere this is a no-op.
    """
    if _FADV_DONTNEED is not None and length > 0:
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, offset, length, _FADV_DONTNEED)


def _hash_fd(fd: int) -> str:
    """sha256 of a whole file, read through one reused 1 MiB buffer."""
    sha = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    offset = 0
    with memoryview(buffer) as view:
        while True:
            count = os.preadv(fd, [buffer], offset)
            if count == 0:
                return sha.hexdigest()
            sha.update(view[:count])
            offset += count


def _read_range(path: str, digest: str, start: int, stop: int) -> Iterator[bytes]:
    """Yield bytes ``start..stop-1`` of a file; opened lazily so no fd can leak."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    except FileNotFoundError:
        raise _blob_not_found(digest) from None
    try:
        position = start
        while position < stop:
            data = os.pread(fd, min(CHUNK_SIZE, stop - position), position)
            if not data:
                raise NotFound(f"blob {digest} is shorter than expected",
                               details={"digest": digest})
            position += len(data)
            yield data
    finally:
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
