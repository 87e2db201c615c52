"""One suite, every blob backend: a local directory and S3 (moto over real HTTP)."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from regista.errors import (
    BadRequest,
    Conflict,
    DigestMismatch,
    NotFound,
    PayloadTooLarge,
    RangeNotSatisfiable,
)
from regista.store.blobs import (
    CHUNK_SIZE,
    EMPTY_SHA256,
    MIN_PART_SIZE,
    BlobStore,
    LocalBlobStore,
    S3BlobStore,
    open_blob_store,
)
from regista.store.blobs.s3 import DEFAULT_PART_SIZE, content_disposition

MiB = 1024 * 1024
# Bigger than one S3 part, so S3 put_stream takes its multipart path.
BIG = DEFAULT_PART_SIZE + MIN_PART_SIZE + 12345


# -- fixtures and helpers ---------------------------------------------------------


@pytest.fixture
def local_store(tmp_path: Path) -> LocalBlobStore:
    store = open_blob_store((tmp_path / "blobs").as_uri())
    assert isinstance(store, LocalBlobStore)
    return store


@pytest.fixture
def s3_store(s3_client: Any, s3_bucket: str, s3_prefix: str, moto_s3_endpoint: str) -> S3BlobStore:
    return S3BlobStore(s3_bucket, s3_prefix, endpoint_url=moto_s3_endpoint, client=s3_client)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> BlobStore:
    """The same tests against every backend."""
    backend: BlobStore = request.getfixturevalue(f"{request.param}_store")
    return backend


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-looking bytes (cheaper than os.urandom for MiBs)."""
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pieces(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def put(store: BlobStore, data: bytes, piece: int = 64 * 1024) -> bool:
    return store.put_stream(pieces(data, piece), digest=sha(data), size=len(data))


def read(store: BlobStore, digest: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.open(digest, start, end))


def leftovers(store: BlobStore) -> list[str]:
    """Anything a backend keeps besides finished blobs: temp files, uploads, staging."""
    if isinstance(store, LocalBlobStore):
        return sorted(os.listdir(store.root / ".staging") + os.listdir(store.root / ".uploads"))
    assert isinstance(store, S3BlobStore)
    client = store.client
    uploads = client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)
    objects = client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix)
    return sorted(
        [f"upload:{u['Key']}" for u in uploads.get("Uploads", [])]
        + [o["Key"] for o in objects.get("Contents", [])
           if not o["Key"].startswith(f"{store.prefix}sha256/")]
    )


def corrupt(store: BlobStore, digest: str) -> None:
    """Change one byte of a stored blob behind the store's back."""
    if isinstance(store, LocalBlobStore):
        path = store.root / "sha256" / digest[:2] / digest[2:4] / digest
        path.chmod(0o644)
        with path.open("r+b") as f:
            first = f.read(1)
            f.seek(0)
            f.write(bytes([first[0] ^ 0xFF]))
        return
    assert isinstance(store, S3BlobStore)
    key = f"{store.prefix}sha256/{digest}"
    data = store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read()
    store.client.put_object(Bucket=store.bucket, Key=key, Body=bytes([data[0] ^ 0xFF]) + data[1:])


class CountingStream:
    """An iterable of chunks that records how many were pulled, and can fail."""

    def __init__(self, chunks: Iterable[bytes], fail_after: int | None = None) -> None:
        self._chunks = list(chunks)
        self._fail_after = fail_after
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if self._fail_after is not None and self.pulled == self._fail_after:
                raise ConnectionResetError("client went away")
            self.pulled += 1
            yield chunk


# -- round trip and idempotency ---------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE + 17, BIG], ids=["empty", "1B", "1MiB+", "big"])
def test_round_trip(store: BlobStore, size: int) -> None:
    data = payload(size)
    digest = sha(data)
    assert not store.exists(digest)
    assert put(store, data) is True
    assert store.exists(digest)
    assert store.size(digest) == size
    chunks = list(store.open(digest))
    assert b"".join(chunks) == data
    assert all(len(c) <= CHUNK_SIZE for c in chunks)
    assert store.verify(digest)
    assert list(store.iter_digests()) == [digest]
    assert leftovers(store) == []


def test_one_large_chunk_round_trip(store: BlobStore) -> None:
    data = payload(3 * MiB + 5)
    assert store.put_stream([data], digest=sha(data), size=len(data))
    assert read(store, sha(data)) == data


