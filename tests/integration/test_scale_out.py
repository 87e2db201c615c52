"""The at-scale configuration: several processes on PostgreSQL and an S3-compatible bucket."""

from __future__ import annotations

import hashlib

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import create_pg_database, drop_pg_database, free_port
from tests.integration.servers import ServerProcess

CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
         "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.mark.slow
@pytest.mark.postgres
def test_two_processes_postgresql_and_s3(pg_url, tmp_path, monkeypatch):
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    url = create_pg_database("regista_s3")
    servers: list[ServerProcess] = []
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="models")
        env = {**CREDS, "REGISTA_DATABASE_URL": url, "REGISTA_BLOB_URL": "s3://models/regista",
               "REGISTA_S3_ENDPOINT_URL": endpoint, "REGISTA_DATA_DIR": str(tmp_path / "d")}
        servers = [ServerProcess(env).start(), ServerProcess(env).start()]
        a, b = (httpx.Client(base_url=s.url, timeout=60) for s in servers)
        data = b"weights on s3" * 1000
        d = hashlib.sha256(data).hexdigest()
        assert a.put(f"/api/v1/blobs/{d}", content=data).status_code == 201
        r = a.post("/api/v1/models/m/versions", json={
            "create_model": True, "files": [{"path": "model.bin", "sha256": d,
                                             "size": len(data)}]})
        assert r.status_code == 201, r.text
        # The other process sees the version and streams the bytes from the bucket.
        r = b.get("/api/v1/models/m/versions/1/files/model.bin")
        assert r.status_code == 200 and r.content == data
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="models")["Contents"]]
        assert f"regista/sha256/{d}" in keys
        a.close()
        b.close()
    finally:
        for s in servers:
            s.stop()
        drop_pg_database(url)
        moto.stop()
