"""Moving bytes: scan and hash a local model, upload missing blobs, download and verify files.

Everything here streams in 1 MiB pieces, so memory stays flat whatever the file size.
Uploads of files up to :data:`LARGE_FILE` go in one ``PUT /api/v1/blobs/{sha256}``; larger
ones use the resumable protocol (``POST /api/v1/uploads`` then ``PATCH`` chunks with
``Content-Range``), resuming from the server's offset after a failure. Downloads are written
to a temporary file beside the destination, verified against the manifest's sha256 and
then renamed into place; an interrupted download resumes with ``Range``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Protocol

import orjson

from regista.client._base import BaseClient, quote
from regista.client.types import BlobStatus, FileInfo, UploadState
from regista.domain.names import validate_manifest_path
from regista.errors import (
    Conflict,
    DigestMismatch,
    Invalid,
    NotFound,
    RangeNotSatisfiable,
    RegistryError,
    Unavailable,
)
from regista.fileio import writev_all

PIECE = 1024 * 1024
#: Bytes a download collects before handing them to its hashing thread.
HANDOFF = 4 * 1024 * 1024
#: Files larger than this use the resumable upload protocol.
LARGE_FILE = 64 * 1024 * 1024
#: Size of one resumable-upload chunk (S3-backed servers need at least 5 MiB but the last).
CHUNK = 16 * 1024 * 1024
MIN_CHUNK = 5 * 1024 * 1024
WORKERS = 4
ATTEMPTS = 5
ROLES = ("model", "config", "eval_report", "model_card", "other")

MODEL_EXTENSIONS = frozenset({
    ".pt", ".pth", ".bin", ".safetensors", ".onnx", ".pkl", ".pickle", ".joblib", ".h5",
    ".hdf5", ".keras", ".pb", ".tflite", ".gguf", ".ggml", ".ckpt", ".mlmodel", ".pmml",
    ".msgpack", ".npz", ".npy", ".cbm", ".xgb", ".ubj", ".lgb", ".mar", ".engine", ".plan",
    ".params", ".model", ".mleap", ".torchscript", ".ptl", ".caffemodel", ".weights",
})
CONFIG_EXTENSIONS = frozenset({".json", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".conf"})
_MODEL_CARD = re.compile(r"model[-_ ]?card\.(md|markdown|txt|html|rst)\Z", re.IGNORECASE)

# A fixed table (not the machine's mime.types) so the same directory gives the same
# manifest, and hence the same version digest, on every machine.
MEDIA_TYPES = {
    ".json": "application/json",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".rst": "text/x-rst",
    ".csv": "text/csv",
    ".html": "text/html",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".onnx": "application/onnx",
    ".py": "text/x-python",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".tar": "application/x-tar",
}


# --------------------------------------------------------------------------- local files


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file to register: where it is on disk and what it becomes in the manifest."""

    path: str  # manifest path (relative, POSIX)
    source: Path
    size: int
    sha256: str
    role: str
    media_type: str

    def manifest_entry(self) -> FileInfo:
        return FileInfo(path=self.path, sha256=self.sha256, size=self.size,
                        media_type=self.media_type, role=self.role)


def detect_role(path: str) -> str:
    """The role a file plays, guessed from its name (see :func:`scan`)."""
    name = PurePosixPath(path).name
    lower = name.lower()
    suffix = PurePosixPath(lower).suffix
    if _MODEL_CARD.match(name):
        return "model_card"
    if fnmatch.fnmatchcase(lower, "eval*report*"):
        return "eval_report"
    if suffix in MODEL_EXTENSIONS:
        return "model"
    if suffix in CONFIG_EXTENSIONS:
        return "config"
    return "other"


def media_type_for(path: str) -> str:
    return MEDIA_TYPES.get(PurePosixPath(path.lower()).suffix, "application/octet-stream")


