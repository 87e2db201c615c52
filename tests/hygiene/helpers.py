"""Test setup for hygiene: blobs and uploads made through the services, then aged in place.

Ageing rows (``created_at``/``verified_at`` moved into the past) is direct database
surgery: the only way to make "older than the grace period" happen without waiting.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from regista.domain.models import Actor
from regista.service.container import Services
from regista.store.blobs.local import LocalBlobStore
from regista.store.sql.tables import audit_events, blobs, uploads

LOCAL = Actor(name="local", local_mode=True)
DAY = timedelta(days=1)


def put_blob(services: Services, data: bytes) -> str:
    """Store a blob the way an upload does (bytes, then its row); return its digest."""
    digest = hashlib.sha256(data).hexdigest()
    services.blobs.put(LOCAL, digest, len(data), [data])
    return digest


def age_blob(services: Services, digest: str, by: timedelta) -> None:
    with services.db.engine.begin() as conn:
        conn.execute(sa.update(blobs).where(blobs.c.digest == digest)
                     .values(created_at=datetime.now(UTC) - by))


def set_verified_at(services: Services, digest: str, at: datetime | None) -> None:
    with services.db.engine.begin() as conn:
        conn.execute(sa.update(blobs).where(blobs.c.digest == digest).values(verified_at=at))


def age_upload(services: Services, upload_id: str, by: timedelta) -> None:
    with services.db.engine.begin() as conn:
        conn.execute(sa.update(uploads).where(uploads.c.id == upload_id)
                     .values(created_at=datetime.now(UTC) - by))


def blob_row(services: Services, digest: str) -> Any:
    with services.db.engine.connect() as conn:
        return conn.execute(sa.select(blobs).where(blobs.c.digest == digest)).first()


def upload_row(services: Services, upload_id: str) -> Any:
    with services.db.engine.connect() as conn:
        return conn.execute(sa.select(uploads).where(uploads.c.id == upload_id)).first()


def events(services: Services, action: str) -> list[Any]:
    with services.db.engine.connect() as conn:
        return list(conn.execute(sa.select(audit_events).where(audit_events.c.action == action)
                                 .order_by(audit_events.c.seq)))


def local_store(services: Services) -> LocalBlobStore:
    store = services.blob_store
    assert isinstance(store, LocalBlobStore)
    return store


def blob_path(services: Services, digest: str) -> Path:
    """Where the local store keeps a blob: ``sha256/ab/cd/abcd…`` (see store/blobs/local.py)."""
    return local_store(services).root / "sha256" / digest[:2] / digest[2:4] / digest


def corrupt(services: Services, digest: str, data: bytes = b"rotten bits") -> None:
    """Overwrite a stored blob in place (blobs are 0o444: make it writable first)."""
    path = blob_path(services, digest)
    os.chmod(path, 0o644)
    path.write_bytes(data)
    os.chmod(path, 0o444)


def make_old(path: Path, by: timedelta) -> None:
    """Move a file's modification time into the past (store-side idleness)."""
    when = (datetime.now(UTC) - by).timestamp()
    os.utime(path, (when, when))


def register(services: Services, model: str, *blobs_data: bytes, aliases: tuple[str, ...] = ()) -> Any:
    """Register a version of ``model`` (created if needed) whose files hold ``blobs_data``."""
    from regista.service.registry import NewFile

    files = []
    for i, data in enumerate(blobs_data):
        files.append(NewFile(path=f"file{i}.bin", digest=put_blob(services, data), size=len(data),
                             role="model" if i == 0 else "other"))
    version, _ = services.registry.register_version(LOCAL, model, files=files, aliases=aliases,
                                                    create_model=True)
    return version
