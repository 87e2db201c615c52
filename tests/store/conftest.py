"""Fixtures for storage tests: an S3 API served by moto over real HTTP.

``moto_s3_endpoint`` starts moto's server once per session in a thread on
127.0.0.1 (a free port chosen by the OS) and stops it at the end. ``s3_client`` is
one client for the session with dummy credentials passed explicitly (building a
client costs ~0.2 s, so tests share it). ``s3_bucket`` makes sure the test bucket
exists; ``s3_blob_url`` gives a test its own key prefix in it and puts dummy
credentials in the environment, so that
``open_blob_store(s3_blob_url, s3_endpoint_url=moto_s3_endpoint)`` just works.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest

from regista.store.blobs import make_s3_client

S3_TEST_BUCKET = "regista-test"


@pytest.fixture(scope="session")
def moto_s3_endpoint() -> Iterator[str]:
    """URL of a moto server (S3 and the other AWS APIs) for this test session."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO; keep failure output readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_client(moto_s3_endpoint: str) -> Iterator[Any]:
    """A blob-store-configured S3 client on the moto server, with dummy credentials."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    client = make_s3_client(endpoint_url=moto_s3_endpoint, session=session)
    yield client
    client.close()


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """The shared test bucket, created if missing (a ``mock_aws`` elsewhere resets moto)."""
    try:
        s3_client.create_bucket(Bucket=S3_TEST_BUCKET)
    except botocore.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    return S3_TEST_BUCKET


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
def s3_prefix() -> str:
    """A fresh key prefix, so tests sharing the bucket never see each other's keys."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_blob_url(s3_bucket: str, s3_prefix: str, aws_credentials: None) -> str:
    """``s3://bucket/<fresh prefix>``, with dummy credentials in the environment."""
    return f"s3://{s3_bucket}/{s3_prefix}"
