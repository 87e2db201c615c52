""""What served in environment E at time T" with 1,000,000 deployment and alias events (issue 3).

Generated straight into a migrated SQLite file: 1,000 models x 20 versions; 20
environments with 50 models each (1,000 environment/model pairs), each pair with 1,000
deployment events over a year (about one every 9 hours; 5 % of them end the deployment,
some roll back); and 1,000,000 alias events (two aliases per model, 500 moves each). Then
`regista serve` answers over HTTP, at random instants across the year:

- ``GET /api/v1/environments/{env}/deployments?at=T``: every model serving in E at T,
- ``GET /api/v1/environments/{env}/served?model=M&at=T``: the auditor's question for one
  model (version, who approved it, on what evidence),
- ``GET /api/v1/models/{name}/aliases/{alias}?as_of=T``: an alias as of T.
"""

from __future__ import annotations

import importlib.util
import random
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

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
)
from bench.gen import (
    BASE_TIME,
    Registry,
    bulk_connection,
    generate_registry,
    insert_rows,
    migrated_sqlite,
    sqlite_ts,
)
from bench.plans import explain_calls

START = BASE_TIME + timedelta(days=10)
SPAN = timedelta(days=365)


def available() -> str | None:
    """None if the deployment history service and its routes exist, else why not."""
    for module in ("regista.service.deployments", "regista.api.routes.deployments"):
        if importlib.util.find_spec(module) is None:
            return f"{module} does not exist yet"
    return None


