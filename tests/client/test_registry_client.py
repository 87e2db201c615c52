"""The Python client against a live server (uvicorn on loopback), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from regista.client import Client, Model, Version
from regista.client._transfer import NoProgress, RichProgress, make_progress, manifest_digest, partial_path
from regista.errors import (
    Conflict,
    DigestMismatch,
    FilterSyntaxError,
    Invalid,
    MissingMetadata,
    NotFound,
    RegistryError,
    Unavailable,
)
from tests.client.conftest import CountingTransport, write_tree
from tests.conftest import free_port, sha256_hex

META = {
    "framework": "sklearn",
    "training_code": {"repository": "git@example.com:ml/fraud.git", "commit": "abc123", "dirty": False},
    "training_data": {"uri": "s3://data/fraud/2026-01", "version": "7"},
    "metrics": {"auc": 0.93, "f1": 0.71},
    "parameters": {"max_depth": 6},
}

FILES = {
    "model.safetensors": b"\x00weights" * 1000,
    "config.json": b'{"layers": 3}',
    "MODEL_CARD.md": b"# Fraud scorer\n",
    "eval_report.html": b"<html>auc 0.93</html>",
    "sub/nested/tokenizer.bin": os.urandom(4096),
    "notes.txt": b"free text",
    "empty.cfg": b"",
}


def _blob_file(data_dir: Path, digest: str) -> Path:
    return data_dir / "blobs" / "sha256" / digest[:2] / digest[2:4] / digest


def test_register_directory_then_resolve_and_pull(client: Client, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "model", FILES)
    v = client.register("Fraud.Scorer", src, metadata=META, tags={"team": "risk"},
                        aliases=["champion"], description="first", create_model=True,
                        progress=False)
    assert isinstance(v, Version)
    assert (v.model, v.version, v.ref) == ("Fraud.Scorer", 1, "Fraud.Scorer/1")
    assert v.digest == manifest_digest(v.files)
    roles = {f.path: f.role for f in v.files}
    assert roles == {
        "model.safetensors": "model", "config.json": "config", "MODEL_CARD.md": "model_card",
        "eval_report.html": "eval_report", "sub/nested/tokenizer.bin": "model", "notes.txt": "other",
        "empty.cfg": "config",
    }
    assert {f.path: f.sha256 for f in v.files} == {p: sha256_hex(b) for p, b in FILES.items()}
    assert v.metadata["metrics"] == {"auc": 0.93, "f1": 0.71}
    assert v.tags == {"team": "risk"} and v.aliases == ["champion"]
    assert v.created_at.tzinfo is not None

    for ref in ("fraud-scorer/1", "fraud_scorer@champion", "Fraud.Scorer@latest", "fraud.scorer"):
        assert client.get_version(ref).digest == v.digest
    assert client.get_version("fraud-scorer", 1).ref == "Fraud.Scorer/1"

    dest = tmp_path / "out"
    pulled = client.pull("fraud-scorer@champion", dest, progress=False)
    assert pulled.digest == v.digest
    for rel, data in FILES.items():
        assert (dest / rel).read_bytes() == data
    assert not list(dest.rglob("*.part"))

    one = client.download_file("fraud-scorer/1", "sub/nested/tokenizer.bin", tmp_path)
    assert one == tmp_path / "tokenizer.bin"
    assert one.read_bytes() == FILES["sub/nested/tokenizer.bin"]
    with pytest.raises(NotFound):
        client.download_file("fraud-scorer/1", "missing.bin", tmp_path)


def test_single_file_and_explicit_roles(client: Client, tmp_path: Path) -> None:
    f = tmp_path / "weights.dat"
    f.write_bytes(b"w" * 100)
    v = client.register("single", f, create_model=True, progress=False,
                        roles={"*.dat": "model"})
    assert [(x.path, x.role, x.size) for x in v.files] == [("weights.dat", "model", 100)]
    with pytest.raises(Invalid):
        client.register("single", f, roles={"weights.dat": "weights"}, progress=False)


def test_blobs_already_held_are_not_uploaded_again(
    client: Client, transport: CountingTransport, tmp_path: Path
) -> None:
    shared = os.urandom(10_000)
    v1 = write_tree(tmp_path / "v1", {"model.bin": shared, "config.json": b"{}"})
    client.register("dedup", v1, create_model=True, progress=False)
    assert transport.count("PUT", "/api/v1/blobs/") == 2

    transport.calls.clear()
    v2 = write_tree(tmp_path / "v2", {"model.bin": shared, "config.json": b'{"v": 2}',
                                      "copy/model.bin": shared})
    version = client.register("dedup", v2, progress=False)
    assert version.version == 2
    # Only the new config was sent: the weights (twice in the manifest) were already held.
    assert transport.count("PUT", "/api/v1/blobs/") == 1
    assert transport.count("POST", "/api/v1/blobs/check") == 1
    status = {b.sha256: b.present for b in client.check_blobs([sha256_hex(shared), "0" * 64])}
    assert status == {sha256_hex(shared): True, "0" * 64: False}


@pytest.fixture(scope="session")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 70 MiB file (over the 64 MiB resumable threshold), made once per session."""
    path = tmp_path_factory.mktemp("big") / "weights.safetensors"
    h = hashlib.sha256()
    with open(path, "wb") as f:
        block = os.urandom(1024 * 1024)
        for i in range(70):
            piece = bytes([i]) + block[1:]
            f.write(piece)
            h.update(piece)
    return path, h.hexdigest()


