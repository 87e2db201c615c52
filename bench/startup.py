"""`regista serve`: time from process start to the first successful /api/v1/health answer."""

from __future__ import annotations

from bench.common import Context, Scenario, Server, log, secs


def run(ctx: Context) -> Scenario:
    sc = Scenario("startup", "Server start-up time", 2)
    starts = 5
    sc.method = (
        f"Wall time from spawning `regista serve --workers 1` to the first 200 from "
        f"`GET /api/v1/health` (polled every 5 ms), median of {starts} starts: on a fresh data "
        "directory (first run: creates and migrates the SQLite database) and on an existing one "
        "(restart). Each server is stopped (SIGTERM) before the next start."
    )
    fresh: list[float] = []
    again: list[float] = []
    for i in range(starts):
        data = ctx.tmpdir(f"startup-{i}") / "data"
        for bucket in (fresh, again):
            server = Server(data)
            try:
                server.launch()
                bucket.append(server.wait_ready(timeout=60, interval=0.005))
            finally:
                server.stop()
        log(f"start {i}: fresh {fresh[-1]:.2f} s, existing {again[-1]:.2f} s")
    sc.add("First answer, fresh data directory (median of 5)", fresh, secs, target="< 2 s",
           ok=lambda v: v < 2)
    sc.add("First answer, existing data directory (median of 5)", again, secs, target="< 2 s",
           ok=lambda v: v < 2)
    return sc