def _generate(path: Any, reg: Registry, *, envs: int, models_per_env: int, per_pair: int,
              alias_moves: int, seed: int = 11) -> dict[str, Any]:
    rng = random.Random(seed)
    step = SPAN / per_pair
    env_names = [f"env-{e:02d}" for e in range(envs)]
    pairs = [(e, (e * models_per_env + j) % reg.models) for e in range(envs)
             for j in range(models_per_env)]
    tables = ["environments", "environment_models", "deployment_events", "alias_events",
              "aliases"]
    t0 = time.monotonic()
    with bulk_connection(path, tables) as conn:
        created = sqlite_ts(BASE_TIME)
        insert_rows(conn, "environments", ["id", "name", "min_stage", "description",
                                           "created_at"],
                    ((e + 1, n, "registered", "", created) for e, n in enumerate(env_names)))
        insert_rows(conn, "environment_models", ["environment_id", "model_id"],
                    ((e + 1, m + 1) for e, m in pairs))

        def events() -> Iterator[tuple[Any, ...]]:
            eid = 0
            for k in range(per_pair):
                base = START + step * k
                for e, m in pairs:
                    eid += 1
                    jitter = rng.randrange(0, max(1, int(step.total_seconds()) - 1))
                    at = base + timedelta(seconds=jitter)
                    if rng.random() < 0.05:
                        vid = None
                    else:
                        number = min(reg.per_model, 1 + k * reg.per_model // per_pair
                                     - (1 if rng.random() < 0.1 and k else 0))
                        vid = reg.version_id(m, max(1, number))
                    ts = sqlite_ts(at)
                    yield (eid, e + 1, m + 1, vid, ts, ts, "pipeline", "")

        n_events = insert_rows(conn, "deployment_events",
                               ["id", "environment_id", "model_id", "version_id", "at",
                                "recorded_at", "recorded_by", "note"], events())
        alias_names = ("champion", "challenger")
        a_step = SPAN / alias_moves
        last: dict[tuple[int, str], tuple[int, str]] = {}

        def alias_events() -> Iterator[tuple[Any, ...]]:
            for k in range(alias_moves):
                base = START + a_step * k
                for m in range(reg.models):
                    for a in alias_names:
                        at = sqlite_ts(base + timedelta(seconds=rng.randrange(0, 3600)))
                        number = 1 + (k * reg.per_model // alias_moves + rng.randrange(0, 2)) \
                            % reg.per_model
                        vid = reg.version_id(m, number)
                        last[(m, a)] = (vid, at)
                        yield (m + 1, a, vid, at, "bench")

        n_alias = insert_rows(conn, "alias_events", ["model_id", "alias", "version_id", "at",
                                                     "actor"], alias_events())
        conn.execute("DELETE FROM aliases")
        insert_rows(conn, "aliases", ["model_id", "name", "version_id", "updated_at",
                                      "updated_by"],
                    ((m + 1, a, vid, at, "bench") for (m, a), (vid, at) in last.items()))
    log(f"  {n_events:,} deployment events + {n_alias:,} alias events in "
        f"{time.monotonic() - t0:.1f} s")
    return {"envs": env_names, "pairs": pairs, "deployment_events": n_events,
            "alias_events": n_alias, "aliases": alias_names}


def _instant(rng: random.Random) -> str:
    at: datetime = START + timedelta(seconds=rng.uniform(0, SPAN.total_seconds()))
    return at.isoformat().replace("+00:00", "Z")


def run(ctx: Context) -> Scenario:
    sc = Scenario("asof", '"What served in E at T" (deployment and alias history)', 3)
    why = available()
    if why is not None:
        sc.skipped = f"not available: {why}"
        return sc
    per_pair = ctx.size(1000, 50)
    alias_moves = ctx.size(500, 25)
    n_keep = ctx.size(300, 40)
    n_fresh = ctx.size(100, 20)
    sc.method = (
        f"Generated straight into a migrated SQLite file: 1,000 models x 20 versions; 20 "
        f"environments with 50 models each (1,000 environment/model pairs), each pair with "
        f"{per_pair:,} deployment events over a year (5 % of them end the deployment, some roll "
        f"back), and {1000 * 2 * alias_moves:,} alias events (two aliases per model). "
        "`regista serve` then answers, at random instants across the year: "
        "`GET /api/v1/environments/{env}/deployments?at=T` (every model serving in E at T), "
        "`GET /api/v1/environments/{env}/served?model=M&at=T` (the auditor's question: the "
        "version, who approved it, on what evidence) and "
        "`GET /api/v1/models/{name}/aliases/{alias}?as_of=T`. "
        f"{n_keep} requests per query over one reused connection and {n_fresh} with a new "
        f"connection each, {ctx.repeat} repeats, medians of the per-repeat p50/p99. "
        "'Server CPU' is the server process's CPU time per request.")
    data = ctx.tmpdir("asof") / "data"
    t0 = time.monotonic()
    path = migrated_sqlite(data)
    reg = generate_registry(path, models=1000, versions=20_000, with_files=True)
    info = _generate(path, reg, envs=20, models_per_env=50, per_pair=per_pair,
                     alias_moves=alias_moves)
    gen_s = time.monotonic() - t0
    envs: list[str] = info["envs"]
    pairs: list[tuple[int, int]] = info["pairs"]

    def q_env(rng: random.Random) -> tuple[str, dict[str, Any]]:
        return f"/api/v1/environments/{rng.choice(envs)}/deployments", {"at": _instant(rng)}

    def q_served(rng: random.Random) -> tuple[str, dict[str, Any]]:
        e, m = rng.choice(pairs)
        return (f"/api/v1/environments/{envs[e]}/served",
                {"model": reg.model_names[m], "at": _instant(rng)})

    def q_alias(rng: random.Random) -> tuple[str, dict[str, Any]]:
        return (f"/api/v1/models/{reg.model_names[rng.randrange(reg.models)]}/aliases/"
                f"{rng.choice(info['aliases'])}", {"as_of": _instant(rng)})

    queries: list[tuple[str, Callable[[random.Random], tuple[str, dict[str, Any]]]]] = [
        ("what served in E at T (all 50 models of E)", q_env),
        ("which version of M served in E at T, with approvals and evidence", q_served),
        ("alias as of T (name@alias?as_of=T)", q_alias),
    ]
    p50: dict[tuple[str, str], list[float]] = {}
    p99: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    items: list[int] = []
    with Server(data) as server:
        for rep in range(ctx.repeat):
            for label, q in queries:
                for mode, make, n in (("reused", keepalive_client, n_keep),
                                      ("new connection", fresh_connection_client, n_fresh)):
                    rng = random.Random(rep * 1000 + len(p50))
                    lat: list[int] = []
                    cpu0 = server.cpu_seconds()
                    deadline = time.monotonic() + 15.0  # bounded even if a query is slow
                    with make(server.url) as c:
                        for i in range(n + 5):
                            if len(lat) >= 3 and time.monotonic() > deadline:
                                break
                            url_path, params = q(rng)
                            t1 = time.perf_counter_ns()
                            r = c.get(url_path, params=params)
                            r.read()
                            dt = time.perf_counter_ns() - t1
                            expect(r, 200)
                            if i >= 5:
                                lat.append(dt)
                            if label.startswith("what served") and i == 0:
                                items.append(len(r.json()["items"]))
                    cpu.setdefault((label, mode), []).append(
                        (server.cpu_seconds() - cpu0) / (len(lat) + 5) * 1000)
                    st = LatencyStats.of(lat)
                    p50.setdefault((label, mode), []).append(st.p50)
                    p99.setdefault((label, mode), []).append(st.p99)
            log(f"asof rep {rep} done")
    rows = []
    for label, _ in queries:
        keep, fresh = (label, "reused"), (label, "new connection")
        sc.add(f"{label}: p99 (reused connection)", p99[keep], ms, target="< 5 ms",
               ok=lambda v: v < 5)
        rows.append([label, ms(med(p50[keep])), ms(med(p99[keep])), ms(med(p50[fresh])),
                     ms(med(p99[fresh])), ms(med(cpu[keep])), "< 5 ms",
                     "PASS" if med(p99[keep]) < 5 else "MISS"])
    sc.tables.append(Table("Latency (medians over repeats)",
                           ["Query", "p50 reused", "p99 reused", "p50 new conn.",
                            "p99 new conn.", "Server CPU / request", "Target (p99 reused)",
                            "Result"], rows))
    sc.notes.append(f"Stored: {info['deployment_events']:,} deployment events and "
                    f"{info['alias_events']:,} alias events (plus 1,000 from the registry "
                    f"generator), generated in {gen_s:.0f} s. A 'what served' answer listed "
                    f"{min(items) if items else 0}-{max(items) if items else 0} deployments.")
    if ctx.quick:
        sc.notes.append("Quick mode: 50,000 + 50,000 events instead of 1,000,000 + 1,000,000.")

    at = START + SPAN / 2
    calls = [
        (queries[0][0], lambda svc, actor: svc.deployments.served_at(actor, envs[3], at)),
        (queries[1][0], lambda svc, actor: svc.deployments.served(
            actor, envs[pairs[170][0]], reg.model_names[pairs[170][1]], at)),
        (queries[2][0], lambda svc, actor: svc.registry.get_version(
            actor, f"{reg.model_names[7]}@champion", as_of=at)),
    ]
    plans, summary = explain_calls(data, calls)
    sc.tables.append(Table("Full table scans in the query plans (SQLite EXPLAIN QUERY PLAN)",
                           ["Query", "Statements", "Full scans", "Sorts of materialised rows"],
                           summary))
    sc.details.append(("SQLite EXPLAIN QUERY PLAN", plans))
    return sc
