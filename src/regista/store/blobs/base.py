"""The blob store interface: bytes stored once, addressed by their sha256.

Every backend implements :class:`BlobStore`. The contract, shared by all of them:

- A digest is a lowercase 64-character hex sha256. It is validated with
  :func:`validate_digest` wherever it enters, before it touches a path or a key;
  a malformed one raises :class:`~regista.errors.BadRequest`.
- Writes are verified: the bytes are hashed while they stream and only bytes whose
  sha256 and size match what the caller announced ever become visible under a
  digest (:class:`~regista.errors.DigestMismatch` otherwise). Visibility is atomic:
  a reader sees the whole blob or nothing.
- Writing bytes that are already stored is an idempotent success.
- Methods are synchronous and safe to call from several threads (and, for the
  built-in backends, from several processes sharing the same directory or bucket).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from typing import Any

from regista.domain.names import is_digest as is_digest
from regista.domain.names import validate_digest as validate_digest
from regista.errors import BadRequest, DigestMismatch, RangeNotSatisfiable

#: Size of the pieces that :meth:`BlobStore.open` yields and that backends read and
#: write in; big enough that per-chunk Python overhead is negligible.
CHUNK_SIZE = 1024 * 1024

#: sha256 of zero bytes, the one digest whose blob needs no data.
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"



def validate_size(size: Any) -> int:
    """Return ``size`` if it is a non-negative int, else raise BadRequest."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadRequest("invalid size: expected a non-negative integer",
                         details={"size": repr(size)[:40]})
    return size


def too_many_bytes(size: int) -> DigestMismatch:
    """The error for a stream that goes on past its announced size."""
    return DigestMismatch(
        f"received more bytes than the announced size of {size}",
        details={"expected_size": size},
    )


def check_received(*, digest: str, size: int, actual_digest: str, actual_size: int) -> None:
    """Raise DigestMismatch unless the received bytes have the announced size and sha256."""
    if actual_size != size:
        raise DigestMismatch(
            f"received {actual_size} bytes, announced {size}",
            details={"expected_size": size, "actual_size": actual_size},
        )
    if actual_digest != digest:
        raise DigestMismatch(
            "sha256 of the received bytes does not match the announced digest",
            details={"expected_digest": digest, "actual_digest": actual_digest},
        )


def resolve_range(start: int, end: int | None, size: int) -> tuple[int, int]:
    """Check an inclusive byte range against a blob of ``size`` bytes.

    Returns ``(start, stop)`` with ``stop`` exclusive. ``end=None`` means "to the
    end". Raises RangeNotSatisfiable (416) when the range does not lie inside the
    blob. The whole of an empty blob (``start=0, end=None``) is the empty range.
    """
    if isinstance(start, bool) or not isinstance(start, int) or (
        end is not None and (isinstance(end, bool) or not isinstance(end, int))
    ):
        raise RangeNotSatisfiable("range bounds must be integers",
                                  details={"size": size})
    if start == 0 and end is None:
        return 0, size
    last = size - 1 if end is None else end
    if start < 0 or start > last or last >= size:
        raise RangeNotSatisfiable(
            f"range {start}-{'' if end is None else end} is outside the blob "
            f"of {size} bytes",
            details={"start": start, "end": end, "size": size},
        )
    return start, last + 1


