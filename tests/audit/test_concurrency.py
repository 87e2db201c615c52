"""Four server processes on one PostgreSQL database, many concurrent writers: the audit chain
stays linear (gapless seq, every event linked to the one before) and verifies."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from regista.config import Settings
from regista.domain.models import Actor
from regista.service.container import build_services
from regista.store.sql import migrate
from regista.store.sql.engine import Database
from regista.store.sql.tables import alias_events, audit_events, versions
from tests.conftest import create_pg_database, drop_pg_database, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SERVERS = 4
WRITERS = 8
ROUNDS = 10  # per writer; each round is 5 requests (create, upload, register, alias, deploy)
SECRET = "concurrency-secret"


def _start_servers(url: str, data_dir: Path) -> list[tuple[subprocess.Popen[bytes], str]]:
    env = dict(os.environ, REGISTA_DATABASE_URL=url, REGISTA_DATA_DIR=str(data_dir),
               REGISTA_SECRET_KEY=SECRET, REGISTA_AUTH_MODE="local", REGISTA_LOG_LEVEL="warning")
    out = []
    for _ in range(SERVERS):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "regista.api.app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        out.append((proc, f"http://127.0.0.1:{port}"))
    deadline = time.monotonic() + 60
    for proc, base in out:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("servers did not start in time")
            time.sleep(0.1)
    return out


def _stop(servers: list[tuple[subprocess.Popen[bytes], str]]) -> None:
    for proc, _ in servers:
        if proc.poll() is None:
            proc.terminate()
    for proc, _ in servers:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()


def _writer(n: int, bases: list[str], errors: list[str]) -> None:
    clients = [httpx.Client(base_url=b, timeout=30) for b in bases]
    try:
        shared = "shared-model"
        for i in range(ROUNDS):
            c = clients[(n + i) % len(clients)]
            mine = f"w{n}-m{i}"
            r = c.post("/api/v1/models", json={"name": mine})
            if r.status_code != 201:
                errors.append(f"create {r.status_code} {r.text}")
            data = f"weights {n} {i}".encode()
            digest = hashlib.sha256(data).hexdigest()
            c = clients[(n + i + 1) % len(clients)]
            r = c.put(f"/api/v1/blobs/{digest}", content=data)
            if r.status_code not in (200, 201):
                errors.append(f"upload {r.status_code} {r.text}")
            # All writers register into one model too: version numbers must stay gapless.
            c = clients[(n + i + 2) % len(clients)]
            r = c.post(f"/api/v1/models/{shared}/versions", json={
                "files": [{"path": "model.bin", "sha256": digest, "size": len(data)}]})
            if r.status_code != 201:
                errors.append(f"register {r.status_code} {r.text}")
                continue
            number = r.json()["version"]
            c = clients[(n + i + 3) % len(clients)]
            r = c.put(f"/api/v1/models/{shared}/aliases/a{n % 3}", json={"version": number})
            if r.status_code not in (200, 201):
                errors.append(f"alias {r.status_code} {r.text}")
            c = clients[(n + i + 4) % len(clients)]
            r = c.post("/api/v1/deployments", json={"ref": f"{shared}/{number}",
                                                    "environment": "dev"})
            if r.status_code not in (200, 201):
                errors.append(f"deploy {r.status_code} {r.text}")
    except Exception as exc:  # a transport error must fail the test, not vanish in a thread
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        for c in clients:
            c.close()


def test_chain_stays_linear_across_processes(tmp_path: Path, pg_url: str) -> None:
    url = create_pg_database("regista_conc")
    servers: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        db = Database(url)
        migrate.upgrade(db)
        db.dispose()
        servers = _start_servers(url, tmp_path)
        bases = [b for _, b in servers]
        r = httpx.post(f"{bases[0]}/api/v1/environments",
                       json={"name": "dev", "min_stage": "registered"}, timeout=30)
        assert r.status_code == 201, r.text
        r = httpx.post(f"{bases[1]}/api/v1/models", json={"name": "shared-model"}, timeout=30)
        assert r.status_code == 201, r.text
        errors: list[str] = []
        threads = [threading.Thread(target=_writer, args=(n, bases, errors))
                   for n in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "writers did not finish"
        assert errors == [], errors[:5]

        services = build_services(Settings(database_url=url, data_dir=tmp_path,
                                           secret_key=SECRET, auth_mode="local"))
        try:
            result = services.audit.verify(Actor(name="local", local_mode=True))
            assert result.ok, result.first_bad
            with services.db.engine.connect() as conn:
                seqs = list(conn.execute(sa.select(audit_events.c.seq)
                                         .order_by(audit_events.c.seq)).scalars())
                numbers = sorted(conn.execute(sa.select(versions.c.number)).scalars())
                moves = conn.execute(sa.select(sa.func.count()).select_from(alias_events)).scalar()
            assert seqs == list(range(1, len(seqs) + 1))
            assert result.events == len(seqs) == result.head_seq
            assert numbers == list(range(1, WRITERS * ROUNDS + 1))
            # One event per change: models, registrations, alias moves, deployments, the env.
            assert len(seqs) >= WRITERS * ROUNDS * 3 + 1 + (moves or 0)
        finally:
            services.close()
    finally:
        _stop(servers)
        drop_pg_database(url)