@pytest.mark.parametrize("size", [100, BIG], ids=["small", "big"])
def test_put_is_idempotent(store: BlobStore, size: int) -> None:
    data = payload(size)
    assert put(store, data) is True
    stream = CountingStream(pieces(data, MiB))
    assert store.put_stream(stream, digest=sha(data), size=size) is False
    assert stream.pulled == len(list(pieces(data, MiB)))  # still read and verified
    assert read(store, sha(data)) == data
    assert leftovers(store) == []


@pytest.mark.parametrize("size", [100, BIG], ids=["small", "big"])
def test_idempotent_put_still_verifies(store: BlobStore, size: int) -> None:
    data = payload(size)
    put(store, data)
    wrong = data[:-1] + b"!"
    with pytest.raises(DigestMismatch):
        store.put_stream(pieces(wrong), digest=sha(data), size=size)
    assert read(store, sha(data)) == data


def test_concurrent_puts_of_one_blob(store: BlobStore) -> None:
    data = payload(300_000)
    results: list[bool] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(put(store, data))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 6 and any(results)
    if isinstance(store, LocalBlobStore):
        assert results.count(True) == 1  # link(2) lets exactly one writer win
    assert read(store, sha(data)) == data
    assert leftovers(store) == []


# -- verification on write --------------------------------------------------------


@pytest.mark.parametrize("size", [100, BIG], ids=["small", "big"])
def test_wrong_digest_stores_nothing(store: BlobStore, size: int) -> None:
    data = payload(size)
    other = sha(b"something else")
    with pytest.raises(DigestMismatch) as info:
        store.put_stream(pieces(data), digest=other, size=size)
    assert info.value.details["actual_digest"] == sha(data)
    assert not store.exists(other)
    assert not store.exists(sha(data))
    assert list(store.iter_digests()) == []
    assert leftovers(store) == []


@pytest.mark.parametrize(("size", "piece"), [(10, 6), (BIG, MiB)], ids=["small", "big"])
def test_too_many_bytes_stops_early(store: BlobStore, size: int, piece: int) -> None:
    data = payload(size + 5 * piece)
    stream = CountingStream(pieces(data, piece))
    with pytest.raises(DigestMismatch):
        store.put_stream(stream, digest=sha(data[:size]), size=size)
    # Stopped at the first chunk that went past the announced size.
    assert stream.pulled == size // piece + 1
    assert list(store.iter_digests()) == []
    assert leftovers(store) == []


@pytest.mark.parametrize("size", [100, BIG], ids=["small", "big"])
def test_too_few_bytes(store: BlobStore, size: int) -> None:
    data = payload(size)
    with pytest.raises(DigestMismatch) as info:
        store.put_stream(pieces(data[:-1]), digest=sha(data), size=size)
    assert info.value.details == {"expected_size": size, "actual_size": size - 1}
    assert not store.exists(sha(data))
    assert leftovers(store) == []