class BlobStore(abc.ABC):
    """Content-addressed storage of immutable blobs, plus resumable uploads.

    Errors: NotFound (missing blob or upload), BadRequest (malformed digest, or a
    backend rule such as S3's minimum part size), DigestMismatch (bytes that do not
    match the announced sha256 or size), RangeNotSatisfiable (bad range, or an
    append at the wrong offset), PayloadTooLarge (an upload beyond ``max_size``),
    Conflict (two appends to one upload at once), Unavailable (the backend is down
    or full).
    """

    # -- reading ---------------------------------------------------------------

    @abc.abstractmethod
    def exists(self, digest: str) -> bool:
        """Whether the blob is stored."""

    @abc.abstractmethod
    def size(self, digest: str) -> int:
        """Size of the blob in bytes; NotFound if it is not stored."""

    @abc.abstractmethod
    def open(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream bytes ``start..end`` (``end`` inclusive, like HTTP Range) in ~1 MiB chunks.

        NotFound and RangeNotSatisfiable are raised by the call itself, before any
        byte is produced, so an HTTP handler can pick its status first. ``end`` must
        lie inside the blob: clamping an over-long HTTP range (RFC 9110 §14.1.2) is
        the caller's job.
        """

    @abc.abstractmethod
    def verify(self, digest: str) -> bool:
        """Re-read the stored bytes and tell whether they still hash to ``digest``."""

    @abc.abstractmethod
    def iter_digests(self) -> Iterator[str]:
        """Every stored digest (for hygiene and garbage collection), in no set order."""

    @abc.abstractmethod
    def presigned_url(
        self, digest: str, *, expires_seconds: int = 300, filename: str | None = None
    ) -> str | None:
        """A URL that downloads the blob directly from the backend, or None if unsupported.

        ``filename`` sets the ``Content-Disposition`` of the download. The blob's
        existence is not checked.
        """

    @abc.abstractmethod
    def describe(self) -> str:
        """A short human description for logs, e.g. ``local:/srv/blobs``."""

    # -- writing ---------------------------------------------------------------

    @abc.abstractmethod
    def put_stream(self, chunks: Iterable[bytes], *, digest: str, size: int) -> bool:
        """Store the bytes of ``chunks`` under ``digest``, verifying sha256 and size.

        Reads the iterable once, in constant memory, and stops as soon as more than
        ``size`` bytes arrive. Returns True if this call stored the blob, False if it
        was already present (the stream is still read and verified). When it returns,
        the blob is durable. Nothing is left behind on error.
        """

    @abc.abstractmethod
    def delete(self, digest: str) -> None:
        """Remove the blob; a missing blob is not an error."""

    # -- resumable uploads -----------------------------------------------------

    @abc.abstractmethod
    def upload_start(self) -> str:
        """Begin a resumable upload and return its handle (a URL-safe token)."""

    @abc.abstractmethod
    def upload_offset(self, handle: str) -> int:
        """How many bytes the upload holds; NotFound for an unknown handle."""

    @abc.abstractmethod
    def upload_append(
        self, handle: str, offset: int, chunks: Iterable[bytes], *, max_size: int
    ) -> int:
        """Append ``chunks`` at ``offset`` and return the new offset.

        ``offset`` must equal the current one (RangeNotSatisfiable with
        ``details={"expected_offset": n}`` otherwise). The upload may not grow past
        ``max_size`` bytes (PayloadTooLarge). Bytes are durable once the call returns.
        If the call fails part-way, a prefix of its bytes may have been kept: ask
        :meth:`upload_offset` and resume from there.
        """

    @abc.abstractmethod
    def upload_complete(self, handle: str, *, digest: str, size: int) -> bool:
        """Verify the uploaded bytes and store them as blob ``digest``.

        Returns True if newly stored, False if the blob already existed. The upload
        is consumed either way, and also when verification fails (DigestMismatch).
        """

    @abc.abstractmethod
    def upload_abort(self, handle: str) -> None:
        """Discard an upload; an unknown handle is not an error."""

    @abc.abstractmethod
    def list_stale_uploads(self, older_than_seconds: float) -> list[str]:
        """Handles of uploads that nobody has written to for ``older_than_seconds``."""

    @abc.abstractmethod
    def purge_staging(self, older_than_seconds: float) -> int:
        """Remove leftovers of interrupted ``put_stream`` calls older than the threshold.

        Returns how many were removed. Uploads are not touched: see
        :meth:`list_stale_uploads`.
        """
