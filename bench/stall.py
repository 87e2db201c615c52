"""The reused-connection stall: Nagle's algorithm meeting delayed ACKs in multi-process mode.

uvicorn's multi-process mode hands workers a listening socket without TCP_NODELAY, so a
response written in two sends waits ~40 ms for the client's delayed ACK on a reused
connection. Regista's server sets TCP_NODELAY on the listening socket. Here: GET
/api/v1/health over one keep-alive connection against `regista serve --workers 1|2` and,
for contrast, a bare uvicorn on a five-line ASGI app (bench/trivial_app.py).
"""

from __future__ import annotations

import sys
import time

from bench.common import (
    BARE_UVICORN,
    Context,
    LatencyStats,
    Scenario,
    Server,
    Table,
    client_port,
    expect,
    keepalive_client,
    log,
    med,
    ms,
    pct,
    ratio,
)

STALL_MS = 35.0  # a Nagle/delayed-ACK stall costs ~40 ms per request


def _measure(url: str, n: int, budget_s: float = 15.0) -> tuple[LatencyStats, bool, float]:
    lat: list[int] = []
    ports = set()
    with keepalive_client(url) as c:
        for _ in range(10):
            expect(c.get("/api/v1/health"), 200)
        deadline = time.monotonic() + budget_s
        for _ in range(n):
            t0 = time.perf_counter_ns()
            r = expect(c.get("/api/v1/health"), 200)
            lat.append(time.perf_counter_ns() - t0)
            ports.add(client_port(r))
            if time.monotonic() > deadline:
                break
    slow = sum(1 for x in lat if x >= STALL_MS * 1e6) / len(lat)
    return LatencyStats.of(lat), len(ports) == 1 and None not in ports, slow


def run(ctx: Context) -> Scenario:
    sc = Scenario("stall", "Reused-connection stall (multi-process mode)", 2)
    n = ctx.size(200, 60)
    sc.method = (
        f"p50 of `GET /api/v1/health` over one reused keep-alive connection ({n} requests after "
        "10 warm-up, per repeat; the local port is checked to stay the same), against "
        "`regista serve --workers 1` and `--workers 2`, and against bare `uvicorn` serving a "
        "five-line ASGI app (bench/trivial_app.py) as the contrast. The stall needs asyncio's "
        "event loop: with uvloop (installed with uvicorn[standard], and what `regista serve` "
        "picks) bare uvicorn does not stall either. So Regista's own fix is also shown with "
        "the asyncio loop forced (a harness-only patch, bench/variant_server.py)."
    )
    uv = BARE_UVICORN
    variant = [sys.executable, "-m", "bench.variant_server", "serve", "--host", "127.0.0.1",
               "--port", "{port}"]
    # (label, argv or None for `regista serve`, workers, extra env, gated)
    configs: list[tuple[str, list[str] | None, int, dict[str, str], bool]] = [
        ("regista serve --workers 1", None, 1, {}, True),
        ("regista serve --workers 2", None, 2, {}, True),
        ("regista serve --workers 2, asyncio event loop", variant, 2, {"BENCH_LOOP": "asyncio"},
         True),
        ("bare uvicorn --workers 1 --loop asyncio", [*uv, "--workers", "1", "--loop", "asyncio"],
         1, {}, False),
        ("bare uvicorn --workers 2 --loop asyncio", [*uv, "--workers", "2", "--loop", "asyncio"],
         2, {}, False),
        ("bare uvicorn --workers 2 (default loop: uvloop)", [*uv, "--workers", "2"], 2, {}, False),
    ]
    p50s: dict[str, list[float]] = {c[0]: [] for c in configs}
    p99s: dict[str, list[float]] = {c[0]: [] for c in configs}
    reused: dict[str, bool] = {c[0]: True for c in configs}
    slows: dict[str, list[float]] = {c[0]: [] for c in configs}
    for label, argv, workers, env, _ in configs:
        data = ctx.tmpdir("stall") / "data"
        if argv is variant:
            argv = [*variant, "--data-dir", str(data), "--workers", str(workers)]
        try:
            with Server(data, workers=workers, argv=argv, env=env,
                        name="regista" if label.startswith("regista") else "uvicorn") as server:
                for _ in range(ctx.repeat):
                    st, same, slow = _measure(server.url, n)
                    slows[label].append(slow * 100)
                    p50s[label].append(st.p50)
                    p99s[label].append(st.p99)
                    reused[label] = reused[label] and same
        except Exception as exc:
            sc.failed_part(label, exc)
            continue
        log(f"{label}: p50 {p50s[label][-1]:.2f} ms")
    rows = []
    for label, _, _, _, gated in configs:
        if not p50s[label]:
            rows.append([label, "failed", "-", "-", "-"])
            continue
        sc.add(f"p50, {label}", p50s[label], ms, target="no stall: < 20 ms" if gated else "",
               ok=(lambda v: v < 20) if gated else None)
        rows.append([label, ms(med(p50s[label])), ms(med(p99s[label])), pct(med(slows[label])),
                     "yes" if reused[label] else "NO"])
    for a, b in (("regista serve --workers 2", "regista serve --workers 1"),
                 ("regista serve --workers 2, asyncio event loop", "regista serve --workers 1"),
                 ("bare uvicorn --workers 2 --loop asyncio", "bare uvicorn --workers 1 --loop asyncio")):
        if p50s[a] and p50s[b]:
            sc.add(f"Ratio p50 [{a}] / [{b}]", med(p50s[a]) / med(p50s[b]), ratio)
    sc.tables.append(Table("All configurations (medians over repeats)",
                           ["Server", "p50", "p99", f"requests ≥ {STALL_MS:.0f} ms",
                            "one connection throughout"], rows))
    sc.notes.append("A stalled configuration answers ~every request in ~40 ms (Nagle's "
                    "algorithm holding the second write until the client's delayed ACK); the "
                    "gate is p50 < 20 ms so that machine noise is not mistaken for a stall.")
    return sc