@pytest.mark.parametrize("size", [100, BIG], ids=["small", "big"])
def test_interrupted_put_leaves_nothing(store: BlobStore, size: int) -> None:
    data = payload(size)
    stream = CountingStream(pieces(data, MiB // 2), fail_after=len(data) // (MiB // 2))
    with pytest.raises(ConnectionResetError):
        store.put_stream(stream, digest=sha(data), size=size)
    assert not store.exists(sha(data))
    assert leftovers(store) == []


BAD_DIGESTS = [
    "../../etc/passwd",
    "../" + "a" * 61,
    "A" * 64,
    sha(b"x").upper(),
    "a" * 63,
    "a" * 65,
    sha(b"x") + "\n",
    "sha256:" + sha(b"x"),
    "",
    None,
]


@pytest.mark.parametrize("digest", BAD_DIGESTS, ids=repr)
def test_bad_digest_rejected_everywhere(store: BlobStore, digest: Any) -> None:
    handle = store.upload_start()
    operations: list[Callable[[], object]] = [
        lambda: store.exists(digest),
        lambda: store.size(digest),
        lambda: store.open(digest),
        lambda: store.verify(digest),
        lambda: store.delete(digest),
        lambda: store.presigned_url(digest),
        lambda: store.put_stream([b"x"], digest=digest, size=1),
        lambda: store.upload_complete(handle, digest=digest, size=0),
    ]
    for operation in operations:
        with pytest.raises(BadRequest) as info:
            operation()
        assert type(info.value) is BadRequest
    store.upload_abort(handle)
    assert leftovers(store) == []


@pytest.mark.parametrize("size", [-1, 1.5, True, "3"])
def test_bad_size_rejected(store: BlobStore, size: Any) -> None:
    with pytest.raises(BadRequest):
        store.put_stream([b"x"], digest=sha(b"x"), size=size)


# -- reading ranges ---------------------------------------------------------------


def test_ranges(store: BlobStore) -> None:
    data = payload(CHUNK_SIZE * 2 + 100)
    digest = sha(data)
    put(store, data)
    last = len(data) - 1
    assert read(store, digest, 0, 0) == data[:1]
    assert read(store, digest, last, last) == data[-1:]
    assert read(store, digest, 10, 20) == data[10:21]
    assert read(store, digest, 5) == data[5:]
    assert read(store, digest, last) == data[-1:]
    assert read(store, digest, 0, last) == data
    span = list(store.open(digest, 100, CHUNK_SIZE + 200))
    assert b"".join(span) == data[100:CHUNK_SIZE + 201]
    assert all(len(c) <= CHUNK_SIZE for c in span)


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, "size"), ("size", None), ("size", "size"), (10, 9), (-1, 5), (-1, None)],
    ids=["end-beyond", "start-at-size", "both-beyond", "reversed", "negative", "negative-open"],
)
def test_unsatisfiable_ranges(store: BlobStore, start: Any, end: Any) -> None:
    data = payload(1000)
    put(store, data)
    start = len(data) if start == "size" else start
    end = len(data) if end == "size" else end
    with pytest.raises(RangeNotSatisfiable) as info:
        store.open(sha(data), start, end)  # raised by the call, before iterating
    assert info.value.details["size"] == len(data)


def test_empty_blob_ranges(store: BlobStore) -> None:
    assert store.put_stream([], digest=EMPTY_SHA256, size=0)
    assert read(store, EMPTY_SHA256) == b""
    with pytest.raises(RangeNotSatisfiable):
        store.open(EMPTY_SHA256, 0, 0)


def test_missing_blob(store: BlobStore) -> None:
    digest = sha(b"never stored")
    assert not store.exists(digest)
    with pytest.raises(NotFound):
        store.size(digest)
    with pytest.raises(NotFound):
        store.open(digest)  # raised by the call, before iterating
    with pytest.raises(NotFound):
        store.verify(digest)


# -- resumable uploads ------------------------------------------------------------


def test_resumable_upload_in_several_appends(store: BlobStore) -> None:
    # Every append but the last carries >= 5 MiB (S3's minimum part size).
    parts = [payload(MIN_PART_SIZE, 1), payload(MIN_PART_SIZE + 3, 2), payload(1000, 3)]
    data = b"".join(parts)
    handle = store.upload_start()
    assert handle.replace(".", "").replace("-", "").replace("_", "").isalnum()
    assert store.upload_offset(handle) == 0
    offset = 0
    for part in parts:
        offset = store.upload_append(handle, offset, pieces(part), max_size=len(data))
        assert store.upload_offset(handle) == offset
    assert offset == len(data)
    assert store.upload_complete(handle, digest=sha(data), size=len(data)) is True
    assert read(store, sha(data)) == data
    assert store.verify(sha(data))
    with pytest.raises(NotFound):
        store.upload_offset(handle)
    assert leftovers(store) == []


def test_resumable_upload_of_existing_blob(store: BlobStore) -> None:
    data = payload(2000)
    put(store, data)
    handle = store.upload_start()
    store.upload_append(handle, 0, [data], max_size=10_000)
    assert store.upload_complete(handle, digest=sha(data), size=len(data)) is False
    assert read(store, sha(data)) == data
    assert leftovers(store) == []


def test_empty_resumable_upload(store: BlobStore) -> None:
    handle = store.upload_start()
    assert store.upload_append(handle, 0, [], max_size=10) == 0
    assert store.upload_complete(handle, digest=EMPTY_SHA256, size=0) is True
    assert store.size(EMPTY_SHA256) == 0
    assert leftovers(store) == []


