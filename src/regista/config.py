"""One typed settings table. Every field reads ``REGISTA_<NAME>`` from the environment.

``docs/configuration.md`` is generated from this table and a test keeps the two equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server settings. Defaults give the embedded mode: SQLite + local blobs in ``data_dir``."""

    model_config = SettingsConfigDict(env_prefix="REGISTA_", extra="ignore")

    data_dir: Path = Field(
        default=Path("./regista-data"),
        description="Directory for the embedded SQLite database and local blob store.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database "
        "(e.g. postgresql+psycopg://user@host/db). Default: SQLite at DATA_DIR/regista.db.",
    )
    blob_url: str | None = Field(
        default=None,
        description="Where blobs live: file:///abs/path or s3://bucket/prefix. "
        "Default: DATA_DIR/blobs.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="Endpoint of an S3-compatible service (MinIO, Ceph, moto)."
    )
    s3_region: str = Field(default="us-east-1", description="Region for the S3 client.")
    host: str = Field(default="127.0.0.1", description="Address `regista serve` binds to.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port `regista serve` binds to.")
    workers: int = Field(default=1, ge=1, le=64, description="Server processes for `serve`.")
    max_request_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Largest JSON request body accepted, in bytes (uploads excluded).",
    )
    max_upload_bytes: int = Field(
        default=64 * 1024**3,
        ge=1,
        description="Largest single file (blob) accepted, in bytes.",
    )
    max_json_depth: int = Field(
        default=32, ge=2, le=512, description="Deepest nesting accepted in a JSON body."
    )
    upload_expiry_seconds: int = Field(
        default=24 * 3600,
        ge=60,
        description="An unfinished resumable upload older than this is removed by hygiene.",
    )
    required_metadata: list[str] = Field(
        default_factory=list,
        description="Provenance fields required at registration when no policy says otherwise "
        "(dotted paths, e.g. training_code.commit). JSON list in the environment.",
    )
    page_size_default: int = Field(default=50, ge=1, le=1000, description="Default page size.")
    page_size_max: int = Field(default=500, ge=1, le=10000, description="Largest page size.")
    secret_key: str | None = Field(
        default=None,
        description="Key signing cursors and web sessions. Default: generated once and kept "
        "in DATA_DIR/secret.key (set it explicitly when running several processes).",
    )
    auth_mode: str = Field(
        default="auto",
        description="auto (local single-user mode until the first user exists, then tokens), "
        "tokens (always require a token), or local (no authentication; development only).",
    )
    trusted_proxy_header: str | None = Field(
        default=None,
        description="If set, trust this request header (e.g. X-Forwarded-User) as the "
        "authenticated user name, for single sign-on behind a reverse proxy.",
    )
    trusted_proxy_ips: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="Peers allowed to set TRUSTED_PROXY_HEADER.",
    )
    token_max_lifetime_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="Longest lifetime of an API token, in days (every token expires; "
        "this is also the default lifetime).",
    )
    policy_file: Path | None = Field(
        default=None,
        description="A policy YAML applied at start-up when it differs from the current policy.",
    )
    log_level: str = Field(default="info", description="Log level of the server.")
    inline_calls: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="Where short blocking endpoints (registration, version and alias "
        "reads) run: on the event loop thread (always), in the thread pool (never), or on "
        "the loop with the embedded SQLite database and one worker, else in the pool "
        "(auto). See docs/decisions.md.",
    )

    def runs_inline(self) -> bool:
        """Whether short blocking endpoints run on the event loop (``inline_calls``)."""
        if self.inline_calls == "auto":
            return self.workers == 1 and self.resolved_database_url().startswith("sqlite")
        return self.inline_calls == "always"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'regista.db').resolve()}"

    def resolved_blob_url(self) -> str:
        if self.blob_url:
            return self.blob_url
        return (self.data_dir / "blobs").resolve().as_uri()

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")
