"""Search and get-by-alias latency at 10,000 and 1,000,000 versions (issue 2, scenario 3).

The versions are generated straight into a migrated SQLite file (bench/gen.py), then a
`regista serve` on that data directory answers the queries over HTTP. The SQL each query
runs is captured in-process (SQLAlchemy's before_cursor_execute event, around the same
service call the route makes) and its SQLite EXPLAIN QUERY PLAN saved with the results.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench.common import (
    Context,
    LatencyStats,
    Scenario,
    Server,
    Table,
    expect,
    fresh_connection_client,
    keepalive_client,
    log,
    med,
    ms,
    proc_status_kib,
)
from bench.gen import Registry, generate_registry, migrated_sqlite
from bench.plans import explain_calls


@dataclass
class Query:
    label: str
    gated: bool
    request: Callable[[random.Random], tuple[str, dict[str, Any]]]  # path, params
    service: Callable[[Any, Any, random.Random], object]  # (services, actor, rng) → result
    min_items: int = 1


def _queries(reg: Registry) -> list[Query]:
    def name(rng: random.Random) -> str:
        return reg.model_names[rng.randrange(reg.models)]

    def by_name(rng: random.Random) -> tuple[str, dict[str, Any]]:
        return "/api/v1/versions", {"filter": f'name = "{name(rng)}"'}

    def run_tag(rng: random.Random) -> str:
        return f"run-{rng.randrange(1, reg.versions + 1)}"

    def by_tag(rng: random.Random) -> tuple[str, dict[str, Any]]:
        return "/api/v1/versions", {"filter": f'tags.run = "{run_tag(rng)}"'}

    def by_common_tag(rng: random.Random) -> tuple[str, dict[str, Any]]:
        return "/api/v1/versions", {"filter": f'tags.env = "{reg.envs[rng.randrange(3)]}"'}

    def by_metric(rng: random.Random) -> tuple[str, dict[str, Any]]:
        return "/api/v1/versions", {"filter": f"metrics.auc > {rng.choice([0.95, 0.97, 0.98])}"}

    def name_and_metric(rng: random.Random) -> tuple[str, dict[str, Any]]:
        return "/api/v1/versions", {"filter": f'name = "{name(rng)}" AND metrics.auc > 0.8',
                                    "order_by": "metrics.auc desc"}

    def alias(rng: random.Random) -> tuple[str, dict[str, Any]]:
        return f"/api/v1/models/{name(rng)}/aliases/{reg.alias}", {}

    def number(rng: random.Random) -> tuple[str, dict[str, Any]]:
        return f"/api/v1/models/{name(rng)}/versions/{rng.randrange(1, reg.per_model + 1)}", {}

    def model_versions(rng: random.Random) -> tuple[str, dict[str, Any]]:
        return f"/api/v1/models/{name(rng)}/versions", {}

    def svc_search(req: Callable[[random.Random], tuple[str, dict[str, Any]]]
                   ) -> Callable[[Any, Any, random.Random], object]:
        def call(svc: Any, actor: Any, rng: random.Random) -> object:
            _, params = req(rng)
            return svc.registry.search_versions(actor, filter=params.get("filter"),
                                                order_by=params.get("order_by"))
        return call

    return [
        Query("search by name", True, by_name, svc_search(by_name)),
        Query("search by tag (unique run id)", True, by_tag, svc_search(by_tag)),
        Query("search by tag (env, 1/3 of versions)", True, by_common_tag,
              svc_search(by_common_tag)),
        Query("search by metric (auc > 0.95..0.98)", True, by_metric, svc_search(by_metric)),
        Query("search by name AND metric, order by metric", False, name_and_metric,
              svc_search(name_and_metric)),
        Query("get by alias (name@champion)", True, alias,
              lambda svc, actor, rng: svc.registry.get_version(actor,
                                                               f"{name(rng)}@{reg.alias}")),
        Query("get by number (name/N)", False, number,
              lambda svc, actor, rng: svc.registry.get_version(
                  actor, f"{name(rng)}/{rng.randrange(1, reg.per_model + 1)}")),
        Query("list a model's versions (first page)", False, model_versions,
              lambda svc, actor, rng: svc.registry.search_versions(actor, model=name(rng))),
    ]


BUDGET_S = 6.0  # per query, connection mode and repeat: a slow query cannot stall the run


def _measure(url: str, q: Query, n: int, make: Callable[[str], httpx.Client],
             seed: int) -> LatencyStats:
    """p50/p99 of up to ``n`` requests of ``q`` after up to 10 checked warm-up requests,
    within BUDGET_S seconds (at least 3 measured requests)."""
    rng = random.Random(seed)
    lat: list[int] = []
    deadline = time.monotonic() + BUDGET_S
    with make(url) as c:
        for _ in range(min(10, n)):  # warm-up (also checks the answers are real)
            if time.monotonic() > deadline - BUDGET_S / 2:
                break
            path, params = q.request(rng)
            body = expect(c.get(path, params=params), 200).json()
            items = body.get("items", [body])
            if len(items) < q.min_items:
                raise RuntimeError(f"{q.label}: {path} {params} returned no items")
        for _ in range(n):
            path, params = q.request(rng)
            t0 = time.perf_counter_ns()
            r = c.get(path, params=params)
            r.read()
            lat.append(time.perf_counter_ns() - t0)
            if r.status_code != 200:
                raise RuntimeError(f"{q.label}: {path} {params} → {r.status_code} {r.text[:300]}")
            if len(lat) >= 3 and time.monotonic() > deadline:
                break
    return LatencyStats.of(lat)


# --------------------------------------------------------------------------- scenario


def _at_size(ctx: Context, sc: Scenario, versions: int, models: int, target_ms: float) -> None:
    data = ctx.tmpdir(f"search-{versions}") / "data"
    log(f"generating {versions:,} versions")
    t0 = time.monotonic()
    reg = generate_registry(migrated_sqlite(data), models=models, versions=versions)
    gen_s = time.monotonic() - t0
    size_label = f"{reg.versions:,} versions"
    queries = _queries(reg)
    n_keep = ctx.size(200, 40)
    n_fresh = ctx.size(60, 20)
    p50: dict[tuple[str, str], list[float]] = {}
    p99: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    counts: dict[tuple[str, str], int] = {}
    with Server(data) as server:
        for rep in range(ctx.repeat):
            for q in queries:
                for mode, make, n in (("reused", keepalive_client, n_keep),
                                      ("new connection", fresh_connection_client, n_fresh)):
                    cpu0 = server.cpu_seconds()
                    st = _measure(server.url, q, n, make, seed=rep * 100 + len(p50))
                    counts[(q.label, mode)] = min(counts.get((q.label, mode), n), st.n)
                    cpu.setdefault((q.label, mode), []).append(
                        (server.cpu_seconds() - cpu0) / (st.n + min(10, st.n)) * 1000)
                    p50.setdefault((q.label, mode), []).append(st.p50)
                    p99.setdefault((q.label, mode), []).append(st.p99)
            log(f"{size_label} rep {rep} done")
        rss = proc_status_kib(server.pid, "VmRSS") / 1024
        hwm = proc_status_kib(server.pid, "VmHWM") / 1024
    rows = []
    for q in queries:
        keep, fresh = (q.label, "reused"), (q.label, "new connection")
        if q.gated:
            sc.add(f"{size_label}: {q.label}, p99 (reused connection)", p99[keep], ms,
                   target=f"< {target_ms:.0f} ms", ok=lambda v: v < target_ms)
        verdict = ""
        if q.gated:
            verdict = "PASS" if med(p99[keep]) < target_ms else "MISS"
        rows.append([q.label, str(counts[keep]), ms(med(p50[keep])), ms(med(p99[keep])),
                     ms(med(p50[fresh])), ms(med(p99[fresh])), ms(med(cpu[keep])),
                     f"< {target_ms:.0f} ms" if q.gated else "-", verdict or "-"])
    sc.add(f"{size_label}: server VmRSS after the queries (VmHWM)", rss,
           lambda v: f"{v:,.0f} MiB ({hwm:,.0f} MiB)")
    sc.tables.append(Table(f"{size_label}: latency (medians over repeats)",
                           ["Query", "Requests (reused)", "p50 reused", "p99 reused",
                            "p50 new conn.",
                            "p99 new conn.", "Server CPU / request", "Target (p99 reused)",
                            "Result"], rows))
    calls = [(q.label, (lambda svc, actor, q=q: q.service(svc, actor, random.Random(1))))
             for q in queries]
    plans, summary = explain_calls(data, calls)
    sc.tables.append(Table(f"Full table scans in the query plans at {size_label} "
                           "(SQLite EXPLAIN QUERY PLAN of every statement a call runs)",
                           ["Query", "Statements", "Full scans", "Sorts of materialised rows"],
                           summary))
    sc.details.append((f"SQLite EXPLAIN QUERY PLAN at {size_label}", plans))
    if versions >= 1_000_000 or ctx.quick:
        sc.notes.append(
            "Reading the plans (docs/search.md, 'How queries are planned'): a search with a "
            "tag, metric or alias term first runs two small statements (the versions in reach, "
            "then each term's matches counted up to a cap). A common term is then checked row "
            "by row with a correlated EXISTS while the sort order's index is walked (`SCAN "
            "versions USING COVERING INDEX ix_versions_created_at_id`, no sort: it stops after "
            "51 rows); a rare one is sought from its own index (`LIST SUBQUERY`), and its few "
            "matches sorted (`USE TEMP B-TREE FOR ORDER BY`).")
    sc.notes.append(f"{size_label}: {reg.models:,} models x {reg.per_model:,} versions, "
                    f"3 tags + 3 metrics + 1 file each; generated in {gen_s:.0f} s.")


def run(ctx: Context) -> Scenario:
    sc = Scenario("search", "Search and get-by-alias latency", 2)
    big = ctx.size(1_000_000, 50_000)
    sc.method = (
        "Versions generated directly into a migrated SQLite database (bulk inserts of the "
        "rows the API writes: versions, files, tags, metrics, aliases), then queried through "
        f"`regista serve` over HTTP: {ctx.size(200, 40)} requests per query over one reused "
        f"connection and {ctx.size(60, 20)} with a new connection each, targets drawn at "
        f"random, {ctx.repeat} repeats, medians of the per-repeat p50/p99. Searches return "
        "the first page (50 versions, default order created_at desc). 'Server CPU' is the "
        "server process's CPU time per request (less sensitive to a noisy machine). Each query "
        f"gets at most {BUDGET_S:.0f} s per connection mode and repeat, so a slow query is "
        "measured on fewer requests ('Requests'). MLflow 3.17 (issue 2): "
        "search by name p50 18 ms, by tag p50 53 ms / p99 224 ms, get-by-alias p50 8 ms at "
        "10,000 versions."
    )
    _at_size(ctx, sc, 10_000, 100, 10)
    _at_size(ctx, sc, big, 1000, 50)
    if ctx.quick:
        sc.notes.append("Quick mode: 50,000 instead of 1,000,000 versions (the 50 ms target "
                        "is for 1,000,000).")
    return sc