def test_large_file_uses_resumable_upload_and_survives_a_network_fault(
    live_server, big_file: tuple[Path, str], tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    path, digest = big_file
    patches = 0

    def fail_second_patch(request: httpx.Request, n: int) -> None:
        nonlocal patches
        if request.method == "PATCH":
            patches += 1
            if patches == 2:
                raise httpx.WriteError("injected network failure")

    transport = CountingTransport(fail=fail_second_patch)
    with Client(live_server.url, transport=transport) as client:
        v = client.register("big", path, create_model=True, progress=False)
        assert v.files[0].sha256 == digest and v.files[0].size == 70 * 1024 * 1024
        assert transport.count("PUT", "/api/v1/blobs/") == 0
        assert transport.count("POST", "/api/v1/uploads") == 1
        # 70 MiB in 16 MiB chunks is 5 PATCHes, plus the failed one; the client asked where
        # the upload stood before resuming.
        assert transport.count("PATCH", "/api/v1/uploads/") == 6
        assert transport.count("GET", "/api/v1/uploads/") == 1

        dest = tmp_path / "out"
        client.pull("big/1", dest, progress=False)
        assert (dest / path.name).stat().st_size == path.stat().st_size
        assert hashlib.sha256((dest / path.name).read_bytes()).hexdigest() == digest


def test_errors_come_back_as_the_same_classes(client: Client, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound) as nf:
        client.get_model("nope")
    assert nf.value.details == {"model": "nope"}
    client.create_model("fraud-scorer")
    with pytest.raises(Conflict):
        client.create_model("Fraud_Scorer")
    with pytest.raises(Invalid):
        client.create_model("bad name!")
    with pytest.raises(FilterSyntaxError) as fe:
        list(client.search_versions("metrics.auc >>> 1"))
    assert fe.value.position >= 0
    with pytest.raises(NotFound):
        client.get_version("fraud-scorer/9")

    src = write_tree(tmp_path / "m", {"model.pkl": b"x"})
    with pytest.raises(NotFound):
        client.register("unknown-model", src, progress=False)
    settings.required_metadata = ["training_code.commit", "training_data.uri"]
    with pytest.raises(MissingMetadata) as mm:
        client.register("fraud-scorer", src, metadata={"training_code": {"commit": "abc"}},
                        progress=False)
    assert mm.value.missing == ["training_data.uri"]
    assert mm.value.status == 422


def test_register_reads_metadata_files(client: Client, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "m", {"model.onnx": b"onnx"})
    (tmp_path / "meta.yaml").write_text("framework: onnx\nmetrics:\n  auc: 0.8\n")
    (tmp_path / "meta.json").write_text('{"framework": "torch"}')
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    v = client.register("meta", src, metadata=tmp_path / "meta.yaml", create_model=True, progress=False)
    assert v.metadata["framework"] == "onnx" and v.metrics == {"auc": 0.8}
    v2 = client.register("meta", src, metadata=str(tmp_path / "meta.json"), progress=False)
    assert v2.metadata["framework"] == "torch"
    with pytest.raises(Invalid):
        client.register("meta", src, metadata=tmp_path / "list.yaml", progress=False)
    with pytest.raises(NotFound):
        client.register("meta", src, metadata=tmp_path / "absent.yaml", progress=False)
    with pytest.raises(Invalid):  # unknown provenance field: the server names it
        client.register("meta", src, metadata={"colour": "blue"}, progress=False)


def test_register_is_idempotent(client: Client, transport: CountingTransport, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "m", {"model.pt": b"weights", "config.yaml": b"a: 1"})
    first = client.register("idem", src, metadata=META, tags={"a": "1"}, create_model=True,
                            progress=False)
    again = client.register("idem", src, metadata=META, tags={"a": "1"}, progress=False)
    assert (again.version, again.digest) == (first.version, first.digest) == (1, first.digest)
    different = client.register("idem", src, metadata=META, tags={"a": "2"}, progress=False)
    assert different.version == 2
    keyed = client.register("idem", src, idempotency_key="run-42", progress=False)
    assert client.register("idem", src, idempotency_key="run-42", progress=False).version == keyed.version
    (src / "extra.txt").write_text("new file")
    with pytest.raises(Conflict):
        client.register("idem", src, idempotency_key="run-42", progress=False)
    assert [v.version for v in client.list_versions("idem")] == [3, 2, 1]


def test_pull_detects_a_corrupt_blob_and_leaves_nothing(client: Client, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(50_000)
    src = write_tree(tmp_path / "m", {"model.bin": data, "config.json": b"{}"})
    client.register("corrupt", src, create_model=True, progress=False)
    blob = _blob_file(settings.data_dir, sha256_hex(data))
    assert blob.is_file()
    raw = bytearray(blob.read_bytes())
    raw[1000] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(raw))

    dest = tmp_path / "out"
    with pytest.raises(DigestMismatch) as exc:
        client.pull("corrupt/1", dest, progress=False)
    assert exc.value.details["path"] == "model.bin"
    assert exc.value.details["expected"] == sha256_hex(data)
    assert not (dest / "model.bin").exists()
    assert not list(dest.rglob("*.part"))


def test_pull_resumes_a_partial_download(
    client: Client, transport: CountingTransport, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    src = write_tree(tmp_path / "m", {"model.bin": data})
    client.register("resume", src, create_model=True, progress=False)
    dest = tmp_path / "out"
    dest.mkdir()
    part = partial_path((dest / "model.bin").resolve(), sha256_hex(data))
    part.write_bytes(data[:120_000])
    transport.calls.clear()
    transport.headers.clear()
    client.pull("resume/1", dest, progress=False)
    assert (dest / "model.bin").read_bytes() == data
    assert not part.exists()
    ranges = [h.get("range") for h in transport.headers if h.get("range")]
    assert ranges == ["bytes=120000-"]

    # A second pull finds the verified file in place and downloads nothing.
    transport.calls.clear()
    client.pull("resume/1", dest, progress=False)
    assert transport.count("GET", "/api/v1/models/resume/versions/1/files/") == 0

    # A partial file with wrong bytes is discarded and the download starts over.
    (dest / "model.bin").unlink()
    part.write_bytes(b"\xff" * 1000)
    client.pull("resume/1", dest, progress=False)
    assert (dest / "model.bin").read_bytes() == data


def _hostile_server(manifest_path: str) -> httpx.MockTransport:
    """A server that answers with a manifest naming a path outside the destination."""
    version = {
        "model": "evil", "version": 1, "ref": "evil/1", "digest": "0" * 64, "description": "",
        "stage": "registered", "stage_changed_at": "2026-01-01T00:00:00Z", "metadata": {},
        "tags": {}, "aliases": [], "file_count": 1, "total_size": 1, "parent": None,
        "files": [{"path": manifest_path, "sha256": "0" * 64, "size": 1,
                   "media_type": "application/octet-stream", "role": "other"}],
        "created_at": "2026-01-01T00:00:00Z", "created_by": "x", "updated_at": "2026-01-01T00:00:00Z",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/resolve":
            return httpx.Response(200, json=version)
        return httpx.Response(200, content=b"x")  # pragma: no cover - must never be asked

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "a/../../b", "a\\..\\b",
                                  "ok/%2e%2e/x", "link/inside.txt"])
def test_pull_refuses_paths_that_escape_the_destination(tmp_path: Path, path: str) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "link").symlink_to(tmp_path)  # a symlinked directory pointing outside
    with Client("http://registry.invalid", transport=_hostile_server(path)) as client, \
            pytest.raises(Invalid, match="refusing"):
        client.pull("evil/1", dest, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]


