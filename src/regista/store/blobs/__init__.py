"""Content-addressed blob storage: a local directory or an S3-compatible bucket.

Pick a backend with :func:`open_blob_store` from the ``REGISTA_BLOB_URL`` setting;
everything else talks to the :class:`BlobStore` interface. See ``docs/blob-storage.md``.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import TYPE_CHECKING, Any

from .base import CHUNK_SIZE, EMPTY_SHA256, BlobStore, is_digest, validate_digest
from .local import LocalBlobStore

if TYPE_CHECKING:
    from .s3 import MIN_PART_SIZE, S3BlobStore, make_s3_client

# The S3 backend imports boto3 (~10 MiB resident, ~70 ms): only when it is used.
_S3_NAMES = frozenset({"MIN_PART_SIZE", "S3BlobStore", "make_s3_client"})


def __getattr__(name: str) -> Any:
    if name in _S3_NAMES:
        from . import s3

        return getattr(s3, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "CHUNK_SIZE",
    "EMPTY_SHA256",
    "MIN_PART_SIZE",
    "BlobStore",
    "LocalBlobStore",
    "S3BlobStore",
    "is_digest",
    "make_s3_client",
    "open_blob_store",
    "validate_digest",
]


def open_blob_store(
    url: str, *, s3_endpoint_url: str | None = None, s3_region: str = "us-east-1"
) -> BlobStore:
    """The blob store named by ``url``.

    - ``file:///abs/dir`` → :class:`LocalBlobStore` in that directory (created if
      missing); the path must be absolute and percent-encoding is decoded.
    - ``s3://bucket`` or ``s3://bucket/key/prefix`` → :class:`S3BlobStore`, with
      ``s3_endpoint_url`` for S3-compatible services and credentials from boto3's
      usual chain.

    Anything else raises ValueError with a message meant for whoever wrote the
    configuration.
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.query or parsed.fragment:
        raise ValueError(f"blob store URL must not have a query or fragment: {url!r}")
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(
                f"file blob store URL must be file:///absolute/path (got host "
                f"{parsed.netloc!r}): {url!r}"
            )
        path = urllib.parse.unquote(parsed.path)
        if not path.startswith("/") or "\x00" in path:
            raise ValueError(f"file blob store URL needs an absolute path: {url!r}")
        return LocalBlobStore(os.path.normpath(path))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"S3 blob store URL needs a bucket: s3://bucket/prefix, got {url!r}")
        from .s3 import S3BlobStore

        return S3BlobStore(
            parsed.netloc,
            urllib.parse.unquote(parsed.path),
            endpoint_url=s3_endpoint_url,
            region=s3_region,
        )
    raise ValueError(
        f"unsupported blob store URL {url!r}: use file:///absolute/path or s3://bucket/prefix"
    )
