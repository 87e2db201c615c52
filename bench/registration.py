"""Registration throughput and latency (issue 2, scenarios 1 and 2).

Sequential: one client registers versions of one model whose file the registry already
holds (uploaded once), each with provenance metadata (metrics, parameters) and three
tags: the work MLflow was measured doing. Measured with one reused keep-alive connection
and with a new connection per request.

Concurrent: 32 threads, each with its own httpx.Client, register into one model at once;
SQLite with one server process, PostgreSQL with four. Afterwards the model's versions
must be exactly 1..N and no request may have failed.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    BARE_UVICORN,
    Context,
    LatencyStats,
    Row,
    Scenario,
    Server,
    Table,
    count,
    create_model,
    create_pg_database,
    drop_pg_database,
    expect,
    fresh_connection_client,
    keepalive_client,
    lean_client,
    log,
    med,
    ms,
    per_s,
    ratio,
    registration_body,
    upload_blob,
)

REUSED = "reused connection"
LEAN = "reused connection, lean client"
FRESH = "new connection per request"
# The targets are judged on httpx (what the Python client uses); the lean client
# (http.client) shows how much of a latency is the harness's own CPU.
MODES: dict[str, Callable[[str], Any]] = {
    REUSED: keepalive_client,
    LEAN: lean_client,
    FRESH: fresh_connection_client,
}


def _register_path(model: str) -> str:
    return f"/api/v1/models/{model}/versions"


def _sequential_run(server: Server, client: Any, model: str, n: int, digest: str,
                    size: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    bodies = [registration_body(i, digest, size, rng) for i in range(n)]
    path = _register_path(model)
    latencies: list[int] = []
    cpu0 = server.cpu_seconds()
    t_start = time.perf_counter_ns()
    for i, body in enumerate(bodies):
        t0 = time.perf_counter_ns()
        r = client.post(path, json=body)
        latencies.append(time.perf_counter_ns() - t0)
        if r.status_code != 201 or r.json()["version"] != i + 1:
            raise RuntimeError(f"registration {i + 1} → {r.status_code}: {r.text[:300]}")
    wall = (time.perf_counter_ns() - t_start) / 1e9
    cpu = server.cpu_seconds() - cpu0
    st = LatencyStats.of(latencies)
    return {"throughput": n / wall, "p50": st.p50, "p95": st.p95, "p99": st.p99,
            "server_cpu_ms": cpu / n * 1000}


def _health_floor(client: httpx.Client, n: int) -> float:
    lat = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        expect(client.get("/api/v1/health"), 200)
        lat.append(time.perf_counter_ns() - t0)
    return LatencyStats.of(lat).p50


def sequential(ctx: Context) -> Scenario:
    sc = Scenario("registration-sequential", "Sequential registrations (SQLite, 1 process)", 2)
    n_keep = ctx.size(2000, 200)
    n_fresh = ctx.size(500, 100)
    sc.method = (
        f"`regista serve` (SQLite, 1 worker). One model; its file (1 KiB) uploaded once. Each "
        f"registration POSTs `/api/v1/models/{{name}}/versions` with that file, provenance "
        f"(training data, code, 4 parameters, 3 metrics, framework) and three tags. "
        f"{n_keep} registrations over one reused connection (httpx, as the Python client; "
        f"then again with a lean `http.client` client, to show the harness's share of the "
        f"latency) and {n_fresh} with a new TCP connection per request, per repeat (fresh "
        f"model each time, numbers checked 1..N); "
        f"{ctx.repeat} repeats, medians reported. Latency is client-side, request to parsed "
        f"response. 'Server CPU' is user+system CPU of the server process per registration."
    )
    data = ctx.tmpdir("reg-seq")
    results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    floors: list[float] = []
    with Server(data / "data") as server:
        with keepalive_client(server.url) as c:
            digest, size = upload_blob(c, b"\x00model-bytes" * 93)
            create_model(c, "warmup")
            _sequential_run(server, c, "warmup", 50, digest, size, 0)
        for rep in range(ctx.repeat):
            for mode, make in MODES.items():
                n = n_fresh if mode == FRESH else n_keep
                model = f"seq-{rep}-{list(MODES).index(mode)}"
                with keepalive_client(server.url) as c:
                    create_model(c, model)
                with make(server.url) as c:
                    results[mode].append(_sequential_run(server, c, model, n, digest, size,
                                                         rep))
                log(f"sequential {mode} rep {rep}: {results[mode][-1]['throughput']:.0f}/s "
                    f"p99 {results[mode][-1]['p99']:.2f} ms")
            with keepalive_client(server.url) as c:
                floors.append(_health_floor(c, ctx.size(300, 50)))
    for mode in MODES:
        rs = results[mode]
        gated = mode == REUSED
        sc.add(f"Throughput, {mode}", [r["throughput"] for r in rs], per_s,
               target="≥ 1,000/s" if gated else "", ok=(lambda v: v >= 1000) if gated else None)
        sc.add(f"p50, {mode}", [r["p50"] for r in rs], ms)
        sc.add(f"p95, {mode}", [r["p95"] for r in rs], ms)
        sc.add(f"p99, {mode}", [r["p99"] for r in rs], ms,
               target="< 5 ms" if gated else "", ok=(lambda v: v < 5) if gated else None)
        sc.add(f"Server CPU per registration, {mode}", [r["server_cpu_ms"] for r in rs], ms)
    keep = med([r["throughput"] for r in results[REUSED]])
    fresh = med([r["throughput"] for r in results[FRESH]])
    sc.add("Ratio reused / new-connection throughput (same run)", keep / fresh, ratio)
    sc.add("HTTP floor: GET /api/v1/health p50, reused connection", floors, ms)
    sc.notes.append("MLflow 3.17 on this machine (issue 2): ~89 registrations/s, p50 11 ms; "
                    "18/s over reused connections (the 40 ms Nagle stall).")
    sc.notes.append(
        "Where a sequential registration's time goes, measured in the same run: the "
        "'ceiling' scenario (`--only ceiling`). Sequentially, every registration pays its "
        "own fsync; concurrent ones share it (group commit).")
    return sc


# --------------------------------------------------------------------------- ceiling


def _post_run(client: Any, path: str, bodies: list[dict[str, Any]],
              server: Server) -> dict[str, float]:
    latencies: list[int] = []
    cpu0 = server.cpu_seconds()
    t_start = time.perf_counter_ns()
    for body in bodies:
        t0 = time.perf_counter_ns()
        r = client.post(path, json=body)
        latencies.append(time.perf_counter_ns() - t0)
        if r.status_code != 200:
            raise RuntimeError(f"trivial app answered {r.status_code}")
    wall = (time.perf_counter_ns() - t_start) / 1e9
    st = LatencyStats.of(latencies)
    return {"throughput": len(bodies) / wall, "p50": st.p50,
            "server_cpu_ms": (server.cpu_seconds() - cpu0) / len(bodies) * 1000}


def _service_run(n: int, seed: int, tmp: Path) -> dict[str, float]:
    """Registrations straight into the service (no HTTP), as the server does them."""
    from regista.config import Settings
    from regista.server import prepare
    from regista.service.container import build_services
    from regista.service.registry import NewFile

    settings = Settings(data_dir=tmp, secret_key="bench-ceiling", auth_mode="local")
    prepare(settings)
    svc = build_services(settings)
    try:
        actor = svc.identity.local_actor()
        svc.registry.create_model(actor, "ceiling")
        data = b"\x00model-bytes" * 93
        digest = hashlib.sha256(data).hexdigest()
        svc.blobs.put(actor, digest, len(data), [data])
        rng = random.Random(seed)
        bodies = [registration_body(i, digest, len(data), rng) for i in range(n + 50)]

        def one(body: dict[str, Any]) -> None:
            files = [NewFile(path=f["path"], digest=f["sha256"], size=f["size"],
                             role=f["role"], media_type=f["media_type"])
                     for f in body["files"]]
            svc.registry.register_version(actor, "ceiling", files=files,
                                          metadata=body["metadata"], tags=body["tags"])

        for body in bodies[:50]:
            one(body)
        latencies: list[int] = []
        cpu0 = os.times()
        t_start = time.perf_counter_ns()
        for body in bodies[50:]:
            t0 = time.perf_counter_ns()
            one(body)
            latencies.append(time.perf_counter_ns() - t0)
        wall = (time.perf_counter_ns() - t_start) / 1e9
        cpu1 = os.times()
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        return {"throughput": n / wall, "p50": LatencyStats.of(latencies).p50,
                "cpu_ms": cpu / n * 1000}
    finally:
        svc.close()


def ceiling(ctx: Context) -> Scenario:
    """What the sequential target leaves for Regista on this machine, measured."""
    sc = Scenario("registration-ceiling", "Sequential registration: the machine's ceiling", 2)
    n = ctx.size(2000, 200)
    sc.method = (
        f"The sequential registration scenario's {n} requests (same bodies, same clients, "
        "one reused connection) sent to bare `uvicorn` serving a five-line ASGI app that "
        "answers without reading them (bench/trivial_app.py; uvloop and httptools, as "
        "`regista serve`): the throughput no Python server under uvicorn can pass with "
        "that client on this machine. Then the same registrations straight into Regista's "
        "service in this process (no HTTP, SQLite, durable commits): what the registry "
        f"itself costs. {ctx.repeat} repeats, medians reported."
    )
    data = ctx.tmpdir("reg-ceiling")
    rng = random.Random(7)
    bodies = [registration_body(i, "0" * 64, 1024, rng) for i in range(n)]
    runs: dict[str, list[dict[str, float]]] = {REUSED: [], LEAN: []}
    service: list[dict[str, float]] = []
    with Server(data / "bare", argv=BARE_UVICORN, name="bare-uvicorn") as server:
        for rep in range(ctx.repeat):
            for mode in (REUSED, LEAN):
                with MODES[mode](server.url) as c:
                    _post_run(c, "/x", bodies[:100], server)  # warm-up
                    runs[mode].append(_post_run(c, "/x", bodies, server))
                log(f"ceiling {mode} rep {rep}: {runs[mode][-1]['throughput']:.0f}/s")
    for rep in range(ctx.repeat):
        (data / f"service-{rep}").mkdir()
        service.append(_service_run(n, rep, data / f"service-{rep}"))
        log(f"ceiling service-only rep {rep}: {service[-1]['throughput']:.0f}/s")
    for mode in (REUSED, LEAN):
        rs = runs[mode]
        sc.add(f"Bare uvicorn, no work: throughput, {mode}", [r["throughput"] for r in rs],
               per_s)
        sc.add(f"Bare uvicorn, no work: p50, {mode}", [r["p50"] for r in rs], ms)
        sc.add(f"Bare uvicorn, no work: server CPU per request, {mode}",
               [r["server_cpu_ms"] for r in rs], ms)
    sc.add("Service only, no HTTP: registrations/s", [r["throughput"] for r in service], per_s)
    sc.add("Service only, no HTTP: p50", [r["p50"] for r in service], ms)
    sc.add("Service only, no HTTP: CPU per registration", [r["cpu_ms"] for r in service], ms)
    sc.notes.append(
        "Read with the sequential scenario: 1,000 registrations/s is 1 ms per request, "
        "client included. The first rows are that budget's floor with no work at all; the "
        "service rows are the registry's work (validation, SQL, the audit chain, a durable "
        "commit) without HTTP.")
    return sc


# --------------------------------------------------------------------------- concurrent


def _concurrent_run(server: Server, model: str, n_threads: int, per_thread: int,
                    digest: str, size: int, make: Callable[[str], Any],
                    seed: int) -> dict[str, Any]:
    barrier = threading.Barrier(n_threads + 1)
    latencies: list[list[int]] = [[] for _ in range(n_threads)]
    errors: list[str] = []
    numbers: list[list[int]] = [[] for _ in range(n_threads)]
    lock = threading.Lock()

    def worker(t: int) -> None:
        rng = random.Random(seed * 1000 + t)
        bodies = [registration_body(t * per_thread + i, digest, size, rng)
                  for i in range(per_thread)]
        path = _register_path(model)
        with make(server.url) as client:
            try:
                barrier.wait(timeout=60)
            except threading.BrokenBarrierError:
                return
            for body in bodies:
                t0 = time.perf_counter_ns()
                try:
                    r = client.post(path, json=body)
                    ok = r.status_code == 201
                    detail = f"{r.status_code}: {r.text[:200]}"
                except (httpx.HTTPError, OSError, http.client.HTTPException) as exc:
                    ok, detail, r = False, f"{type(exc).__name__}: {exc}", None
                latencies[t].append(time.perf_counter_ns() - t0)
                if ok and r is not None:
                    numbers[t].append(int(r.json()["version"]))
                else:
                    with lock:
                        errors.append(detail)

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(n_threads)]
    for th in threads:
        th.start()
    cpu0 = server.cpu_seconds()
    barrier.wait(timeout=60)
    t_start = time.perf_counter_ns()
    for th in threads:
        th.join(timeout=600)
    wall = (time.perf_counter_ns() - t_start) / 1e9
    cpu = server.cpu_seconds() - cpu0
    if any(th.is_alive() for th in threads):
        raise RuntimeError("concurrent registration threads did not finish in 600 s")
    total = n_threads * per_thread
    st = LatencyStats.of([x for lat in latencies for x in lat])
    got = sorted(x for ns in numbers for x in ns)
    listed = _listed_numbers(server.url, model)
    return {"throughput": total / wall, "p50": st.p50, "p95": st.p95, "p99": st.p99,
            "errors": len(errors), "first_errors": errors[:3],
            "gapless": got == list(range(1, total + 1)) and listed == got,
            "listed": len(listed), "server_cpu_ms": cpu / total * 1000}


def _listed_numbers(url: str, model: str) -> list[int]:
    """The model's version numbers as the API lists them (all pages)."""
    out: list[int] = []
    cursor = None
    with keepalive_client(url) as c:
        for _ in range(10_000):
            params: dict[str, Any] = {"order_by": "number asc", "page_size": 500}
            if cursor:
                params["cursor"] = cursor
            page = expect(c.get(f"/api/v1/models/{model}/versions", params=params), 200).json()
            out.extend(v["version"] for v in page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                break
    return out


def _concurrent_on(ctx: Context, sc: Scenario, label: str, workers: int,
                   database_url: str | None) -> None:
    n_threads = 32
    per_keep = ctx.size(64, 8)
    per_fresh = ctx.size(25, 4)
    data = ctx.tmpdir(f"reg-conc-{label.split()[0].lower()}")
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    with Server(data / "data", workers=workers, database_url=database_url) as server:
        with keepalive_client(server.url) as c:
            digest, size = upload_blob(c, b"\x00model-bytes" * 93)
            create_model(c, "warmup")
        # Warm every worker process and its connection pool.
        _concurrent_run(server, "warmup", n_threads, 2, digest, size, keepalive_client, 0)
        for rep in range(ctx.repeat):
            for mode, make in MODES.items():
                per = per_fresh if mode == FRESH else per_keep
                model = f"conc-{rep}-{list(MODES).index(mode)}"
                with keepalive_client(server.url) as c:
                    create_model(c, model)
                res = _concurrent_run(server, model, n_threads, per, digest, size, make, rep + 1)
                results[mode].append(res)
                log(f"concurrent {label} {mode} rep {rep}: {res['throughput']:.0f}/s "
                    f"p99 {res['p99']:.1f} ms errors {res['errors']} gapless {res['gapless']}")
    rows = []
    for mode in MODES:
        rs = results[mode]
        gated = mode == REUSED
        total = n_threads * (per_fresh if mode == FRESH else per_keep)
        errs = sum(r["errors"] for r in rs)
        gapless = all(r["gapless"] for r in rs)
        if mode != FRESH:
            sc.add(f"{label}: throughput ({mode})", [r["throughput"] for r in rs], per_s,
                   target="≥ 1,000/s" if gated else "", ok=(lambda v: v >= 1000) if gated else None)
            sc.add(f"{label}: p99 ({mode})", [r["p99"] for r in rs], ms,
                   target="< 100 ms" if gated else "", ok=(lambda v: v < 100) if gated else None)
        sc.add(f"{label}: errors ({mode}, all repeats)", errs, count, target="0",
               ok=lambda v: v == 0)
        sc.rows.append(Row(f"{label}: versions exactly 1..N ({mode}, every repeat)",
                           "yes" if gapless else "NO", "yes", "PASS" if gapless else "MISS"))
        rows.append([mode, str(total), per_s(med([r["throughput"] for r in rs])),
                     ms(med([r["p50"] for r in rs])), ms(med([r["p95"] for r in rs])),
                     ms(med([r["p99"] for r in rs])), str(errs), "yes" if gapless else "NO",
                     ms(med([r["server_cpu_ms"] for r in rs]))])
        for r in rs:
            for e in r["first_errors"]:
                sc.notes.append(f"{label}, {mode}: error {e}")
    keep = med([r["throughput"] for r in results[REUSED]])
    fresh = med([r["throughput"] for r in results[FRESH]])
    sc.tables.append(Table(f"{label} (medians over {ctx.repeat} repeats; reused / new-connection "
                           f"throughput ratio {keep / fresh:.2f})",
                           ["Connections", "Registrations per repeat", "Throughput", "p50", "p95",
                            "p99", "Errors", "Versions 1..N", "Server CPU / registration"],
                           rows))


def concurrent(ctx: Context) -> Scenario:
    sc = Scenario("registration-concurrent", "32 concurrent clients registering into one model", 2)
    sc.method = (
        "32 threads in the harness process, each with its own httpx.Client (again with a lean "
        "`http.client` connection each, informational), start together "
        "(barrier) and register versions of one model (same payload as the sequential "
        "scenario). SQLite: `regista serve --workers 1`. PostgreSQL: `regista serve "
        "--workers 4` on a database created for the run (CREATE DATABASE) and dropped "
        "after. After each run the model's versions are listed through the API (keyset "
        "pages of 500) and must be exactly 1..N, matching the numbers the clients got. "
        f"{ctx.repeat} repeats per mode, medians reported. Note: the 32 client threads share "
        "the 2 cores (and one GIL) with the server processes."
    )
    try:
        _concurrent_on(ctx, sc, "SQLite, 1 process", 1, None)
    except Exception as exc:
        sc.failed_part("SQLite, 1 process", exc)
    if ctx.pg_available:
        url = create_pg_database()
        try:
            _concurrent_on(ctx, sc, "PostgreSQL, 4 processes", 4, url)
        except Exception as exc:
            sc.failed_part("PostgreSQL, 4 processes", exc)
        finally:
            drop_pg_database(url)
    else:
        sc.notes.append("PostgreSQL not available: the PostgreSQL half was not run.")
    return sc