def test_append_at_wrong_offset(store: BlobStore) -> None:
    handle = store.upload_start()
    assert store.upload_append(handle, 0, [b"abc"], max_size=100) == 3
    for wrong in (0, 2, 4, 1000):
        with pytest.raises(RangeNotSatisfiable) as info:
            store.upload_append(handle, wrong, [b"zzz"], max_size=100)
        assert info.value.details == {"expected_offset": 3}
    assert store.upload_offset(handle) == 3
    assert store.upload_complete(handle, digest=sha(b"abc"), size=3)
    assert read(store, sha(b"abc")) == b"abc"


def test_append_beyond_max_size(store: BlobStore) -> None:
    handle = store.upload_start()
    with pytest.raises(PayloadTooLarge):
        store.upload_append(handle, 0, [b"x" * 60, b"y" * 60], max_size=100)
    assert store.upload_offset(handle) <= 100
    store.upload_abort(handle)


@pytest.mark.parametrize("wrong", ["digest", "size"])
def test_complete_with_wrong_digest_or_size(store: BlobStore, wrong: str) -> None:
    data = payload(5000)
    handle = store.upload_start()
    store.upload_append(handle, 0, pieces(data, 1000), max_size=len(data))
    digest = sha(b"other") if wrong == "digest" else sha(data)
    size = len(data) + (1 if wrong == "size" else 0)
    with pytest.raises(DigestMismatch):
        store.upload_complete(handle, digest=digest, size=size)
    assert list(store.iter_digests()) == []
    with pytest.raises(NotFound):  # a failed completion consumes the upload
        store.upload_offset(handle)
    assert leftovers(store) == []


def test_abort(store: BlobStore) -> None:
    handle = store.upload_start()
    store.upload_append(handle, 0, [b"abc"], max_size=100)
    store.upload_abort(handle)
    with pytest.raises(NotFound):
        store.upload_offset(handle)
    with pytest.raises(NotFound):
        store.upload_append(handle, 3, [b"d"], max_size=100)
    store.upload_abort(handle)  # idempotent
    assert leftovers(store) == []


def _forged_handle(store: BlobStore) -> str:
    if isinstance(store, S3BlobStore):
        return "0" * 32 + "." + base64.urlsafe_b64encode(b"no-such-upload").decode().rstrip("=")
    return "0" * 32


@pytest.mark.parametrize("handle", ["", "../x", "../../etc/passwd", "a" * 33, "forged"])
def test_unknown_or_malformed_handle(store: BlobStore, handle: str) -> None:
    if handle == "forged":
        handle = _forged_handle(store)
    with pytest.raises(NotFound):
        store.upload_offset(handle)
    with pytest.raises(NotFound):
        store.upload_append(handle, 0, [b"x"], max_size=10)
    with pytest.raises(NotFound):
        store.upload_complete(handle, digest=sha(b"x"), size=1)
    store.upload_abort(handle)


def test_stale_uploads(store: BlobStore) -> None:
    handle = store.upload_start()
    store.upload_append(handle, 0, [b"abc"], max_size=10)
    assert store.list_stale_uploads(3600) == []
    # A negative age puts the cutoff in the future: everything is stale.
    assert store.list_stale_uploads(-60) == [handle]
    store.upload_abort(handle)
    assert store.list_stale_uploads(-60) == []


# -- integrity, deletion, listing -------------------------------------------------


def test_verify_detects_corruption(store: BlobStore) -> None:
    data = payload(4096)
    put(store, data)
    assert store.verify(sha(data))
    corrupt(store, sha(data))
    assert not store.verify(sha(data))


def test_delete(store: BlobStore) -> None:
    data = payload(100)
    put(store, data)
    store.delete(sha(data))
    assert not store.exists(sha(data))
    with pytest.raises(NotFound):
        store.size(sha(data))
    store.delete(sha(data))  # idempotent
    assert put(store, data) is True  # and the blob can come back
    assert read(store, sha(data)) == data


def test_iter_digests(store: BlobStore) -> None:
    digests = set()
    for seed in range(5):
        data = payload(100 + seed, seed)
        put(store, data)
        digests.add(sha(data))
    handle = store.upload_start()  # uploads are not blobs
    store.upload_append(handle, 0, [b"pending"], max_size=100)
    assert sorted(store.iter_digests()) == sorted(digests)
    store.upload_abort(handle)


def test_describe(store: BlobStore) -> None:
    text = store.describe()
    assert text.startswith("local:/" if isinstance(store, LocalBlobStore) else "s3://regista-test/t-")


