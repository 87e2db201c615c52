"""Kill -9 in the middle of a large upload: nothing half-written becomes visible."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.servers import ServerProcess

SIZE = 256 * 1024 * 1024
CHUNK = 1024 * 1024


def _pattern(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest() * (CHUNK // 32)


def _digest() -> str:
    h = hashlib.sha256()
    for i in range(SIZE // CHUNK):
        h.update(_pattern(i))
    return h.hexdigest()


@pytest.mark.slow
def test_kill9_during_256mib_upload(tmp_path):
    data_dir = tmp_path / "data"
    env = {"REGISTA_DATA_DIR": str(data_dir)}
    digest = _digest()
    server = ServerProcess(env).start()
    sent = {"bytes": 0}
    halfway = threading.Event()

    def body() -> Iterator[bytes]:
        for i in range(SIZE // CHUNK):
            sent["bytes"] += CHUNK
            if sent["bytes"] >= SIZE // 2:
                halfway.set()
                time.sleep(0.05)  # let the server take in what it has
            yield _pattern(i)

    outcome: dict[str, object] = {}

    def upload() -> None:
        try:
            with httpx.Client(timeout=60) as c:
                outcome["response"] = c.put(
                    f"{server.url}/api/v1/blobs/{digest}", content=body(),
                    headers={"content-length": str(SIZE)})
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    t = threading.Thread(target=upload)
    try:
        t.start()
        assert halfway.wait(60)
        server.kill9()
        t.join(60)
        assert "error" in outcome, outcome  # the upload never completed
    finally:
        server.stop()

    server = ServerProcess(env).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            status = c.post("/api/v1/blobs/check", json={"digests": [digest]}).json()[0]
            assert status["present"] is False
            assert c.get(f"/api/v1/blobs/{digest}").status_code == 404
            assert c.get("/api/v1/versions").json()["items"] == []
            # No blob file under the content-addressed tree, whatever staging holds.
            assert not any(p.name == digest for p in (data_dir / "blobs").rglob("*"))
            # The registry works: the next registration goes through and is version 1.
            small = b"after the crash"
            d = hashlib.sha256(small).hexdigest()
            assert c.put(f"/api/v1/blobs/{d}", content=small).status_code == 201
            r = c.post("/api/v1/models/m/versions", json={
                "create_model": True,
                "files": [{"path": "model.bin", "sha256": d, "size": len(small)}]})
            assert r.status_code == 201, r.text
            assert r.json()["version"] == 1
    finally:
        server.stop()