def role_for(path: str, roles: Mapping[str, str] | None) -> str:
    """An explicit role (exact path, then the first matching glob), else the detected one."""
    if roles:
        chosen = roles.get(path)
        if chosen is None:
            chosen = next((r for pat, r in roles.items() if fnmatch.fnmatchcase(path, pat)), None)
        if chosen is not None:
            if chosen not in ROLES:
                raise Invalid(f"role {chosen!r} for {path!r} must be one of {', '.join(ROLES)}",
                              details={"field": "roles", "path": path})
            return chosen
    return detect_role(path)


def scan(root: Path, roles: Mapping[str, str] | None = None) -> list[tuple[str, Path, str]]:
    """(manifest path, file, role) for a file or every regular file under a directory.

    Roles, unless ``roles`` maps a path or glob to one: ``MODEL_CARD.md``/``model_card.md``
    → model_card; ``eval*report*`` → eval_report; known weight formats (``.safetensors``,
    ``.onnx``, ``.pt``, ``.pkl`` …) → model; ``.json``/``.yaml``/``.toml`` … → config;
    anything else → other.
    """
    root = Path(root)
    if root.is_file():
        name = root.name
        return [(validate_manifest_path(name), root, role_for(name, roles))]
    if not root.is_dir():
        raise NotFound(f"no file or directory at {str(root)!r}", details={"path": str(root)})
    out: list[tuple[str, Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if not full.is_file():
                continue
            rel = full.relative_to(root).as_posix()
            out.append((validate_manifest_path(rel), full, role_for(rel, roles)))
    if not out:
        raise Invalid(f"{str(root)!r} contains no files", details={"path": str(root)})
    return out


def hash_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    """sha256 and size of a file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(PIECE)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
            size += n
            if on_bytes:
                on_bytes(n)
    return h.hexdigest(), size


def read_pieces(path: Path, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    """The bytes of ``path`` from ``start`` (``length`` of them, or to the end), 1 MiB at a time."""
    with open(path, "rb") as f:
        f.seek(start)
        left = length
        while left is None or left > 0:
            data = f.read(PIECE if left is None else min(PIECE, left))
            if not data:
                return
            if left is not None:
                left -= len(data)
            yield data


def manifest_digest(files: Sequence[FileInfo]) -> str:
    """The version digest the server will compute: sha256 of the canonical manifest."""
    items = [f.to_json() for f in sorted(files, key=lambda f: f.path)]
    return hashlib.sha256(orjson.dumps({"files": items}, option=orjson.OPT_SORT_KEYS)).hexdigest()


def default_idempotency_key(model: str, manifest: str, body: Mapping[str, Any]) -> str:
    """A key derived from everything the registration says, so a retry replays it."""
    doc = orjson.dumps([model.lower(), manifest, body], option=orjson.OPT_SORT_KEYS)
    return "auto-" + hashlib.sha256(doc).hexdigest()


def load_metadata(metadata: Mapping[str, Any] | str | os.PathLike[str] | None) -> dict[str, Any]:
    """Provenance metadata given as a mapping, or as the path of a JSON or YAML file."""
    if metadata is None:
        return {}
    if isinstance(metadata, Mapping):
        return dict(metadata)
    path = Path(metadata)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"metadata file {str(path)!r} not found", details={"path": str(path)}) from None
    try:
        if path.suffix.lower() == ".json":
            doc = orjson.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise Invalid(f"metadata file {str(path)!r} is not valid: {str(exc)[:300]}",
                      details={"path": str(path)}) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise Invalid(f"metadata file {str(path)!r} must hold a mapping at the top level",
                      details={"path": str(path)})
    return doc


# --------------------------------------------------------------------------- progress


class Progress(Protocol):
    def start(self, description: str, total: int) -> None: ...
    def advance(self, n: int) -> None: ...
    def stop(self) -> None: ...


class NoProgress:
    """The progress reporter used when progress is off."""

    def start(self, description: str, total: int) -> None:
        return None

    def advance(self, n: int) -> None:
        return None

    def stop(self) -> None:
        return None


class RichProgress:
    """One byte-counting rich progress bar on stderr (thread-safe advance)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True,
        )
        self._task: Any = None

    def start(self, description: str, total: int) -> None:
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task(description, total=total)
        else:
            self._progress.reset(self._task, total=total, description=description)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)

    def stop(self) -> None:
        if self._task is not None:
            self._progress.stop()
            self._task = None