def test_factory_store_works_end_to_end(s3_blob_url: str, moto_s3_endpoint: str) -> None:
    store = open_blob_store(s3_blob_url, s3_endpoint_url=moto_s3_endpoint)
    data = payload(1000)
    assert put(store, data)
    assert read(store, sha(data)) == data


def test_presigned_url(store: BlobStore) -> None:
    data = payload(70_000)
    put(store, data)
    url = store.presigned_url(sha(data), expires_seconds=60, filename="fraud scorer\r\n\"v1\".bin")
    if isinstance(store, LocalBlobStore):
        assert url is None
        return
    assert url is not None
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == data
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="fraud scorerv1.bin"')
    assert "\r" not in disposition and "\n" not in disposition


# -- backend-specific -------------------------------------------------------------


def test_local_layout_and_permissions(local_store: LocalBlobStore) -> None:
    data = payload(10)
    digest = sha(data)
    put(local_store, data)
    path = local_store.root / "sha256" / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == data
    assert path.stat().st_mode & 0o777 == 0o444
    assert local_store.describe() == f"local:{local_store.root}"


def test_local_iter_digests_ignores_strays(local_store: LocalBlobStore) -> None:
    data = payload(10)
    put(local_store, data)
    misplaced = sha(b"misplaced")
    (local_store.root / "sha256" / "zz").mkdir()
    (local_store.root / "sha256" / sha(data)[:2] / sha(data)[2:4] / misplaced).write_bytes(b"")
    (local_store.root / "sha256" / "README").write_text("hi")
    assert list(local_store.iter_digests()) == [sha(data)]


def test_local_append_keeps_what_arrived(local_store: LocalBlobStore) -> None:
    handle = local_store.upload_start()
    stream = CountingStream([b"aaaa", b"bbbb", b"cccc"], fail_after=2)
    with pytest.raises(ConnectionResetError):
        local_store.upload_append(handle, 0, stream, max_size=100)
    # What the client delivered before it went away is kept; it resumes from there.
    assert local_store.upload_offset(handle) == 8
    assert local_store.upload_append(handle, 8, [b"cccc"], max_size=100) == 12
    assert local_store.upload_complete(handle, digest=sha(b"aaaabbbbcccc"), size=12)


