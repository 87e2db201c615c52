"""The ``regista`` CLI against a live server: every registry command, text and --json."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from regista.cli.main import app
from tests.conftest import free_port, sha256_hex

Run = Callable[..., Result]


@pytest.fixture
def run(live_server) -> Run:  # type: ignore[no-untyped-def]
    """Invoke ``regista --url <live server> ARGS…``; check the exit code (0 unless told)."""
    runner = CliRunner()

    def invoke(*args: str, code: int = 0, url: str | None = None,
               env: dict[str, str | None] | None = None) -> Result:
        result = runner.invoke(app, ["--url", url or live_server.url, *args],
                               env={"REGISTA_TOKEN": None, **(env or {})})
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        if code == 0:
            assert result.stderr == ""
        return result

    return invoke


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "model.safetensors").write_bytes(os.urandom(2000))
    (root / "sub" / "config.yaml").write_text("layers: 3\n")
    (root / "MODEL_CARD.md").write_text("# Card\n")
    return root


@pytest.fixture
def metadata_file(tmp_path: Path) -> Path:
    path = tmp_path / "provenance.yaml"
    path.write_text(
        "framework: sklearn\n"
        "training_code: {repository: git@example.com:ml/fraud.git, commit: abc123}\n"
        "metrics: {auc: 0.91}\n"
    )
    return path


def test_models_commands(run: Run) -> None:
    out = run("models", "create", "Fraud.Scorer", "--description", "scores fraud",
              "--owner-team", "risk", "--tag", "domain=payments", "--json")
    created = as_json(out)
    assert (created["name"], created["normalized_name"], created["tags"]) == (
        "Fraud.Scorer", "fraud-scorer", {"domain": "payments"})
    assert run("models", "create", "other").stdout.strip() == "created model other"

    listed = as_json(run("models", "list", "--json"))
    assert sorted(m["name"] for m in listed) == ["Fraud.Scorer", "other"]
    assert len(as_json(run("models", "list", "--limit", "1", "--json"))) == 1
    filtered = as_json(run("models", "list", "--filter", "tags.domain = 'payments'", "--json"))
    assert [m["name"] for m in filtered] == ["Fraud.Scorer"]
    text = run("models", "list").stdout
    assert "NAME" in text and "Fraud.Scorer" in text and "other" in text

    shown = run("models", "show", "fraud_scorer").stdout
    assert "name:" in shown and "Fraud.Scorer" in shown and "domain=payments" in shown
    assert as_json(run("models", "show", "fraud-scorer", "--json"))["owner_team"] == "risk"

    updated = as_json(run("models", "update", "fraud-scorer", "--description", "new",
                          "--tag", "tier=gold", "--untag", "domain", "--json"))
    assert (updated["description"], updated["tags"]) == ("new", {"tier": "gold"})
    assert run("models", "update", "other", "--risk-tier", "high").stdout.strip() == "updated model other"

    assert as_json(run("models", "archive", "other", "--json"))["archived"] is True
    assert run("models", "archive", "other").stdout.strip() == "archived model other"


def test_register_versions_and_pull(run: Run, model_dir: Path, metadata_file: Path,
                                    tmp_path: Path) -> None:
    out = run("register", "fraud", str(model_dir), "--metadata", str(metadata_file),
              "--alias", "champion", "--tag", "run=1", "--description", "first",
              "--create-model", "--no-progress")
    line = out.stdout.strip()
    assert line.startswith("registered fraud/1 (version 1) digest ")
    digest = line.rsplit(" ", 1)[1]
    assert len(digest) == 64

    (model_dir / "extra.txt").write_text("v2")
    v2 = as_json(run("register", "fraud", str(model_dir), "--metadata", str(metadata_file),
                     "--role", "*.txt=eval_report", "--json"))
    assert v2["version"] == 2
    assert {f["path"]: f["role"] for f in v2["files"]} == {
        "MODEL_CARD.md": "model_card", "extra.txt": "eval_report",
        "model.safetensors": "model", "sub/config.yaml": "config"}

    versions = as_json(run("versions", "list", "fraud", "--json"))
    assert [v["version"] for v in versions] == [2, 1]
    assert "fraud/2" in run("versions", "list", "fraud").stdout
    shown = as_json(run("versions", "show", "fraud@champion", "--json"))
    assert (shown["version"], shown["digest"], shown["metadata"]["metrics"]) == (1, digest, {"auc": 0.91})
    text = run("versions", "show", "fraud/1").stdout
    assert digest in text and "sub/config.yaml" in text and "auc=0.91" in text

    upd = as_json(run("versions", "update", "fraud@latest", "--description", "second",
                      "--tag", "k=v", "--json"))
    assert (upd["version"], upd["description"], upd["tags"]) == (2, "second", {"k": "v"})
    assert run("versions", "update", "fraud/2", "--untag", "k").stdout.strip() == "updated fraud/2"
    assert as_json(run("versions", "show", "fraud/2", "--json"))["tags"] == {}

    dest = tmp_path / "pulled"
    out = run("pull", "fraud@champion", str(dest), "--no-progress")
    assert "pulled fraud/1: 3 files" in out.stdout and "verified" in out.stdout
    for rel in ("model.safetensors", "sub/config.yaml", "MODEL_CARD.md"):
        assert (dest / rel).read_bytes() == (model_dir / rel).read_bytes()
    pulled = as_json(run("pull", "fraud/2", str(tmp_path / "p2"), "--json"))
    assert pulled["digest"] == v2["digest"] and len(pulled["files"]) == 4
    one = as_json(run("pull", "fraud/2", str(tmp_path / "one"), "--file", "extra.txt", "--json"))
    assert one["sha256"] == sha256_hex(b"v2")
    assert (tmp_path / "one" / "extra.txt").read_text() == "v2"


def test_alias_search_and_info(run: Run, model_dir: Path, tmp_path: Path) -> None:
    for auc in ("0.8", "0.95"):
        meta = tmp_path / f"m{auc}.json"
        meta.write_text(json.dumps({"metrics": {"auc": float(auc)}}))
        (model_dir / "auc.txt").write_text(auc)
        run("register", "scorer", str(model_dir), "--metadata", str(meta), "--create-model",
            "--no-progress")

    assert run("alias", "set", "scorer", "champion", "1").stdout.strip() == "scorer@champion → 1"
    moved = as_json(run("alias", "set", "scorer", "champion", "2", "--json"))
    assert (moved["alias"], moved["version"]) == ("champion", 2)
    assert as_json(run("alias", "show", "scorer", "champion", "--json"))["version"] == 2
    assert "scorer/2" in run("alias", "show", "scorer", "champion").stdout
    history = as_json(run("alias", "history", "scorer", "--json"))
    assert [(h["alias"], h["version"]) for h in history] == [("champion", 2), ("champion", 1)]
    first_move = history[1]["at"]
    as_of = as_json(run("versions", "show", "scorer@champion", "--as-of", first_move, "--json"))
    assert as_of["version"] == 1
    assert run("alias", "delete", "scorer", "champion").stdout.strip() == "deleted scorer@champion"
    assert "(deleted)" in run("alias", "history", "scorer", "--alias", "champion").stdout

    found = as_json(run("search", "versions", "metrics.auc > 0.9", "--json"))
    assert [v["ref"] for v in found] == ["scorer/2"]
    ordered = as_json(run("search", "versions", "metrics.auc > 0.5", "--order-by", "metrics.auc asc",
                          "--limit", "1", "--json"))
    assert [v["version"] for v in ordered] == [1]
    assert "scorer/2" in run("search", "versions", "metrics.auc > 0.9").stdout
    assert [m["name"] for m in as_json(run("search", "models", "name = 'scorer'", "--json"))] == ["scorer"]
    assert "no models" in run("search", "models", "name = 'nothing'").stdout

    info = as_json(run("info", "--json"))
    assert info["database"] in ("sqlite", "postgresql") and info["url"].startswith("http://127.0.0.1")
    assert "server version:" in run("info").stdout


def test_errors_are_one_line_on_stderr_with_a_nonzero_exit(
    run: Run, model_dir: Path, metadata_file: Path, settings, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    err = run("models", "show", "missing", code=1)
    assert err.stdout == ""
    assert err.stderr.splitlines()[0] == "error: not_found: model 'missing' not found"
    assert "Traceback" not in err.stderr

    run("models", "create", "dup")
    assert run("models", "create", "DUP", code=1).stderr.startswith("error: conflict: ")
    assert run("versions", "show", "dup/7", code=1).stderr.startswith("error: not_found: ")
    bad_filter = run("search", "versions", "metrics.auc >>> 1", code=1).stderr
    assert bad_filter.startswith("error: filter_syntax: ") and "position:" in bad_filter
    assert run("register", "nomodel", str(model_dir), "--no-progress", code=1).stderr.startswith(
        "error: not_found: ")
    assert run("register", "dup", str(tmp_path / "absent"), code=1).stderr.startswith(
        "error: not_found: no file or directory")
    assert run("register", "dup", str(model_dir), "--metadata", str(tmp_path / "no.yaml"),
               code=1).stderr.startswith("error: not_found: metadata file")

    settings.required_metadata = ["training_data.uri"]
    missing = run("register", "dup", str(model_dir), "--metadata", str(metadata_file), code=1).stderr
    assert missing.startswith("error: missing_metadata: ")
    assert '  missing: ["training_data.uri"]' in missing

    usage = run("register", "dup", str(model_dir), "--tag", "no-equals-sign", code=2)
    assert "KEY=VALUE" in usage.stderr
    down = run("info", code=1, url=f"http://127.0.0.1:{free_port()}")
    assert down.stderr.startswith("error: unavailable: cannot reach the registry")


def test_url_comes_from_the_environment(live_server) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["info", "--json"], env={"REGISTA_URL": live_server.url})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["url"] == live_server.url


def test_pull_refuses_a_corrupt_file(run: Run, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(10_000)
    src = tmp_path / "m"
    src.mkdir()
    (src / "model.bin").write_bytes(data)
    run("register", "c", str(src), "--create-model", "--no-progress")
    digest = sha256_hex(data)
    blob = settings.data_dir / "blobs" / "sha256" / digest[:2] / digest[2:4] / digest
    blob.chmod(0o644)
    blob.write_bytes(b"X" + data[1:])
    err = run("pull", "c/1", str(tmp_path / "out"), code=1).stderr
    assert err.startswith("error: digest_mismatch: downloaded 'model.bin' does not match")
    assert f"  expected: {digest}" in err
    assert not (tmp_path / "out" / "model.bin").exists()
