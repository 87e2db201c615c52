"""Web UI page renders with 1,000 models and 100,000 versions (issue 4).

The registry is generated straight into a migrated SQLite file (bench/gen.py): 1,000
models x 100 versions with tags, metrics, files and aliases; 3 environments with 300
models each and 10 deployment events per environment/model pair; 100,000 audit events
(a valid chain); and a few pending transition requests made through the service. Then
`regista serve` (local mode) renders every reading page over one reused connection, as
a browser would; the time is the whole request (server render + transfer), the size the
HTML bytes received.
"""

from __future__ import annotations

import importlib.util
import random
import time
from collections.abc import Callable
from typing import Any

from bench import asof
from bench.audit import generate_chain
from bench.common import (
    SECRET,
    Context,
    LatencyStats,
    Row,
    Scenario,
    Server,
    Table,
    keepalive_client,
    log,
    med,
    ms,
)
from bench.gen import Registry, generate_registry, migrated_sqlite


def _pending_requests(data: Any, reg: Registry, n: int) -> int:
    """Ask for n transitions through the lifecycle service; returns how many stay pending."""
    from regista.config import Settings
    from regista.domain.models import Actor
    from regista.service.container import build_services

    svc = build_services(Settings(data_dir=data, secret_key=SECRET, auth_mode="local"))
    actor = Actor(name="bench", local_mode=True)
    pending = 0
    try:
        lifecycle = getattr(svc, "lifecycle", None)
        if lifecycle is None:
            return 0
        for i in range(n):
            ref = f"{reg.model_names[i * 7 % reg.models]}/{reg.per_model}"
            for stage in ("staging", "production"):
                try:
                    r = lifecycle.request_transition(actor, ref, stage, "benchmark request")
                except Exception:  # the policy may refuse this move; try the next one
                    continue
                if getattr(r, "status", "") == "pending":
                    pending += 1
                    break
    finally:
        svc.close()
    return pending


def _pages(reg: Registry, envs: list[str]) -> list[tuple[str, Callable[[random.Random], str]]]:
    def name(rng: random.Random) -> str:
        return reg.model_names[rng.randrange(reg.models)]

    return [
        ("Portfolio dashboard /", lambda rng: "/"),
        ("Catalogue /models", lambda rng: "/models"),
        ("Catalogue, filtered by team", lambda rng: f"/models?team=team-{rng.randrange(20)}"),
        ("Catalogue, search expression", lambda rng: "/models?q=tags.domain%20%3D%20%22fraud%22"),
        ("Model page", lambda rng: f"/models/{name(rng)}"),
        ("Version page", lambda rng: f"/models/{name(rng)}/versions/"
                                     f"{rng.randrange(1, reg.per_model + 1)}"),
        ("Compare (3 versions)", lambda rng: "/compare?" + "&".join(
            f"v={name(rng)}/{rng.randrange(1, reg.per_model + 1)}" for _ in range(3))),
        ("Approvals queue", lambda rng: "/approvals"),
        ("Environments", lambda rng: "/environments"),
        ("Environments, as of a past time", lambda rng: "/environments?as_of=2025-06-01T12:00"),
        ("Environment page", lambda rng: f"/environments/{rng.choice(envs)}"),
        ("Audit log", lambda rng: "/audit"),
        ("Policy", lambda rng: "/policy"),
        ("Administration", lambda rng: "/admin"),
    ]


def run(ctx: Context) -> Scenario:
    sc = Scenario("web", "Web UI page renders", 4)
    if importlib.util.find_spec("regista.web.routes") is None:
        sc.skipped = "not available: regista.web.routes does not exist yet"
        return sc
    models = 1000
    versions = ctx.size(100_000, 20_000)
    n = ctx.size(30, 8)
    sc.method = (__doc__ or "").split("\n\n", 1)[1].replace("\n", " ").strip() + (
        f" {n} renders per page per repeat (after one warm-up), {ctx.repeat} repeats, medians.")
    data = ctx.tmpdir("web") / "data"
    t0 = time.monotonic()
    path = migrated_sqlite(data)
    reg = generate_registry(path, models=models, versions=versions)
    info = asof._generate(path, reg, envs=3, models_per_env=300, per_pair=10, alias_moves=5)
    generate_chain(path, ctx.size(100_000, 20_000))
    pending = _pending_requests(data, reg, 20)
    log(f"  web data generated in {time.monotonic() - t0:.0f} s ({pending} pending requests)")
    pages = _pages(reg, info["envs"])
    p50: dict[str, list[float]] = {}
    p95: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    status: dict[str, int] = {}
    with Server(data) as server, keepalive_client(server.url, follow_redirects=False) as c:
        for rep in range(ctx.repeat):
            for label, make in pages:
                rng = random.Random(rep * 100 + len(label))
                r = c.get(make(rng))
                status[label] = r.status_code
                if r.status_code != 200:
                    continue
                lat: list[int] = []
                deadline = time.monotonic() + 20.0  # bounded even if a page is slow
                for _ in range(n):
                    if len(lat) >= 3 and time.monotonic() > deadline:
                        break
                    url = make(rng)
                    t1 = time.perf_counter_ns()
                    r = c.get(url)
                    body = r.content
                    lat.append(time.perf_counter_ns() - t1)
                    if r.status_code != 200:
                        raise RuntimeError(f"{url} → {r.status_code}: {r.text[:300]}")
                    sizes[label] = max(sizes.get(label, 0), len(body))
                st = LatencyStats.of(lat)
                p50.setdefault(label, []).append(st.p50)
                p95.setdefault(label, []).append(st.p95)
            log(f"web rep {rep} done")
    rows = []
    misses: list[Row] = []
    for label, _ in pages:
        if label not in p95:
            rows.append([label, "-", "-", "-", "-", f"not measured: HTTP {status.get(label)}"])
            continue
        kb = sizes[label] / 1000
        t95 = med(p95[label])
        ok = t95 < 150 and kb < 300
        rows.append([label, ms(med(p50[label])), ms(t95), f"{kb:,.0f} KB",
                     "< 150 ms, < 300 KB", "PASS" if ok else "MISS"])
        if not ok:
            misses.append(Row(f"{label}: p95 / HTML size", f"{ms(t95)} / {kb:,.0f} KB",
                              "< 150 ms / < 300 KB", "MISS"))
    measured = [r for r in rows if r[-1] in ("PASS", "MISS")]
    passed = sum(1 for r in measured if r[-1] == "PASS")
    sc.rows.append(Row("Pages within both targets (p95 < 150 ms, HTML < 300 KB)",
                       f"{passed} of {len(measured)}", f"all {len(measured)}",
                       "PASS" if passed == len(measured) else "MISS"))
    sc.rows.extend(misses)
    unmeasured = [r[0] for r in rows if r not in measured]
    if unmeasured:
        sc.notes.append("Not measured (the page did not answer 200): " + ", ".join(unmeasured))
    sc.tables.append(Table(f"{models:,} models, {reg.versions:,} versions (medians over repeats)",
                           ["Page", "p50", "p95", "HTML size", "Target", "Result"], rows))
    sc.notes.append(f"{pending} transition requests pending; {info['deployment_events']:,} "
                    "deployment events.")
    if ctx.quick:
        sc.notes.append("Quick mode: 20,000 versions instead of 100,000.")
    return sc
