"""Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, moto…).

Keys under the configured prefix::

    <prefix>sha256/<digest>      one object per blob
    <prefix>.uploads/<token>     the multipart upload behind one resumable upload

``put_stream`` knows the digest up front, so it streams a multipart upload straight
to the blob's key and completes it only after the sha256 and size have been verified:
until CompleteMultipartUpload no reader can see any of it, and on a mismatch the
upload is aborted. (Blobs that fit in one part are verified in memory and written
with a single PUT.) A resumable upload does not know its digest until the end, so it
is staged under ``.uploads/``, re-read to verify it, then copied server-side.

S3 requires every part of a multipart upload except the last to be at least 5 MiB.
Each ``upload_append`` becomes one or more parts, hence the rule for resumable
uploads: every append except the final one must carry at least 5 MiB.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import math
import re
import secrets
import time
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from regista.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    RangeNotSatisfiable,
    RegistryError,
    Unavailable,
)

from .base import (
    CHUNK_SIZE,
    EMPTY_SHA256,
    BlobStore,
    check_received,
    is_digest,
    resolve_range,
    too_many_bytes,
    validate_digest,
    validate_size,
)

MiB = 1024 * 1024
#: S3's smallest allowed part (all parts but the last), hence the smallest append
#: that may be followed by another one.
MIN_PART_SIZE = 5 * MiB
#: Default size of the parts ``put_stream`` and ``upload_append`` send.
DEFAULT_PART_SIZE = 8 * MiB
_MAX_PARTS = 10_000
_MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the SigV4 limit

_TOKEN_RE = re.compile(r"\A[0-9a-f]{32}\Z")
_UPLOAD_ID_RE = re.compile(r"\A[A-Za-z0-9_-]{1,2048}\Z")
_BUCKET_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{1,254}\Z")
_UNSAFE_FILENAME_RE = re.compile(r'[\x00-\x1f\x7f"\\/]')
_UNAVAILABLE_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"}


class S3BlobStore(BlobStore):
    """A :class:`BlobStore` in an S3 bucket, optionally under a key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        client: Any = None,
        part_size: int = DEFAULT_PART_SIZE,
        copy_part_size: int = 64 * MiB,
        max_pool_connections: int = 32,
    ) -> None:
        """Use ``bucket`` (which must exist) with keys under ``prefix``.

        Without a ready ``client`` one is made by :func:`make_s3_client`, with
        credentials from boto3's usual chain (environment, profile, instance role).
        ``part_size`` is the size of the parts uploads send (at least 5 MiB);
        server-side copies of larger objects go in parts of ``copy_part_size``.
        """
        if _BUCKET_RE.match(bucket) is None:
            raise ValueError(f"invalid S3 bucket name: {bucket!r}")
        if min(part_size, copy_part_size) < MIN_PART_SIZE:
            raise ValueError(f"part sizes must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        self._bucket = bucket
        self._prefix = _normalise_prefix(prefix)
        self._endpoint_url = endpoint_url
        self._part_size = part_size
        if client is None:
            client = make_s3_client(endpoint_url=endpoint_url, region=region,
                                    max_pool_connections=max_pool_connections)
        self._client = client
        # Managed copy: multipart (UploadPartCopy) above the threshold, so >5 GiB works.
        self._transfer = TransferConfig(
            multipart_threshold=copy_part_size, multipart_chunksize=copy_part_size, max_concurrency=8
        )

    @property
    def bucket(self) -> str:
        """The bucket holding the blobs."""
        return self._bucket

    @property
    def prefix(self) -> str:
        """The key prefix, empty or ending in ``/``."""
        return self._prefix

    @property
    def client(self) -> Any:
        """The boto3 S3 client (for operations tooling and tests)."""
        return self._client

    def describe(self) -> str:
        """``s3://bucket/prefix``, plus the endpoint if not AWS."""
        where = f"s3://{self._bucket}/{self._prefix}"
        return f"{where} at {self._endpoint_url}" if self._endpoint_url else where

    def __repr__(self) -> str:
        return f"S3BlobStore({self.describe()!r})"

    # -- keys and handles ------------------------------------------------------

    def _blob_key(self, digest: str) -> str:
        return f"{self._prefix}sha256/{validate_digest(digest)}"

    def _upload_key(self, token: str) -> str:
        return f"{self._prefix}.uploads/{token}"

    def _parse_handle(self, handle: str) -> tuple[str, str]:
        """Split a handle into (staging key, multipart upload id).

        The handle is ``<token>.<base64url(upload id)>``: the key is derived from the
        hex token alone, and the upload id only ever travels as a request parameter,
        so a forged handle can at most name an upload that does not exist.
        """
        token, _, encoded = handle.partition(".") if isinstance(handle, str) else ("", "", "")
        if _TOKEN_RE.match(token) is None or _UPLOAD_ID_RE.match(encoded) is None:
            raise _upload_not_found(handle)
        try:
            upload_id = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            return self._upload_key(token), upload_id.decode("ascii")
        except (binascii.Error, ValueError):
            raise _upload_not_found(handle) from None

    # -- reading ---------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        """HEAD the blob's key."""
        key = self._blob_key(digest)
        with _backend_errors():
            try:
                self._client.head_object(Bucket=self._bucket, Key=key)
            except botocore.exceptions.ClientError as exc:
                if _is_not_found(exc):
                    return False
                raise
        return True

    def size(self, digest: str) -> int:
        """Size from HEAD; NotFound if absent."""
        key = self._blob_key(digest)
        with _backend_errors():
            try:
                head = self._client.head_object(Bucket=self._bucket, Key=key)
            except botocore.exceptions.ClientError as exc:
                if _is_not_found(exc):
                    raise _blob_not_found(digest) from None
                raise
        return int(head["ContentLength"])

    def open(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream an inclusive byte range through one ranged GET."""
        first, stop = resolve_range(start, end, self.size(digest))
        if first == stop:
            return iter(())
        return self._stream(self._blob_key(digest), digest, f"bytes={first}-{stop - 1}")

    def _stream(self, key: str, digest: str, byte_range: str | None) -> Iterator[bytes]:
        with _backend_errors():
            try:
                if byte_range is None:
                    response = self._client.get_object(Bucket=self._bucket, Key=key)
                else:
                    response = self._client.get_object(
                        Bucket=self._bucket, Key=key, Range=byte_range
                    )
            except botocore.exceptions.ClientError as exc:
                if _is_not_found(exc):
                    raise _blob_not_found(digest) from None
                if _error_code(exc) == "InvalidRange":
                    raise RangeNotSatisfiable(f"range {byte_range} is outside the blob",
                                              details={"range": byte_range}) from None
                raise
            body = response["Body"]
            try:
                # StreamingBody checks Content-Length at the end: a cut-off
                # response raises instead of looking like a short blob.
                yield from body.iter_chunks(CHUNK_SIZE)
            finally:
                body.close()

    def _hash_object(self, key: str, digest: str) -> str:
        sha = hashlib.sha256()
        for chunk in self._stream(key, digest, None):
            sha.update(chunk)
        return sha.hexdigest()

    def verify(self, digest: str) -> bool:
        """Download the object and hash it."""
        return self._hash_object(self._blob_key(digest), digest) == digest

    def iter_digests(self) -> Iterator[str]:
        """List keys under ``sha256/`` (in key order)."""
        start = f"{self._prefix}sha256/"
        with _backend_errors():
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=start
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    name = str(item["Key"])[len(start):]
                    if is_digest(name):
                        yield name

    def presigned_url(
        self, digest: str, *, expires_seconds: int = 300, filename: str | None = None
    ) -> str | None:
        """A pre-signed GET URL (signed locally: no request, existence not checked)."""
        key = self._blob_key(digest)
        if not 1 <= expires_seconds <= _MAX_PRESIGN_SECONDS:
            raise BadRequest(
                f"expires_seconds must be between 1 and {_MAX_PRESIGN_SECONDS}",
                details={"expires_seconds": expires_seconds},
            )
        params: dict[str, str] = {"Bucket": self._bucket, "Key": key}
        if filename is not None:
            params["ResponseContentDisposition"] = content_disposition(filename)
        url = self._client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires_seconds
        )
        return str(url)

    # -- writing ---------------------------------------------------------------

    def put_stream(self, chunks: Iterable[bytes], *, digest: str, size: int) -> bool:
        """Verify while streaming, then make the object visible in one atomic step.

        If the blob is already stored the stream is read and verified without being
        uploaded again (saving the transfer); concurrent writers of one new blob may
        both get True.
        """
        key = self._blob_key(digest)
        size = validate_size(size)
        with _backend_errors():
            if size <= self._part_size:
                data = _read_at_most(chunks, size)
                check_received(digest=digest, size=size,
                               actual_digest=hashlib.sha256(data).hexdigest(),
                               actual_size=len(data))
                if self.exists(digest):
                    return False
                self._client.put_object(Bucket=self._bucket, Key=key, Body=data)
                return True
            if self.exists(digest):
                actual_digest, actual_size = _hash_at_most(chunks, size)
                check_received(digest=digest, size=size,
                               actual_digest=actual_digest, actual_size=actual_size)
                return False
            upload_id = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=key
            )["UploadId"]
            try:
                sha = hashlib.sha256()
                part_size = max(self._part_size, _round_up_mib(math.ceil(size / _MAX_PARTS)))
                parts, actual_size = self._upload_parts(
                    key, upload_id, chunks, first_part=1, part_size=part_size,
                    limit=size, on_overflow=lambda: too_many_bytes(size), sha=sha,
                )
                check_received(digest=digest, size=size,
                               actual_digest=sha.hexdigest(), actual_size=actual_size)
                self._client.complete_multipart_upload(
                    Bucket=self._bucket, Key=key, UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
            except BaseException:
                self._abort_quietly(key, upload_id)
                raise
        return True

    def _upload_parts(
        self,
        key: str,
        upload_id: str,
        chunks: Iterable[bytes],
        *,
        first_part: int,
        part_size: int,
        limit: int,
        on_overflow: Callable[[], RegistryError],
        sha: Any = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Send ``chunks`` as parts ``first_part, …``; return (parts, bytes sent).

        A full part is only sent once another MIN_PART_SIZE bytes are buffered
        behind it, so the final part of the call is at least 5 MiB whenever the call
        carried 5 MiB: the next append can then follow it. Memory stays below
        ``part_size + MIN_PART_SIZE`` plus one chunk.
        """
        parts: list[dict[str, Any]] = []
        buffer = bytearray()
        total = 0
        number = first_part

        def send(data: bytes) -> None:
            nonlocal number
            if number > _MAX_PARTS:
                raise PayloadTooLarge(f"an upload may have at most {_MAX_PARTS} parts",
                                      details={"max_parts": _MAX_PARTS})
            etag = self._client.upload_part(
                Bucket=self._bucket, Key=key, UploadId=upload_id,
                PartNumber=number, Body=data,
            )["ETag"]
            parts.append({"ETag": etag, "PartNumber": number})
            number += 1

        for chunk in chunks:
            total += len(chunk)
            if total > limit:
                raise on_overflow()
            if sha is not None:
                sha.update(chunk)
            buffer += chunk
            while len(buffer) >= part_size + MIN_PART_SIZE:
                send(bytes(buffer[:part_size]))
                del buffer[:part_size]
        if buffer:
            send(bytes(buffer))
        return parts, total

    def _abort_quietly(self, key: str, upload_id: str) -> None:
        # Best effort while another error propagates; purge_staging and a bucket
        # lifecycle rule catch what this misses.
        with contextlib.suppress(Exception):
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)

    def delete(self, digest: str) -> None:
        """DELETE the key (S3 deletes are idempotent)."""
        key = self._blob_key(digest)
        with _backend_errors():
            self._client.delete_object(Bucket=self._bucket, Key=key)

    # -- resumable uploads -----------------------------------------------------

    def upload_start(self) -> str:
        """Create a multipart upload on a fresh staging key."""
        token = secrets.token_hex(16)
        with _backend_errors():
            upload_id = str(self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self._upload_key(token)
            )["UploadId"])
        encoded = base64.urlsafe_b64encode(upload_id.encode("ascii")).decode("ascii")
        return f"{token}.{encoded.rstrip('=')}"

    def _list_parts(self, key: str, upload_id: str, handle: str) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        try:
            pages = self._client.get_paginator("list_parts").paginate(
                Bucket=self._bucket, Key=key, UploadId=upload_id
            )
            for page in pages:
                parts.extend(page.get("Parts", ()))
        except botocore.exceptions.ClientError as exc:
            if _is_not_found(exc):
                raise _upload_not_found(handle) from None
            raise
        parts.sort(key=lambda part: int(part["PartNumber"]))
        return parts

    def upload_offset(self, handle: str) -> int:
        """The sum of the sizes of the parts uploaded so far."""
        key, upload_id = self._parse_handle(handle)
        with _backend_errors():
            return sum(int(part["Size"]) for part in self._list_parts(key, upload_id, handle))

    def upload_append(
        self, handle: str, offset: int, chunks: Iterable[bytes], *, max_size: int
    ) -> int:
        """Send the chunks as new parts; S3 has them durably once each part returns.

        Appends to one upload must not run concurrently (each computes its part
        numbers from the parts already listed); the caller serialises them.
        Raises BadRequest if the previous append was smaller than 5 MiB: S3 only
        accepts such a part as the last one, so that upload can only be completed.
        """
        key, upload_id = self._parse_handle(handle)
        offset = validate_size(offset)
        with _backend_errors():
            parts = self._list_parts(key, upload_id, handle)
            current = sum(int(part["Size"]) for part in parts)
            if offset != current:
                raise RangeNotSatisfiable(
                    f"append at offset {offset}, but the upload holds {current} bytes",
                    details={"expected_offset": current},
                )
            if parts and int(parts[-1]["Size"]) < MIN_PART_SIZE:
                raise BadRequest(
                    "the previous append was smaller than 5 MiB, which S3 accepts only as "
                    "the last part: every append but the final one must carry at least "
                    "5 MiB",
                    details={"min_part_size": MIN_PART_SIZE},
                )
            part_size = max(self._part_size, _round_up_mib(math.ceil(max_size / 9_000)))
            _, written = self._upload_parts(
                key, upload_id, chunks, first_part=len(parts) + 1, part_size=part_size,
                limit=max_size - current,
                on_overflow=lambda: PayloadTooLarge(
                    f"upload would exceed the limit of {max_size} bytes",
                    details={"max_size": max_size},
                ),
            )
        return current + written

    def upload_complete(self, handle: str, *, digest: str, size: int) -> bool:
        """Complete the multipart upload, re-read it to verify, copy it into place."""
        staging, upload_id = self._parse_handle(handle)
        final = self._blob_key(digest)
        size = validate_size(size)
        with _backend_errors():
            parts = self._list_parts(staging, upload_id, handle)
            actual_size = sum(int(part["Size"]) for part in parts)
            if actual_size != size or not parts:
                # Nothing to re-read: either the size is wrong or there are no bytes
                # (S3 cannot complete a multipart upload without parts).
                self._abort_quietly(staging, upload_id)
                check_received(digest=digest, size=size,
                               actual_digest=EMPTY_SHA256, actual_size=actual_size)
                if self.exists(digest):
                    return False
                self._client.put_object(Bucket=self._bucket, Key=final, Body=b"")
                return True
            self._client.complete_multipart_upload(
                Bucket=self._bucket, Key=staging, UploadId=upload_id,
                MultipartUpload={"Parts": [
                    {"ETag": part["ETag"], "PartNumber": part["PartNumber"]} for part in parts
                ]},
            )
            try:
                check_received(digest=digest, size=size,
                               actual_digest=self._hash_object(staging, digest),
                               actual_size=actual_size)
                if self.exists(digest):
                    return False
                self._client.copy(
                    CopySource={"Bucket": self._bucket, "Key": staging},
                    Bucket=self._bucket, Key=final, Config=self._transfer,
                )
                return True
            finally:
                with contextlib.suppress(Exception):
                    self._client.delete_object(Bucket=self._bucket, Key=staging)

    def upload_abort(self, handle: str) -> None:
        """Abort the multipart upload and remove any staged object."""
        try:
            key, upload_id = self._parse_handle(handle)
        except NotFound:
            return
        with _backend_errors():
            try:
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=key, UploadId=upload_id
                )
            except botocore.exceptions.ClientError as exc:
                if not _is_not_found(exc):
                    raise
            self._client.delete_object(Bucket=self._bucket, Key=key)

    def _idle_multipart_uploads(self, prefix: str, cutoff: datetime) -> Iterator[dict[str, Any]]:
        """Multipart uploads under ``prefix`` with no activity since ``cutoff``."""
        pages = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self._bucket, Prefix=prefix
        )
        for page in pages:
            for upload in page.get("Uploads", ()):
                if upload["Initiated"] >= cutoff:
                    continue
                try:
                    parts = self._list_parts(upload["Key"], upload["UploadId"], "")
                except NotFound:
                    continue  # finished meanwhile
                if all(part["LastModified"] < cutoff for part in parts):
                    yield upload

    def list_stale_uploads(self, older_than_seconds: float) -> list[str]:
        """Handles of resumable uploads with no part newer than the threshold."""
        cutoff = datetime.fromtimestamp(time.time() - older_than_seconds, UTC)
        start = self._upload_key("")
        handles = []
        with _backend_errors():
            for upload in self._idle_multipart_uploads(start, cutoff):
                token = str(upload["Key"])[len(start):]
                if _TOKEN_RE.match(token):
                    encoded = base64.urlsafe_b64encode(str(upload["UploadId"]).encode("ascii"))
                    handles.append(f"{token}.{encoded.decode('ascii').rstrip('=')}")
        return handles

    def purge_staging(self, older_than_seconds: float) -> int:
        """Abort idle multipart uploads of crashed ``put_stream`` calls and delete
        staged objects that crashed ``upload_complete`` calls left behind."""
        cutoff = datetime.fromtimestamp(time.time() - older_than_seconds, UTC)
        removed = 0
        with _backend_errors():
            for upload in self._idle_multipart_uploads(f"{self._prefix}sha256/", cutoff):
                self._abort_quietly(str(upload["Key"]), str(upload["UploadId"]))
                removed += 1
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=self._upload_key("")
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    if item["LastModified"] < cutoff:
                        self._client.delete_object(Bucket=self._bucket, Key=item["Key"])
                        removed += 1
        return removed


