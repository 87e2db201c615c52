"""Shared pieces of the benchmark harness: servers, clients, statistics, results.

Servers are real ``regista serve`` subprocesses bound to 127.0.0.1 on a free port, each
in its own process group so that stopping one (SIGTERM, then SIGKILL after a grace
period) also stops its worker processes. Callers stop them in ``finally`` blocks (the
:class:`Server` is a context manager).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import math
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRET = "bench-secret-key-not-for-production"
PG_ADMIN_URL = os.environ.get(
    "REGISTA_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def log(message: str) -> None:
    """Progress on stderr (the report goes to the output file)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    """One measured quantity, with its target and verdict when the issue sets one."""

    metric: str
    measured: str
    target: str = ""
    verdict: str = ""  # PASS | MISS | "" (informational)
    spread: str = ""  # min-max over repeats
    values: list[float] = field(default_factory=list)  # per repeat (for A/B comparisons)
    fmt: Callable[[float], str] | None = None


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]


@dataclass
class Scenario:
    """What one scenario reports; rendered as one section of docs/benchmarks.md."""

    key: str
    title: str
    issue: int
    method: str = ""
    rows: list[Row] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: list[tuple[str, str]] = field(default_factory=list)  # (summary, preformatted)
    skipped: str | None = None
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def failed_part(self, label: str, exc: BaseException) -> None:
        """Record that one part of the scenario could not run, and go on with the rest."""
        import traceback

        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self.errors.append(f"{label}: {message}")
        self.rows.append(Row(f"{label}: could not run", "FAILED", "runs", "MISS"))
        self.details.append((f"{label}: traceback", "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__))))
        log(f"{label} FAILED: {message}")

    def add(self, metric: str, values: Sequence[float] | float, fmt: Callable[[float], str],
            *, target: str = "", ok: Callable[[float], bool] | None = None) -> float:
        """Add a row from one value or the per-repeat values (reported as their median)."""
        vals = [float(values)] if isinstance(values, int | float) else [float(v) for v in values]
        med = statistics.median(vals)
        spread = f"{fmt(min(vals))} - {fmt(max(vals))}" if len(vals) > 1 else ""
        verdict = ("PASS" if ok(med) else "MISS") if ok is not None else ""
        self.rows.append(Row(metric, fmt(med), target, verdict, spread, vals, fmt))
        return med


def ms(value: float) -> str:
    """Milliseconds, 3 significant figures-ish."""
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def per_s(value: float) -> str:
    return f"{value:,.0f}/s"


def mb_s(value: float) -> str:
    return f"{value:,.0f} MB/s"


def mib(value: float) -> str:
    return f"{value:,.0f} MiB"


def secs(value: float) -> str:
    return f"{value:.2f} s"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def pct(value: float) -> str:
    return f"{value:.1f} %"


def count(value: float) -> str:
    return f"{value:,.0f}"


# --------------------------------------------------------------------------- statistics


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile of already sorted values (p in 0..100)."""
    if not sorted_values:
        return math.nan
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    k = (len(sorted_values) - 1) * p / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo))


@dataclass
class LatencyStats:
    n: int
    p50: float  # milliseconds
    p95: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, latencies_ns: Sequence[int]) -> LatencyStats:
        vals = sorted(x / 1e6 for x in latencies_ns)
        return cls(len(vals), percentile(vals, 50), percentile(vals, 95), percentile(vals, 99),
                   vals[-1] if vals else math.nan, statistics.fmean(vals) if vals else math.nan)


def med(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, str]:
    """CPU, cores, memory, kernel, Python and library versions of this run."""
    info: dict[str, str] = {}
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info["CPU"] = cpu
    info["Cores (os.cpu_count)"] = str(os.cpu_count())
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                kib = int(line.split()[1])
                info["Memory"] = f"{kib / 1024 / 1024:.1f} GiB"
    info["OS"] = f"{platform.system()} {platform.release()}"
    info["Python"] = platform.python_version()
    import sqlite3

    info["SQLite"] = sqlite3.sqlite_version
    info["PostgreSQL"] = pg_version() or "not available"
    versions = []
    for mod in ("uvicorn", "fastapi", "starlette", "httpx", "sqlalchemy", "psycopg", "orjson"):
        with contextlib.suppress(Exception):
            versions.append(f"{mod} {__import__(mod).__version__}")
    info["Libraries"] = ", ".join(versions)
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        info["Source"] = f"git {commit}" + (" + uncommitted changes in src/" if dirty else "")
    return info


# --------------------------------------------------------------------------- PostgreSQL


def pg_version() -> str | None:
    try:
        import sqlalchemy as sa

        eng = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with eng.connect() as conn:
                return str(conn.execute(sa.text("show server_version")).scalar())
        finally:
            eng.dispose()
    except Exception:
        return None


def create_pg_database(prefix: str = "regista_bench") -> str:
    """A fresh database (CREATE DATABASE on an autocommit connection); returns its URL."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    eng = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        eng.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    import sqlalchemy as sa

    name = url.rsplit("/", 1)[1]
    eng = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        eng.dispose()


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# A/B runs (``--baseline``): the source tree whose code the servers run, when not ours.
SERVER_SOURCE: Path | None = None


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a server subprocess: ours minus any REGISTA_*, plus the bench's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTA_")}
    if SERVER_SOURCE is not None:
        env["PYTHONPATH"] = str(SERVER_SOURCE)
    env.update({
        "REGISTA_AUTH_MODE": "local",
        "REGISTA_SECRET_KEY": SECRET,
        "REGISTA_LOG_LEVEL": "warning",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


# bare uvicorn serving the five-line app (bench/trivial_app.py): the contrast case
BARE_UVICORN = [sys.executable, "-m", "uvicorn", "bench.trivial_app:app", "--host", "127.0.0.1",
                "--port", "{port}", "--log-level", "warning", "--no-access-log"]


def regista_command() -> list[str]:
    script = BIN / "regista"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "regista.cli.main"]


class Server:
    """A server subprocess on 127.0.0.1 (``regista serve`` unless ``argv`` is given)."""

    def __init__(self, data_dir: Path, *, workers: int = 1, database_url: str | None = None,
                 env: dict[str, str] | None = None, argv: list[str] | None = None,
                 name: str = "regista") -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        extra = dict(env or {})
        if database_url:
            extra["REGISTA_DATABASE_URL"] = database_url
        self.env = server_env(extra)
        self.argv = argv or [*regista_command(), "serve", "--data-dir", str(self.data_dir),
                             "--host", "127.0.0.1", "--port", str(self.port),
                             "--workers", str(workers)]
        self.argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / f"{name}-{self.port}.log"
        self.started_ns = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def launch(self) -> None:
        """Start the process without waiting for it to answer."""
        log_file = self.log_path.open("wb")
        try:
            self.started_ns = time.perf_counter_ns()
            self.proc = subprocess.Popen(self.argv, cwd=str(ROOT), env=self.env,
                                         stdout=log_file, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log_file.close()

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.005) -> float:
        """Poll /api/v1/health until it answers 200; seconds since launch."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                       + self.log_tail())
                try:
                    r = client.get(f"{self.url}/api/v1/health")
                    if r.status_code == 200:
                        return (time.perf_counter_ns() - self.started_ns) / 1e9
                except httpx.TransportError:
                    pass
                time.sleep(interval)
        raise RuntimeError(f"{self.name} did not answer within {timeout:.0f} s:\n" + self.log_tail())

    def start(self, timeout: float = 60.0) -> Server:
        self.launch()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL it if it has not exited in 15 s."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        else:
            # The leader is gone; make sure no worker of its group survives it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.proc = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def cpu_seconds(self) -> float:
        """User+system CPU of the server and its worker processes (Linux /proc)."""
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in [self.pid, *children_of(self.pid)]:
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
        return total


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def proc_status_kib(pid: int, key: str) -> int:
    """One ``kB`` field (VmRSS, VmHWM, ...) of /proc/<pid>/status; 0 if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Samples VmRSS of a process every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = proc_status_kib(self.pid, "VmRSS")
            self.peak_kib = max(self.peak_kib, rss)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# --------------------------------------------------------------------------- clients


def keepalive_client(base_url: str, **kw: Any) -> httpx.Client:
    """One client reusing its connection (what real clients do)."""
    return httpx.Client(base_url=base_url, timeout=120.0, **kw)


def fresh_connection_client(base_url: str, **kw: Any) -> httpx.Client:
    """A client that opens a new TCP connection for every request (no keep-alive pool)."""
    return httpx.Client(base_url=base_url, timeout=120.0,
                        limits=httpx.Limits(max_keepalive_connections=0), **kw)


class LeanResponse:
    """What :class:`LeanClient` returns: the bits of ``httpx.Response`` the harness reads."""

    def __init__(self, status: int, content: bytes) -> None:
        self.status_code = status
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


class LeanClient:
    """One reused keep-alive connection over the standard library's ``http.client``.

    httpx spends about 0.2 ms of client CPU per request on this machine; this client
    spends a fraction of that, so with it a latency measures more of the server and less
    of the harness (both are reported). JSON bodies are encoded with orjson.
    """

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                                timeout=120)

    def post(self, path: str, *, json: Any) -> LeanResponse:
        return self._request("POST", path, orjson.dumps(json),
                             {"content-type": "application/json"})

    def get(self, path: str) -> LeanResponse:
        return self._request("GET", path, None, {})

    def _request(self, method: str, path: str, body: bytes | None,
                 headers: dict[str, str]) -> LeanResponse:
        self._conn.request(method, path, body=body, headers=headers)
        r = self._conn.getresponse()
        return LeanResponse(r.status, r.read())

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LeanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lean_client(base_url: str) -> LeanClient:
    return LeanClient(base_url)


def client_port(response: httpx.Response) -> int | None:
    """The local port of the connection a response came over (proves reuse or not)."""
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    try:
        addr = stream.get_extra_info("client_addr")
    except OSError:  # already closed: it was not kept alive
        return None
    return int(addr[1]) if addr else None


def timed(fn: Callable[[], httpx.Response]) -> tuple[int, httpx.Response]:
    t0 = time.perf_counter_ns()
    r = fn()
    return time.perf_counter_ns() - t0, r


def expect(r: httpx.Response, *codes: int) -> httpx.Response:
    if r.status_code not in codes:
        raise RuntimeError(f"{r.request.method} {r.request.url} → {r.status_code}: {r.text[:500]}")
    return r


# --------------------------------------------------------------------------- payloads


def upload_blob(client: httpx.Client, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    expect(client.put(f"/api/v1/blobs/{digest}", content=data,
                      headers={"content-type": "application/octet-stream"}), 200, 201)
    return digest, len(data)


def create_model(client: httpx.Client, name: str, **fields: Any) -> None:
    expect(client.post("/api/v1/models", json={"name": name, **fields}), 201)


def registration_body(i: int, digest: str, size: int, rng: random.Random) -> dict[str, Any]:
    """The registration MLflow was measured with: one known file, metadata, three tags."""
    return {
        "files": [{"path": "model.pkl", "sha256": digest, "size": size, "role": "model",
                   "media_type": "application/octet-stream"}],
        "metadata": {
            "training_data": {"uri": "s3://data/fraud/train.parquet", "version": f"v{i % 50}"},
            "training_code": {"repository": "https://git.example.com/ml/fraud",
                              "commit": f"{rng.getrandbits(160):040x}", "dirty": False},
            "parameters": {"learning_rate": 0.05, "max_depth": 6, "n_estimators": 300,
                           "seed": i},
            "metrics": {"auc": round(rng.uniform(0.7, 0.99), 4),
                        "f1": round(rng.uniform(0.5, 0.9), 4),
                        "log_loss": round(rng.uniform(0.1, 0.6), 4)},
            "framework": "sklearn",
        },
        "tags": {"team": f"team-{i % 10}", "env": ("dev", "staging", "prod")[i % 3],
                 "run": f"run-{i}"},
    }



# --------------------------------------------------------------------------- context


@dataclass
class Context:
    """What every scenario gets: sizes mode, repeats, a scratch directory, PostgreSQL."""

    quick: bool
    repeat: int
    tmp: Path
    pg_available: bool
    _n: int = 0

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def tmpdir(self, name: str) -> Path:
        self._n += 1
        path = self.tmp / f"{self._n:02d}-{name}"
        path.mkdir(parents=True, exist_ok=False)
        return path
