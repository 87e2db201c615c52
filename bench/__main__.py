"""``python -m bench``: run the benchmark scenarios and write docs/benchmarks.md."""

from __future__ import annotations

import argparse
import gc
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import ab, asof, audit, blobs, registration, search, stall, startup, web
from bench.common import ROOT, Context, Scenario, log, machine_info, pg_version
from bench.report import render

SCENARIOS: dict[str, Callable[[Context], Scenario]] = {
    "sequential": registration.sequential,
    "concurrent": registration.concurrent,
    "ceiling": registration.ceiling,
    "search": search.run,
    "blobs": blobs.run,
    "startup": startup.run,
    "stall": stall.run,
    "asof": asof.run,
    "audit-verify": audit.verify,
    "audit-cost": audit.cost,
    "web": web.run,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Regista benchmarks: real servers on 127.0.0.1, results in docs/benchmarks.md.",
    )
    p.add_argument("--quick", action="store_true",
                   help="small sizes: a smoke run of the whole harness (numbers not meaningful)")
    p.add_argument("--only", metavar="NAME[,NAME]", default="",
                   help="run only these scenarios: " + ", ".join(SCENARIOS))
    p.add_argument("--repeat", type=int, default=3, metavar="N",
                   help="repeats per measurement; medians are reported (default 3)")
    p.add_argument("--output", type=Path, default=None,
                   help="where to write the report (default docs/benchmarks.md, or "
                        "docs/benchmarks-ab.md with --baseline)")
    p.add_argument("--baseline", metavar="REV", default="",
                   help="A/B mode: run the scenarios against git revision REV and the working "
                        "tree, interleaved, and report the ratios (scenarios: "
                        + ", ".join(ab.AB_SCENARIOS) + ")")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = p.parse_args(argv)
    if not 1 <= args.repeat <= 50:
        p.error("--repeat must be between 1 and 50")
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    args.names = names or list(SCENARIOS)
    if args.baseline:
        names = names or list(ab.AB_SCENARIOS)
        unfit = [n for n in names if n not in ab.AB_SCENARIOS]
        if unfit:
            p.error(f"--baseline compares only {', '.join(ab.AB_SCENARIOS)}, not "
                    f"{', '.join(unfit)}")
        args.names = names
    if args.output is None:
        args.output = ROOT / "docs" / ("benchmarks-ab.md" if args.baseline else "benchmarks.md")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="regista-bench-"))
    ctx = Context(quick=args.quick, repeat=args.repeat, tmp=tmp,
                  pg_available=pg_version() is not None)
    log(f"scratch directory {tmp}; PostgreSQL {'available' if ctx.pg_available else 'NOT available'}")
    results: list[Scenario] = []
    failed = False
    if args.baseline:
        try:
            gc.collect()
            gc.freeze()
            results, text = ab.run(args.names, SCENARIOS, ctx, baseline=args.baseline,
                                   rounds=args.repeat)
        finally:
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        log(f"wrote {args.output} ({time.monotonic() - t0:.0f} s in all)")
        return 1 if any(sc.errors for sc in results) else 0
    try:
        for name in args.names:
            log(f"=== {name}")
            # The harness is an instrument: freeze what it holds so that its own full
            # garbage collections (tens of ms with every client thread stopped) do not
            # show up as server latency. The servers freeze theirs the same way.
            gc.collect()
            gc.freeze()
            s0 = time.monotonic()
            try:
                sc = SCENARIOS[name](ctx)
            except Exception as exc:
                failed = True
                log(f"{name} FAILED: {exc!r}")
                sc = Scenario(name, name, 0, skipped=f"FAILED: {type(exc).__name__}: {exc}")
                sc.details.append(("Traceback", traceback.format_exc()))
            sc.seconds = time.monotonic() - s0
            failed = failed or bool(sc.errors)
            results.append(sc)
            log(f"{name} done in {sc.seconds:.0f} s")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    command = "python -m bench" + ("" if argv is None and len(sys.argv) <= 1 else " ") + \
        shlex.join(sys.argv[1:] if argv is None else argv)
    text = render(results, machine=machine_info(), command=command.strip(), repeat=args.repeat,
                  quick=args.quick, started=started, seconds=time.monotonic() - t0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    log(f"wrote {args.output} ({time.monotonic() - t0:.0f} s in all)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
