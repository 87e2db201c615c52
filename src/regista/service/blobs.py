"""Blob uploads and downloads: content-addressed, verified, resumable.

A blob becomes known to the registry (a row in ``blobs``) only after the store has
verified and atomically placed its bytes. Blobs are invisible until a version's manifest
names them, so an interrupted upload leaves nothing a user can see.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import OperationalError

from regista.config import Settings
from regista.domain.models import Actor, BlobStatus, Upload
from regista.domain.names import validate_digest
from regista.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, RegistryError
from regista.service.access import Authorizer, Permission
from regista.service.clock import utcnow
from regista.store.blobs.base import BlobStore
from regista.store.sql import registry as q
from regista.store.sql.engine import Database
from regista.store.sql.tables import uploads

MAX_CHECK = 10_000


class BlobService:
    def __init__(self, db: Database, store: BlobStore, authz: Authorizer,
                 settings: Settings) -> None:
        self.db = db
        self.store = store
        self.authz = authz
        self.settings = settings
        self._upload_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def check_size(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise BadRequest("size must be a non-negative integer", details={"field": "size"})
        if size > self.settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"file of {size} bytes exceeds the limit of {self.settings.max_upload_bytes}",
                details={"limit": self.settings.max_upload_bytes},
            )

    def status(self, actor: Actor, digests: Sequence[str]) -> list[BlobStatus]:
        """Which of these blobs the registry already holds (so clients skip them)."""
        self.authz.require(actor, Permission.BLOB_UPLOAD)
        if len(digests) > MAX_CHECK:
            raise BadRequest(f"at most {MAX_CHECK} digests per check", details={"limit": MAX_CHECK})
        for d in digests:
            validate_digest(d)
        with self.db.read() as conn:
            known = q.known_blobs(conn, digests)
        return [BlobStatus(digest=d, size=known.get(d, 0), present=d in known) for d in digests]

    def stat(self, actor: Actor, digest: str) -> BlobStatus:
        """One blob's presence and size, for a download by digest.

        Reading bytes by digest bypasses model scoping, so it needs read access at
        registry scope (model-scoped readers download through a version's file path).
        """
        self.authz.require(actor, Permission.MODEL_READ)
        validate_digest(digest)
        with self.db.read() as conn:
            known = q.known_blobs(conn, [digest])
        if digest not in known:
            raise NotFound("blob not found", details={"digest": digest})
        return BlobStatus(digest=digest, size=known[digest], present=True)

    def put(self, actor: Actor, digest: str, size: int, chunks: Iterable[bytes]) -> bool:
        """Store one whole blob from a stream; True if it was new."""
        self.authz.require(actor, Permission.BLOB_UPLOAD)
        validate_digest(digest)
        self.check_size(size)
        created = self.store.put_stream(chunks, digest=digest, size=size)
        self._record(digest, size)
        return created

    def _record(self, digest: str, size: int) -> None:
        with self.db.read() as conn:
            if q.known_blobs(conn, [digest]):
                return
        with self.db.write() as conn:
            q.record_blob(conn, digest, size, utcnow())

    # ------------------------------------------------------------ resumable uploads

    def start_upload(self, actor: Actor, digest: str, size: int) -> Upload:
        self.authz.require(actor, Permission.BLOB_UPLOAD)
        validate_digest(digest)
        self.check_size(size)
        now = utcnow()
        with self.db.read() as conn:
            if q.known_blobs(conn, [digest]):
                return Upload(id="", digest=digest, size=size, offset=size, created_at=now)
        handle = self.store.upload_start()
        upload_id = secrets.token_urlsafe(24)
        with self.db.write() as conn:
            conn.execute(insert(uploads).values(id=upload_id, handle=handle, digest=digest,
                                                size=size, created_at=now,
                                                created_by=actor.name))
        return Upload(id=upload_id, digest=digest, size=size, offset=0, created_at=now)

    def _upload_row(self, upload_id: str) -> tuple[str, str, int, str]:
        if not isinstance(upload_id, str) or not 8 <= len(upload_id) <= 64:
            raise NotFound("upload not found", details={"upload_id": str(upload_id)[:64]})
        with self.db.read() as conn:
            row = conn.execute(select(uploads).where(uploads.c.id == upload_id)).first()
        if row is None:
            raise NotFound("upload not found (finished, aborted or expired)",
                           details={"upload_id": upload_id})
        return row.handle, row.digest, row.size, row.created_by

    def _lock(self, upload_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._upload_locks.setdefault(upload_id, threading.Lock())

    def upload_status(self, actor: Actor, upload_id: str) -> Upload:
        self.authz.require(actor, Permission.BLOB_UPLOAD)
        handle, digest, size, _ = self._upload_row(upload_id)
        offset = self.store.upload_offset(handle)
        return Upload(id=upload_id, digest=digest, size=size, offset=offset, created_at=utcnow())

    def append_upload(self, actor: Actor, upload_id: str, offset: int,
                      chunks: Iterable[bytes]) -> Upload:
        """Append bytes at ``offset`` (416 if it is not where the upload stands).

        When the last byte arrives, the blob is verified and moved into place.
        """
        self.authz.require(actor, Permission.BLOB_UPLOAD)
        handle, digest, size, owner = self._upload_row(upload_id)
        if owner != actor.name and not actor.local_mode:
            raise NotFound("upload not found", details={"upload_id": upload_id})
        lock = self._lock(upload_id)
        if not lock.acquire(blocking=False):
            raise Conflict("another request is appending to this upload",
                           details={"upload_id": upload_id})
        failed: RegistryError | None = None
        try:
            with self._row_lock(upload_id) as locked:
                new_offset = self.store.upload_append(handle, offset, chunks, max_size=size)
                if new_offset == size:
                    try:
                        self.store.upload_complete(handle, digest=digest, size=size)
                    except RegistryError as exc:
                        failed = exc
                    # Verified or not, the store has consumed the staged bytes.
                    forget = delete(uploads).where(uploads.c.id == upload_id)
                    if locked is not None:
                        locked.execute(forget)
                    else:
                        with self.db.write() as conn:
                            conn.execute(forget)
            if failed is not None:
                raise failed
            if new_offset == size:
                self._record(digest, size)
            return Upload(id=upload_id, digest=digest, size=size, offset=new_offset,
                          created_at=utcnow())
        finally:
            lock.release()
            with self._locks_guard:
                self._upload_locks.pop(upload_id, None)

    @contextmanager
    def _row_lock(self, upload_id: str) -> Iterator[Connection | None]:
        """On PostgreSQL, lock the upload row so appends from other processes wait their turn.

        (SQLite deployments are one machine: the in-process lock and the local store's
        ``flock`` already serialise appends.)
        """
        if not self.db.is_postgres:
            yield None
            return
        with self.db.engine.connect() as conn, conn.begin():
            q_lock = select(uploads.c.id).where(uploads.c.id == upload_id).with_for_update(nowait=True)
            try:
                conn.execute(q_lock)
            except OperationalError:
                raise Conflict("another request is appending to this upload",
                               details={"upload_id": upload_id}) from None
            yield conn

    def abort_upload(self, actor: Actor, upload_id: str) -> None:
        self.authz.require(actor, Permission.BLOB_UPLOAD)
        handle, _, _, _ = self._upload_row(upload_id)
        self.store.upload_abort(handle)
        with self.db.write() as conn:
            conn.execute(delete(uploads).where(uploads.c.id == upload_id))

    # ------------------------------------------------------------ downloads

    def open(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        validate_digest(digest)
        with self.db.read() as conn:
            if not q.known_blobs(conn, [digest]):
                raise NotFound("blob not found", details={"digest": digest})
        return self.store.open(digest, start, end)