def test_models_pager_update_archive(client: Client, transport: CountingTransport, tmp_path: Path) -> None:
    for i in range(5):
        client.create_model(f"m{i}", description=f"model {i}", tags={"i": str(i)})
    transport.calls.clear()
    pager = client.list_models(page_size=2)
    assert transport.count("GET", "/api/v1/models") == 1  # the first page is fetched at once
    names = [m.name for m in pager]
    assert sorted(names) == [f"m{i}" for i in range(5)] and len(names) == 5
    assert transport.count("GET", "/api/v1/models") == 3
    assert len(list(client.list_models(limit=3))) == 3
    assert [m.name for m in client.search_models('tags.i = "3"')] == ["m3"]

    m = client.update_model("m1", description="changed", owner_team="risk", tags={"x": "y"})
    assert isinstance(m, Model)
    assert (m.description, m.owner_team, m.tags) == ("changed", "risk", {"x": "y"})
    assert client.update_model("m1", description="again").tags == {"x": "y"}
    archived = client.archive_model("m1")
    assert archived.archived and client.get_model("M1").archived
    src = write_tree(tmp_path / "m", {"model.pkl": b"x"})
    with pytest.raises(Conflict):
        client.register("m1", src, progress=False)


def test_versions_aliases_and_history(client: Client, tmp_path: Path) -> None:
    for i in range(3):
        src = write_tree(tmp_path / f"v{i}", {"model.pkl": f"v{i}".encode()})
        client.register("alias-model", src, create_model=True, progress=False,
                        metadata={"metrics": {"auc": 0.7 + i / 10}})
    e = client.set_alias("alias-model", "champion", 1)
    assert (e.alias, e.version) == ("champion", 1)
    before_move = datetime.now(UTC)
    client.set_alias("alias-model", "champion", 3)
    assert client.get_alias("alias-model", "champion").version == 3
    assert client.get_alias("alias-model", "champion", as_of=before_move).version == 1
    assert client.get_version("alias-model@champion", as_of=before_move.isoformat()).version == 1

    updated = client.update_version("alias-model@champion", description="best", tags={"k": "v"})
    assert (updated.version, updated.description, updated.tags) == (3, "best", {"k": "v"})
    assert client.get_model("alias-model").aliases == {"champion": 3}

    client.delete_alias("alias-model", "champion")
    with pytest.raises(NotFound):
        client.get_alias("alias-model", "champion")
    history = client.alias_history("alias-model")
    assert [(h.alias, h.version) for h in history] == [("champion", None), ("champion", 3),
                                                        ("champion", 1)]
    assert len(client.alias_history("alias-model", "champion", limit=1)) == 1

    found = client.search_versions("metrics.auc > 0.85")
    assert [v.ref for v in found] == ["alias-model/3"]
    assert [v.version for v in client.list_versions("alias-model", page_size=1, limit=2)] == [3, 2]


