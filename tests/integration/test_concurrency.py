"""Version numbers stay unique and gapless under concurrent registrations from many processes."""

from __future__ import annotations

import hashlib
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import create_pg_database, drop_pg_database
from tests.integration.servers import ServerProcess

THREADS = 32
TOTAL = 2000


def _hammer(urls: list[str], model: str, total: int) -> list[int]:
    data = b"shared weights"
    digest = hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=urls[0], timeout=60) as c:
        assert c.put(f"/api/v1/blobs/{digest}", content=data).status_code in (200, 201)
        assert c.post("/api/v1/models", json={"name": model}).status_code == 201
    counter = itertools.count()
    errors: list[str] = []
    numbers: list[int] = []
    lock = threading.Lock()
    local = threading.local()

    def one(i: int) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=urls[next(counter) % len(urls)], timeout=60)
        body = {"files": [{"path": "model.bin", "sha256": digest, "size": len(data)}],
                "metadata": {"metrics": {"auc": 0.5 + i / (4 * total)}},
                "tags": {"run": str(i), "team": "risk", "kind": "load"}}
        r = local.client.post(f"/api/v1/models/{model}/versions", json=body)
        with lock:
            if r.status_code != 201:
                errors.append(f"{r.status_code} {r.text[:200]}")
            else:
                numbers.append(r.json()["version"])

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(total)))
    assert errors == []
    return numbers


def _listed_numbers(url: str, model: str) -> list[int]:
    out: list[int] = []
    cursor = None
    with httpx.Client(base_url=url, timeout=60) as c:
        while True:
            params: dict[str, str | int] = {"page_size": 500, "order_by": "number ASC"}
            if cursor:
                params["cursor"] = cursor
            page = c.get(f"/api/v1/models/{model}/versions", params=params).json()
            out += [v["version"] for v in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                return out


@pytest.mark.slow
@pytest.mark.postgres
def test_four_processes_on_postgresql(pg_url, tmp_path):
    url = create_pg_database("regista_conc")
    servers: list[ServerProcess] = []
    try:
        env = {"REGISTA_DATABASE_URL": url, "REGISTA_DATA_DIR": str(tmp_path / "data"),
               "REGISTA_BLOB_URL": (tmp_path / "blobs").as_uri()}
        # The first one migrates; all four share one database and one blob directory.
        for _ in range(4):
            servers.append(ServerProcess(env).start())
        numbers = _hammer([s.url for s in servers], "Conc-Model", TOTAL)
        assert sorted(numbers) == list(range(1, TOTAL + 1))
        assert _listed_numbers(servers[1].url, "conc-model") == list(range(1, TOTAL + 1))
    finally:
        for s in servers:
            s.stop()
        drop_pg_database(url)


@pytest.mark.slow
def test_one_process_on_sqlite(tmp_path):
    server = ServerProcess({"REGISTA_DATA_DIR": str(tmp_path / "data")}).start()
    try:
        numbers = _hammer([server.url], "conc", TOTAL)
        assert sorted(numbers) == list(range(1, TOTAL + 1))
        assert _listed_numbers(server.url, "conc") == list(range(1, TOTAL + 1))
    finally:
        server.stop()
