"""The audit log's cost (issue 3): verification rate, and what auditing costs a registration.

verify: a valid hash chain of 1,000,000 events is generated with the service's own
``canonical``/``chain_hash`` (so it verifies only if the verifier agrees byte for byte),
bulk-inserted with its head, and verified through ``POST /api/v1/audit/verify``.

cost: the same sequential registrations as the registration scenario against three
builds of the same server, started one after the other and interleaved per repeat:
``full`` (the product), ``no-audit`` (``audit.append`` replaced by a no-op) and ``core``
(no audit; authorisation checks pass without lookups; the governance hooks give the
no-policy answers). The variants exist only in the harness (bench/variant_server.py) to
measure the difference; they are never a configuration of the product. Cross-check: the
share of in-process service time spent inside ``audit.append`` and the authorizer/hooks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import random
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    SECRET,
    Context,
    Scenario,
    Server,
    Table,
    create_model,
    expect,
    keepalive_client,
    log,
    med,
    ms,
    pct,
    per_s,
    ratio,
    registration_body,
    secs,
    upload_blob,
)
from bench.gen import BASE_TIME, bulk_connection, insert_rows, migrated_sqlite, sqlite_ts

ACTIONS = ("version.register", "alias.set", "model.update", "deployment.record",
           "transition.request", "transition.approve")


def _verify_available() -> str | None:
    if importlib.util.find_spec("regista.api.routes.audit") is None:
        return "regista.api.routes.audit does not exist yet"
    from regista.service import audit as a

    for name in ("canonical", "chain_hash", "verify_chain"):
        if not hasattr(a, name):
            return f"regista.service.audit.{name} does not exist yet"
    return None


def generate_chain(path: Path, n: int, seed: int = 5) -> tuple[int, str, float]:
    """Write a valid chain of ``n`` events (and its head); returns (n, head hash, seconds)."""
    from regista.service.audit import GENESIS, canonical, chain_hash

    t0 = time.monotonic()
    rng = random.Random(seed)
    head = [GENESIS]

    def rows() -> Iterator[tuple[Any, ...]]:
        prev = GENESIS
        for seq in range(1, n + 1):
            at = BASE_TIME + timedelta(seconds=seq * 3, microseconds=rng.randrange(1_000_000))
            action = ACTIONS[seq % len(ACTIONS)]
            model = f"model-{seq % 1000:05d}"
            version = seq // 1000 + 1
            rid = f"{rng.getrandbits(64):016x}"
            before = {"version": version - 1} if action == "alias.set" else None
            after = {"digest": f"{rng.getrandbits(256):064x}", "files": 1, "size": 123456,
                     "tags": {"env": "prod", "team": f"team-{seq % 20}"}}
            target = "champion" if action == "alias.set" else None
            h = chain_hash(prev, canonical(seq, at, "svc-pipeline", action, "ok", model,
                                           version, target, rid, before, after))
            yield (seq, sqlite_ts(at), "svc-pipeline", action, "ok", model, version, target,
                   rid, None if before is None else orjson.dumps(before).decode(),
                   orjson.dumps(after).decode(), prev, h)
            prev = h
        head[0] = prev

    with bulk_connection(path, ["audit_events", "audit_head"]) as conn:
        insert_rows(conn, "audit_events",
                    ["seq", "at", "actor", "action", "outcome", "model", "version", "target",
                     "request_id", "before", "after", "prev_hash", "hash"], rows())
        conn.execute("DELETE FROM audit_head")
        conn.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)", (n, head[0]))
    return n, head[0], time.monotonic() - t0


def verify(ctx: Context) -> Scenario:
    sc = Scenario("audit-verify", "Audit chain verification", 3)
    why = _verify_available()
    if why is not None:
        sc.skipped = f"not available: {why}"
        return sc
    n = ctx.size(1_000_000, 50_000)
    sc.method = (
        f"A valid chain of {n:,} events generated with `regista.service.audit.canonical` and "
        "`chain_hash` (realistic payloads: digest, tags, request id; some with a 'before'), "
        "bulk-inserted into a migrated SQLite database with its head row, then verified "
        f"through `POST /api/v1/audit/verify` on `regista serve` (wall time of the request). "
        f"{ctx.repeat} repeats, median. Tampering detection is covered by the tests; here "
        "the chain is intact and must verify."
    )
    data = ctx.tmpdir("audit-verify") / "data"
    path = migrated_sqlite(data)
    n, head, gen_s = generate_chain(path, n)
    log(f"  generated a chain of {n:,} events in {gen_s:.1f} s")
    times: list[float] = []
    with Server(data) as server, keepalive_client(server.url) as c:
        for rep in range(ctx.repeat):
            t0 = time.perf_counter_ns()
            r = expect(c.post("/api/v1/audit/verify", json={}), 200)
            dt = (time.perf_counter_ns() - t0) / 1e9
            body = r.json()
            if not body.get("ok") or body.get("events") != n or body["head"]["hash"] != head:
                raise RuntimeError(f"the generated chain did not verify: {str(body)[:400]}")
            times.append(dt)
            log(f"verify rep {rep}: {n / dt:,.0f} events/s")
    sc.add(f"Verification rate ({n:,} events)", [n / t for t in times], per_s,
           target="≥ 200,000/s", ok=lambda v: v >= 200_000)
    sc.add(f"Time to verify {n:,} events", times, secs,
           target="< 5 s" if n >= 1_000_000 else "", ok=(lambda v: v < 5) if n >= 1_000_000 else None)
    sc.notes.append(f"Chain generated and inserted in {gen_s:.0f} s.")
    if ctx.quick:
        sc.notes.append("Quick mode: 50,000 events instead of 1,000,000.")
    return sc


# --------------------------------------------------------------------------- cost

VARIANTS = ("full", "no-audit", "core")


def _variant_server(data: Path, variant: str) -> Server:
    server = Server(data, env={"BENCH_VARIANT": variant}, name=f"variant-{variant}")
    server.argv = [sys.executable, "-m", "bench.variant_server", *server.argv[1:]]
    return server


def _sequential(server: Server, model: str, n: int, digest: str, size: int, seed: int
                ) -> tuple[float, float, float, float]:
    """(throughput, p50 ms, p99 ms, server CPU ms per registration)."""
    rng = random.Random(seed)
    bodies = [registration_body(i, digest, size, rng) for i in range(n)]
    lat = []
    cpu0 = server.cpu_seconds()
    with keepalive_client(server.url) as c:
        create_model(c, model)
        t_start = time.perf_counter_ns()
        for body in bodies:
            t0 = time.perf_counter_ns()
            expect(c.post(f"/api/v1/models/{model}/versions", json=body), 201)
            lat.append(time.perf_counter_ns() - t0)
        wall = (time.perf_counter_ns() - t_start) / 1e9
    cpu = (server.cpu_seconds() - cpu0) / n * 1000
    lat.sort()
    return n / wall, lat[len(lat) // 2] / 1e6, lat[int(len(lat) * 0.99)] / 1e6, cpu


def _attribution(data: Path, n: int) -> dict[str, float]:
    """In-process: share of register_version time inside audit.append and authz/hooks."""
    from regista.config import Settings
    from regista.domain.models import Actor
    from regista.service import audit as audit_mod
    from regista.service.container import build_services
    from regista.service.registry import NewFile

    migrated_sqlite(data)
    svc = build_services(Settings(data_dir=data, secret_key=SECRET, auth_mode="local"))
    spent: dict[str, int] = {"audit": 0, "authz": 0, "hooks": 0}
    patched: list[tuple[Any, str, Any]] = []

    def timed(owner: Any, name: str, bucket: str) -> None:
        original = getattr(owner, name)

        def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter_ns()
            try:
                return original(*a, **k)
            finally:
                spent[bucket] += time.perf_counter_ns() - t0

        patched.append((owner, name, original))
        setattr(owner, name, wrapper)

    try:
        actor = Actor(name="local", local_mode=True)
        payload = b"\x00model-bytes" * 93
        digest = hashlib.sha256(payload).hexdigest()
        svc.blobs.put(actor, digest, len(payload), [payload])
        svc.registry.create_model(actor, "attribution")
        rng = random.Random(3)
        bodies = [registration_body(i, digest, len(payload), rng) for i in range(n + 50)]
        files = [NewFile(path="model.pkl", digest=digest, size=len(payload), role="model")]

        def register(body: dict[str, Any]) -> None:
            svc.registry.register_version(actor, "attribution", files=files,
                                          metadata=body["metadata"], tags=body["tags"])

        for body in bodies[:50]:
            register(body)
        timed(audit_mod, "append", "audit")
        for name in ("require", "holds_anywhere"):
            if hasattr(svc.registry.authz, name):
                timed(svc.registry.authz, name, "authz")
        for name in ("required_metadata", "protected_aliases", "review_interval"):
            if hasattr(svc.registry.hooks, name):
                timed(svc.registry.hooks, name, "hooks")
        t0 = time.perf_counter_ns()
        for body in bodies[50:]:
            register(body)
        total = time.perf_counter_ns() - t0
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)
        svc.close()
    return {"total_ms": total / n / 1e6, **{k: v / total * 100 for k, v in spent.items()},
            **{f"{k}_ms": v / n / 1e6 for k, v in spent.items()}}


def cost(ctx: Context) -> Scenario:
    sc = Scenario("audit-cost", "What auditing and policy checks cost a registration", 3)
    n = ctx.size(1000, 150)
    sc.method = (
        "The sequential registrations of the registration scenario (one reused connection, "
        f"{n} per variant and repeat) against three builds of the same server, started one "
        "after the other, their order alternating per repeat: `full` (the product), "
        "`no-audit` (`audit.append` replaced by a no-op) and `core` (no audit; authorisation "
        "checks pass without lookups, and the governance hooks give the no-policy answers "
        "instead of reading the policy). "
        "The variants exist only in the harness (bench/variant_server.py) to measure the "
        "difference; they are never a configuration of the product. Cost = 1 - full/core "
        f"throughput, computed per repeat, median of {ctx.repeat}. Cross-checks: the same from "
        "server CPU per registration, and the share of in-process service time spent inside "
        "`audit.append` and the authorizer/hooks.")
    results: dict[str, list[tuple[float, float, float, float]]] = {v: [] for v in VARIANTS}
    root = ctx.tmpdir("audit-cost")
    for rep in range(ctx.repeat):
        for variant in (VARIANTS if rep % 2 == 0 else tuple(reversed(VARIANTS))):
            with _variant_server(root / f"{variant}-{rep}", variant) as server:
                with keepalive_client(server.url) as c:
                    digest, size = upload_blob(c, b"\x00model-bytes" * 93)
                _sequential(server, "warmup", 50, digest, size, 0)
                results[variant].append(_sequential(server, "m", n, digest, size, rep))
                if variant == "full":
                    with keepalive_client(server.url) as c:
                        events = expect(c.get("/api/v1/audit/events",
                                              params={"model": "m", "page_size": 1}), 200)
                        if not events.json().get("items"):
                            raise RuntimeError("the full server wrote no audit events")
            log(f"audit-cost rep {rep} {variant}: {results[variant][-1][0]:.0f}/s")
    thr = {v: med([r[0] for r in results[v]]) for v in VARIANTS}
    rows = []
    for v in VARIANTS:
        rows.append([v, per_s(thr[v]), ms(med([r[1] for r in results[v]])),
                     ms(med([r[2] for r in results[v]])), ms(med([r[3] for r in results[v]]))])
    sc.tables.append(Table("Sequential registrations per server variant (medians)",
                           ["Variant", "Throughput", "p50", "p99", "Server CPU / registration"],
                           rows))
    # Cost = share of core throughput lost; per repeat (same conditions), then the median.
    costs = [100 * (1 - f[0] / c[0]) for f, c in zip(results["full"], results["core"],
                                                     strict=True)]
    audit_only = [100 * (1 - f[0] / a[0]) for f, a in zip(results["full"], results["no-audit"],
                                                          strict=True)]
    sc.add("Throughput full / core (same repeat)",
           [f[0] / c[0] for f, c in zip(results["full"], results["core"], strict=True)], ratio)
    sc.add("Cost of auditing + policy checks (1 - full/core throughput)", costs, pct,
           target="< 20 %", ok=lambda v: v < 20)
    sc.add("Cost of auditing alone (1 - full/no-audit throughput)", audit_only, pct)
    sc.add("Cost by server CPU (1 - core/full CPU per registration)",
           [100 * (1 - c[3] / f[3]) for f, c in zip(results["full"], results["core"], strict=True)
            if f[3] > 0], pct)
    att = _attribution(root / "attribution", ctx.size(1000, 100))
    sc.tables.append(Table(
        "In-process cross-check: where RegistryService.register_version spends its time "
        "(no HTTP)",
        ["Part", "Time per registration", "Share of the service call"],
        [["whole register_version", ms(att["total_ms"]), "100 %"],
         ["audit.append", ms(att["audit_ms"]), pct(att["audit"])],
         ["authorizer (require, holds_anywhere)", ms(att["authz_ms"]), pct(att["authz"])],
         ["governance hooks (required metadata, protected aliases)", ms(att["hooks_ms"]),
          pct(att["hooks"])]]))
    sc.notes.append("Audit events written by the full variant were checked through "
                    "GET /api/v1/audit/events.")
    return sc