def make_progress(enabled: bool) -> Progress:
    """A rich bar when asked for and stderr is a terminal, else nothing."""
    if enabled and sys.stderr.isatty():
        return RichProgress()
    return NoProgress()


def run_parallel(fn: Callable[[Any], Any], items: Sequence[Any], workers: int = WORKERS) -> list[Any]:
    """``fn`` over ``items`` on a small thread pool; the first error is re-raised."""
    if len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)),
                            thread_name_prefix="regista-transfer") as pool:
        futures = [pool.submit(fn, x) for x in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def retrying(attempts: int, fn: Callable[[], Any], *, retry_on: tuple[type[RegistryError], ...]) -> Any:
    """Call ``fn``, retrying transient failures with a short exponential back-off."""
    for attempt in range(attempts):
        try:
            return fn()
        except retry_on:
            if attempt == attempts - 1:
                raise
            time.sleep(min(0.2 * 2**attempt, 3.0))
    raise AssertionError("unreachable")


TRANSIENT: tuple[type[RegistryError], ...] = (Unavailable,)
RESUMABLE: tuple[type[RegistryError], ...] = (Unavailable, RangeNotSatisfiable, Conflict)


# --------------------------------------------------------------------------- downloads


def safe_target(dest: Path, manifest_path: str) -> Path:
    """Where a manifest path lands under ``dest``; refuses anything that would escape it.

    The server validates manifest paths too; this is defence in depth against a hostile or
    broken server (``..``, absolute paths, backslashes, symlinked directories).
    """
    try:
        validate_manifest_path(manifest_path)
    except Invalid as exc:
        raise Invalid(f"refusing to write manifest path {manifest_path[:200]!r}: {exc.message}",
                      details={"path": manifest_path[:200]}) from None
    root = dest.resolve()
    target = (root / manifest_path).resolve()
    if target == root or not target.is_relative_to(root):
        raise Invalid(f"refusing to write manifest path {manifest_path[:200]!r}: it escapes "
                      f"{str(dest)!r}", details={"path": manifest_path[:200]})
    return target


def partial_path(target: Path, sha256: str) -> Path:
    """The temporary file a download of ``target`` is written to (beside it)."""
    return target.with_name(f".{target.name}.{sha256[:16]}.part")


def digest_error(path: str, expected: str, actual: str, size: int, expected_size: int) -> DigestMismatch:
    return DigestMismatch(
        f"downloaded {path!r} does not match the manifest (sha256 {actual[:16]}…, "
        f"expected {expected[:16]}…; {size} bytes, expected {expected_size})",
        details={"path": path, "expected": expected, "actual": actual, "size": size,
                 "expected_size": expected_size},
    )


def verified_file(path: Path, sha256: str, size: int) -> bool:
    """Whether ``path`` already holds exactly these bytes."""
    try:
        if not path.is_file() or path.stat().st_size != size:
            return False
    except OSError:
        return False
    return hash_file(path)[0] == sha256


class HashingSink:
    """Hash, and optionally write to a file, the pieces of a download on a second thread.

    The thread that calls :meth:`feed` goes on reading the network while this one hashes
    (and writes) what came before: hashlib and file writes release the GIL for buffers
    of more than 2 KiB, so the two run on two cores. Pieces are handed over in batches
    of about ``handoff`` bytes (a list: no copy) through a queue of at most ``depth``
    batches, so memory stays below ``(depth + 2) * handoff``. A download that fits in
    one batch is hashed in the calling thread, without starting one.

    Use as a context manager and call :meth:`finish` for the digest; leaving the block
    by an exception stops the thread (dropping batches not yet written) before the file
    can be closed. Writes go to ``fd`` in order, so after a failure the file holds a
    prefix of the stream, which is what resuming with ``Range`` needs.
    """

    def __init__(self, sha: Any = None, fd: int | None = None, *,
                 handoff: int = HANDOFF, depth: int = 2) -> None:
        self.sha = sha if sha is not None else hashlib.sha256()
        self.size = 0
        self._fd = fd
        self._handoff = handoff
        self._batch: list[bytes] = []
        self._held = 0
        self._queue: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=depth)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stopping = False

    def feed(self, piece: bytes) -> None:
        """Take the next piece of the stream (hashed and written later, in order)."""
        if not piece:
            return
        self.size += len(piece)
        self._batch.append(piece)
        self._held += len(piece)
        if self._held >= self._handoff:
            self._hand_over()

    def finish(self) -> str:
        """Wait for everything fed so far to be hashed and written; the sha256 hex digest."""
        if self._thread is None:
            self._consume(self._batch)
        else:
            if self._batch:
                self._hand_over()
            self._queue.put(None)
            self._thread.join()
            self._thread = None
            if self._error is not None:
                raise self._error
        self._batch, self._held = [], 0
        return str(self.sha.hexdigest())

    def __enter__(self) -> HashingSink:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._thread is not None:
            self._stopping = True
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _hand_over(self) -> None:
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="regista-hash", daemon=True)
            self._thread.start()
        self._queue.put(self._batch)
        self._batch, self._held = [], 0

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is not None or self._stopping:
                continue
            try:
                self._consume(batch)
            except BaseException as exc:  # re-raised by the feeding thread
                self._error = exc

    def _consume(self, batch: list[bytes]) -> None:
        update = self.sha.update
        for piece in batch:
            update(piece)
        if self._fd is not None:
            writev_all(self._fd, batch)


