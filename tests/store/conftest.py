"""Fixtures for storage tests: an S3 API served by moto over real HTTP.

``moto_s3_endpoint`` starts moto's server once per session in a thread on
127.0.0.1 (free port chosen by the OS) and stops it at the end. ``s3_blob_url``
gives each test its own key prefix in one shared bucket, with dummy credentials in
the environment, so ``open_blob_store(s3_blob_url, s3_endpoint_url=moto_s3_endpoint)``
is all a test needs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import boto3
import botocore.exceptions
import pytest

S3_TEST_BUCKET = "regista-test"


@pytest.fixture(scope="session")
def moto_s3_endpoint() -> Iterator[str]:
    """URL of a moto server (S3 and the other AWS APIs) for this test session."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO; keep test output readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials in the environment, and no real AWS configuration read."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def s3_bucket(moto_s3_endpoint: str, aws_credentials: None) -> str:
    """The shared test bucket, created if missing (another test may have reset moto)."""
    client = boto3.session.Session().client(
        "s3", endpoint_url=moto_s3_endpoint, region_name="us-east-1"
    )
    try:
        client.create_bucket(Bucket=S3_TEST_BUCKET)
    except botocore.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    finally:
        client.close()
    return S3_TEST_BUCKET


@pytest.fixture
def s3_blob_url(s3_bucket: str) -> str:
    """``s3://bucket/<unique prefix>``: a fresh, empty blob store location per test."""
    return f"s3://{s3_bucket}/t-{uuid.uuid4().hex[:12]}"