# -- helpers -------------------------------------------------------------------


def make_s3_client(
    *,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    max_pool_connections: int = 32,
    session: boto3.session.Session | None = None,
) -> Any:
    """A boto3 S3 client configured for the blob store.

    Retries use botocore's "standard" mode (transient errors and throttling, with
    backoff). ``endpoint_url`` selects an S3-compatible service: path-style
    addressing is then used, and request checksums are only sent when an operation
    requires them, because several S3-compatible servers reject the checksum
    trailers botocore adds by default. ``session`` supplies credentials (a fresh
    session with boto3's usual chain if omitted).
    """
    options: dict[str, Any] = {}
    if endpoint_url is not None:
        options = {
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
    config = Config(
        region_name=region,
        signature_version="s3v4",
        retries={"max_attempts": 5, "mode": "standard"},
        # Enough sockets for a server process's threads plus managed-copy workers.
        max_pool_connections=max_pool_connections,
        connect_timeout=10,
        read_timeout=120,
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        **options,
    )
    # A session of our own: creating clients from boto3's shared default session is
    # not thread-safe, while the client itself may be shared by threads.
    session = session or boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def content_disposition(filename: str) -> str:
    """A safe ``Content-Disposition: attachment`` value for ``filename`` (RFC 6266).

    Only the last path component is kept; control characters, quotes and slashes
    are dropped from the ASCII fallback, and the exact name travels percent-encoded
    in ``filename*``, so no header can be injected.
    """
    name = unicodedata.normalize("NFC", filename.replace("\\", "/").rsplit("/", 1)[-1])
    name = _UNSAFE_FILENAME_RE.sub("", name).strip() or "download"
    fallback = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    quoted = urllib.parse.quote(name, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quoted}"


def _normalise_prefix(prefix: str) -> str:
    """``a/b`` → ``a/b/``; refuses empty, ``.`` and ``..`` segments and control chars."""
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    segments = stripped.split("/")
    if any(seg in ("", ".", "..") for seg in segments) or re.search(r"[\x00-\x1f\x7f]", stripped):
        raise ValueError(f"invalid S3 key prefix: {prefix!r}")
    return stripped + "/"


def _round_up_mib(size: int) -> int:
    return math.ceil(size / MiB) * MiB


def _read_at_most(chunks: Iterable[bytes], limit: int) -> bytes:
    """Gather a small stream in memory, failing as soon as it passes ``limit`` bytes."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        if len(buffer) > limit:
            raise too_many_bytes(limit)
    return bytes(buffer)


def _hash_at_most(chunks: Iterable[bytes], limit: int) -> tuple[str, int]:
    sha = hashlib.sha256()
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise too_many_bytes(limit)
        sha.update(chunk)
    return sha.hexdigest(), total


def _error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_not_found(exc: botocore.exceptions.ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 404 or _error_code(exc) in {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


@contextlib.contextmanager
def _backend_errors() -> Iterator[None]:
    """Report an unreachable or failing S3 as Unavailable (503), after boto's retries."""
    try:
        yield
    except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as exc:
        raise Unavailable("blob storage is unreachable", details={"reason": str(exc)}) from exc
    except botocore.exceptions.ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500 or _error_code(exc) in _UNAVAILABLE_CODES:
            raise Unavailable("blob storage is failing",
                              details={"reason": _error_code(exc)}) from exc
        if _error_code(exc) == "EntityTooSmall":
            raise BadRequest(
                "a part other than the last is smaller than 5 MiB",
                details={"min_part_size": MIN_PART_SIZE},
            ) from exc
        raise


def _blob_not_found(digest: str) -> NotFound:
    return NotFound(f"blob {digest} not found", details={"digest": digest})


def _upload_not_found(handle: Any) -> NotFound:
    return NotFound("no such upload", details={"upload": str(handle)[:80]})