# --------------------------------------------------------------------------- the mixin


class TransferMixin(BaseClient):
    """Blob-level calls: which blobs exist, upload one file, download one file verified."""

    def check_blobs(self, digests: Sequence[str]) -> list[BlobStatus]:
        """Which of these sha256 digests the registry already holds."""
        out: list[BlobStatus] = []
        unique = list(dict.fromkeys(digests))
        for i in range(0, len(unique), 10_000):
            body = self._json("POST", "/api/v1/blobs/check", json={"digests": unique[i:i + 10_000]})
            out.extend(BlobStatus.from_json(b) for b in body)
        return out

    def upload_file(
        self,
        path: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        size: int | None = None,
        progress: Progress | None = None,
    ) -> str:
        """Upload one file as a blob (resumable if larger than 64 MiB); return its sha256.

        Pass ``sha256``/``size`` when already known to skip hashing. Uploading bytes the
        registry already holds is harmless (an idempotent success).
        """
        source = Path(path)
        if sha256 is None or size is None:
            sha256, size = hash_file(source)
        bar = progress or NoProgress()
        if size > LARGE_FILE:
            self._upload_resumable(source, sha256, size, bar)
        else:
            retrying(ATTEMPTS, lambda: self._upload_whole(source, sha256, size, bar),
                     retry_on=TRANSIENT)
        return sha256

    def _upload_whole(self, source: Path, sha256: str, size: int, bar: Progress) -> None:
        sent = 0

        def body() -> Iterator[bytes]:
            nonlocal sent
            for piece in read_pieces(source):
                sent += len(piece)
                bar.advance(len(piece))
                yield piece

        try:
            self._request("PUT", f"/api/v1/blobs/{sha256}", content=body(),
                          headers={"content-length": str(size),
                                   "content-type": "application/octet-stream"},
                          expected=(200, 201))
        except RegistryError:
            bar.advance(-sent)  # a retry sends these bytes again
            raise

    def _upload_resumable(self, source: Path, sha256: str, size: int, bar: Progress,
                          chunk: int = CHUNK) -> None:
        if chunk < MIN_CHUNK:
            raise Invalid(f"upload chunks must be at least {MIN_CHUNK} bytes",
                          details={"chunk": chunk})
        state = retrying(ATTEMPTS, partial(self._start_upload, sha256, size), retry_on=TRANSIENT)
        counted = 0  # bytes reported to the progress bar so far

        def report(offset: int) -> None:
            nonlocal counted
            bar.advance(offset - counted)
            counted = offset

        failures = 0
        restarted = False
        while not state.complete:
            offset = state.offset
            report(offset)
            end = min(offset + chunk, size)
            try:
                state = UploadState.from_json(self._json(
                    "PATCH", f"/api/v1/uploads/{quote(state.upload_id)}",
                    headers={"content-range": f"bytes {offset}-{end - 1}/{size}",
                             "content-length": str(end - offset),
                             "content-type": "application/octet-stream"},
                    content=read_pieces(source, offset, end - offset),
                ))
                failures = 0
            except RESUMABLE:
                # The chunk may have been (partly) stored: ask the server where it stands.
                failures += 1
                if failures >= ATTEMPTS:
                    raise
                time.sleep(min(0.2 * 2**failures, 3.0))
                try:
                    state = retrying(ATTEMPTS, partial(self._upload_state, state.upload_id),
                                     retry_on=TRANSIENT)
                except NotFound:
                    # Finished by the failed request itself, or expired: start over once.
                    if restarted:
                        raise
                    restarted = True
                    state = self._start_upload(sha256, size)
        report(size)

    def _start_upload(self, sha256: str, size: int) -> UploadState:
        return UploadState.from_json(self._json(
            "POST", "/api/v1/uploads", json={"sha256": sha256, "size": size}, expected=(200, 201)))

    def _upload_state(self, upload_id: str) -> UploadState:
        return UploadState.from_json(self._json("GET", f"/api/v1/uploads/{quote(upload_id)}"))

    def _download(self, url_path: str, entry: FileInfo, target: Path, bar: Progress) -> bool:
        """Download one manifest entry to ``target``, verified; False if it was already there."""
        if verified_file(target, entry.sha256, entry.size):
            bar.advance(entry.size)
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        part = partial_path(target, entry.sha256)
        counted = 0

        def attempt() -> tuple[str, int]:
            nonlocal counted
            h = hashlib.sha256()
            have = part.stat().st_size if part.is_file() else 0
            if have > entry.size:
                part.unlink()
                have = 0
            if have:
                # Resuming: the bytes already on disk count towards the digest.
                for piece in read_pieces(part):
                    h.update(piece)
            bar.advance(have - counted)
            counted = have
            if have and have == entry.size:
                return h.hexdigest(), have
            headers = {"range": f"bytes={have}-"} if have else {}
            with self._stream("GET", url_path, headers=headers, expected=(200, 206)) as response:
                if response.status_code == 200 and have:
                    h, have = hashlib.sha256(), 0  # the server sent the whole file
                    bar.advance(-counted)
                    counted = 0
                # This thread reads the network; the sink's thread hashes and writes.
                with open(part, "ab" if have else "wb", buffering=0) as out, \
                        HashingSink(h, out.fileno()) as sink:
                    for piece in response.iter_bytes():
                        sink.feed(piece)
                        counted += len(piece)
                        bar.advance(len(piece))
                    digest = sink.finish()
            return digest, have + sink.size

        resumed = part.is_file() and part.stat().st_size > 0
        actual, size = retrying(ATTEMPTS, attempt, retry_on=TRANSIENT)
        if (actual != entry.sha256 or size != entry.size) and resumed:
            # The leftover partial file may have been the bad part: try once from scratch.
            part.unlink(missing_ok=True)
            actual, size = retrying(ATTEMPTS, attempt, retry_on=TRANSIENT)
        if actual != entry.sha256 or size != entry.size:
            part.unlink(missing_ok=True)
            raise digest_error(entry.path, entry.sha256, actual, size, entry.size)
        os.replace(part, target)
        return True