def test_local_concurrent_append_conflicts(local_store: LocalBlobStore) -> None:
    handle = local_store.upload_start()
    fd = os.open(local_store.root / ".uploads" / handle, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as another append in progress would
        with pytest.raises(Conflict):
            local_store.upload_append(handle, 0, [b"x"], max_size=10)
        with pytest.raises(Conflict):
            local_store.upload_complete(handle, digest=sha(b""), size=0)
    finally:
        os.close(fd)
    assert local_store.upload_append(handle, 0, [b"x"], max_size=10) == 1


def test_local_upload_name_of_a_published_blob_is_refused(local_store: LocalBlobStore) -> None:
    handle = local_store.upload_start()
    local_store.upload_append(handle, 0, [b"abc"], max_size=10)
    local_store.upload_complete(handle, digest=sha(b"abc"), size=3)
    # A crash that loses the removal of the upload's name brings it back as a
    # second name of the blob; appending through it must not reach the blob.
    blob = local_store.root / "sha256" / sha(b"abc")[:2] / sha(b"abc")[2:4] / sha(b"abc")
    os.link(blob, local_store.root / ".uploads" / handle)
    with pytest.raises(NotFound):
        local_store.upload_append(handle, 3, [b"def"], max_size=10)
    assert local_store.verify(sha(b"abc"))
    local_store.upload_abort(handle)
    assert local_store.verify(sha(b"abc"))


def test_local_purge_staging(local_store: LocalBlobStore) -> None:
    stale = local_store.root / ".staging" / "crashed.tmp"
    stale.write_bytes(b"half a blob")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = local_store.root / ".staging" / "busy.tmp"
    fresh.write_bytes(b"in progress")
    assert local_store.purge_staging(3600) == 1
    assert sorted(os.listdir(local_store.root / ".staging")) == ["busy.tmp"]


def test_s3_layout(s3_store: S3BlobStore) -> None:
    data = payload(10)
    put(s3_store, data)
    key = f"{s3_store.prefix}sha256/{sha(data)}"
    assert s3_store.client.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read() == data


def test_s3_small_append_must_be_last(s3_store: S3BlobStore) -> None:
    handle = s3_store.upload_start()
    assert s3_store.upload_append(handle, 0, [b"small"], max_size=10 * MiB) == 5
    with pytest.raises(BadRequest) as info:
        s3_store.upload_append(handle, 5, [b"more"], max_size=10 * MiB)
    assert info.value.details == {"min_part_size": MIN_PART_SIZE}
    assert s3_store.upload_offset(handle) == 5
    assert s3_store.upload_complete(handle, digest=sha(b"small"), size=5)


def test_s3_large_append_is_split_into_parts(s3_client: Any, s3_bucket: str, s3_prefix: str) -> None:
    # Small copy parts, so that completing also takes the multipart-copy path
    # (UploadPartCopy) that objects over 5 GiB need.
    s3_store = S3BlobStore(s3_bucket, s3_prefix, client=s3_client, copy_part_size=MIN_PART_SIZE)
    data = payload(2 * DEFAULT_PART_SIZE + MiB)
    handle = s3_store.upload_start()
    # One append bigger than a part, then a second one: every part it leaves behind,
    # including its last, must be big enough to be followed.
    first = data[: 2 * DEFAULT_PART_SIZE - 10]
    offset = s3_store.upload_append(handle, 0, pieces(first, MiB), max_size=len(data))
    s3_store.upload_append(handle, offset, [data[offset:]], max_size=len(data))
    assert s3_store.upload_complete(handle, digest=sha(data), size=len(data))
    assert read(s3_store, sha(data)) == data
    head = s3_client.head_object(Bucket=s3_bucket, Key=f"{s3_store.prefix}sha256/{sha(data)}")
    assert head["ETag"].strip('"').endswith("-4")  # copied in 4 parts of 5 MiB
    assert leftovers(s3_store) == []


def test_s3_purge_staging(s3_store: S3BlobStore) -> None:
    # A put_stream that died mid-way leaves a multipart upload on the blob's key.
    # (moto reports a fixed 2010 "Initiated" date, so part times decide here.)
    key = f"{s3_store.prefix}sha256/{sha(b'crashed')}"
    client, bucket = s3_store.client, s3_store.bucket
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x")
    assert s3_store.purge_staging(3600) == 0
    assert s3_store.purge_staging(-60) == 1
    assert leftovers(s3_store) == []


def test_s3_presigned_url_expiry_is_bounded(s3_store: S3BlobStore) -> None:
    with pytest.raises(BadRequest):
        s3_store.presigned_url(sha(b"x"), expires_seconds=0)
    with pytest.raises(BadRequest):
        s3_store.presigned_url(sha(b"x"), expires_seconds=8 * 24 * 3600)


def test_content_disposition_is_safe() -> None:
    value = content_disposition('../dir/ré"sumé\r\nX-Evil: 1.bin')
    assert value == (
        "attachment; filename=\"r_sum_X-Evil: 1.bin\"; "
        "filename*=UTF-8''r%C3%A9sum%C3%A9X-Evil%3A%201.bin"
    )
    assert content_disposition("/") == 'attachment; filename="download"; filename*=UTF-8\'\'download'


# -- factory ----------------------------------------------------------------------


def test_open_blob_store_urls(tmp_path: Path, aws_credentials: None) -> None:
    # Builds real clients from the environment (no request is made).
    local = open_blob_store((tmp_path / "a b").as_uri())
    assert isinstance(local, LocalBlobStore)
    assert local.root == tmp_path / "a b"
    s3 = open_blob_store("s3://bucket/models/prod/", s3_endpoint_url="http://127.0.0.1:1")
    assert isinstance(s3, S3BlobStore)
    assert (s3.bucket, s3.prefix) == ("bucket", "models/prod/")
    assert s3.describe() == "s3://bucket/models/prod/ at http://127.0.0.1:1"
    assert s3.client.meta.config.s3["addressing_style"] == "path"
    bare = open_blob_store("s3://bucket")
    assert isinstance(bare, S3BlobStore) and bare.prefix == ""


@pytest.mark.parametrize(
    "url",
    ["relative/dir", "/abs/without/scheme", "file://host/dir", "file:relative", "http://x/y",
     "s3://", "s3:///prefix", "s3://bucket/../escape", "s3://bucket/a//b", "gs://bucket",
     "file:///tmp/x?y=1"],
)
def test_open_blob_store_rejects(url: str) -> None:
    with pytest.raises(ValueError, match=r"blob store URL|S3"):
        open_blob_store(url)