def test_url_and_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"version": "9", "database": "sqlite", "blob_store": "local",
                                         "auth_mode": "tokens"})

    monkeypatch.setenv("REGISTA_URL", "http://registry.example:9000/")
    monkeypatch.setenv("REGISTA_TOKEN", "secret-token")
    with Client(transport=httpx.MockTransport(handler)) as client:
        assert client.url == "http://registry.example:9000"
        assert client.info().auth_mode == "tokens"
    assert seen[0].headers["authorization"] == "Bearer secret-token"
    assert str(seen[0].url) == "http://registry.example:9000/api/v1/info"
    with Client("http://other:1", token="explicit", transport=httpx.MockTransport(handler)) as client:
        client.info()
    assert seen[1].headers["authorization"] == "Bearer explicit"


def test_non_json_errors_and_unreachable_servers() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        status = 502 if request.url.path.endswith("/info") else 418
        return httpx.Response(status, text="<html>not json</html>")

    with Client("http://proxy", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(Unavailable) as unavailable:
            client.info()
        assert "502" in unavailable.value.message
        with pytest.raises(RegistryError) as other:
            client.get_model("m")
        assert type(other.value) is RegistryError and other.value.details == {"status": 418}
    with Client(f"http://127.0.0.1:{free_port()}", timeout=2) as client, pytest.raises(Unavailable):
        client.info()


def test_progress_bar_renders_without_a_terminal() -> None:
    bar = RichProgress()
    bar.start("uploading", 100)
    bar.advance(60)
    bar.start("again", 10)
    bar.advance(10)
    bar.stop()
    assert isinstance(make_progress(True), NoProgress)  # pytest's stderr is not a terminal
    assert isinstance(make_progress(False), NoProgress)
