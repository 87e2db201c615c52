"""Wire the services together from settings: one object the API, web UI and CLI share."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regista.config import Settings
from regista.service.audit import AuditService
from regista.service.blobs import BlobService
from regista.service.deployments import DeploymentService
from regista.service.hygiene import HygieneService
from regista.service.identity import IdentityService
from regista.service.lifecycle import LifecycleService
from regista.service.policy import PolicyService
from regista.service.registry import RegistryService
from regista.store.blobs import open_blob_store
from regista.store.blobs.base import BlobStore
from regista.store.sql.engine import Database


def load_secret(settings: Settings) -> bytes:
    """The key that signs cursors and sessions; generated once into the data directory."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = Path(settings.data_dir) / "secret.key"
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
    finally:
        os.close(fd)
    return key


@dataclass
class Services:
    settings: Settings
    db: Database
    blob_store: BlobStore
    secret: bytes
    registry: RegistryService
    blobs: BlobService
    identity: IdentityService
    policy: PolicyService
    lifecycle: LifecycleService
    audit: AuditService
    deployments: DeploymentService
    hygiene: HygieneService
    extra: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.db.dispose()


def build_services(settings: Settings, *, db: Database | None = None) -> Services:
    """Build every service for ``settings`` (the schema must already be migrated)."""
    from regista.service.governance_wiring import wire_governance

    db = db or Database(settings.resolved_database_url())
    store = open_blob_store(
        settings.resolved_blob_url(),
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
    )
    secret = load_secret(settings)
    authz, hooks, policy = wire_governance(settings, db, secret)
    registry = RegistryService(db, authz, hooks, secret=secret,
                               page_default=settings.page_size_default,
                               page_max=settings.page_size_max)
    blobs = BlobService(db, store, authz, settings)
    identity = IdentityService(db, authz, settings)
    if settings.policy_file is not None:
        policy.apply_startup_file(settings.policy_file)
    lifecycle = LifecycleService(db, authz, policy, registry, store,
                                 page_default=settings.page_size_default,
                                 page_max=settings.page_size_max)
    audit = AuditService(db, authz, page_default=settings.page_size_default,
                         page_max=settings.page_size_max)
    deployments = DeploymentService(db, authz, registry, policy,
                                    page_default=settings.page_size_default,
                                    page_max=settings.page_size_max)
    services = Services(settings=settings, db=db, blob_store=store, secret=secret,
                        registry=registry, blobs=blobs, identity=identity,
                        policy=policy, lifecycle=lifecycle, audit=audit,
                        deployments=deployments,
                        hygiene=HygieneService(db, authz, store, settings, policy))
    return services
