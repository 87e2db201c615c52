"""``regista deploy|deployments|observe`` and the client's deployment methods, live server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from regista.cli.main import app
from regista.client import Client
from regista.errors import Conflict
from regista.service.audit import iso
from tests.api.helpers import register
from tests.conftest import sha256_hex


def _run(url: str, *args: str, code: int = 0):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["--url", url, *args], env={"REGISTA_TOKEN": None})
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result


def test_client_deployment_methods(live_server, api):
    register(api, "fraud", {"model.bin": b"f1"})
    register(api, "fraud", {"model.bin": b"f2"}, aliases=["champion"])
    with Client(live_server.url) as rc:
        env = rc.ensure_environment("dev", "registered", "developers")
        assert (env.name, env.min_stage) == ("dev", "registered")
        assert "dev" in {e.name for e in rc.environments()}
        t0 = datetime.now(UTC) - timedelta(hours=2)
        first = rc.record_deployment("fraud/1", "dev", at=t0, note="canary")
        assert (first.kind, first.version, first.note) == ("deploy", 1, "canary")
        second = rc.record_deployment("fraud@champion", "dev", at=t0 + timedelta(hours=1))
        assert (second.version, second.previous_version) == (2, 1)
        assert [d.ref for d in rc.deployed_at("dev", t0)] == ["fraud/1"]
        assert [d.ref for d in rc.deployed_at("dev")] == ["fraud/2"]
        answer = rc.served("dev", "fraud", iso(t0 + timedelta(minutes=1)))
        assert answer.serving and answer.version == 1 and answer.since == t0
        assert [e.version for e in rc.timeline("dev", oldest_first=True)] == [1, 2]
        assert [e.version for e in rc.model_deployments("fraud")] == [2, 1]
        spans = rc.version_deployments("fraud", 1)
        assert [(s.start, s.end) for s in spans] == [(t0, t0 + timedelta(hours=1))]
        try:
            rc.record_deployment("fraud/1", "dev", at=t0)
        except Conflict as exc:
            assert exc.details["rule"] == "append_only"
        else:
            raise AssertionError("a backdated deployment was accepted")
        digest = rc.get_version("fraud/2").digest
        seen = rc.observe("dev", digest, instance="pod-1")
        assert seen.digest == digest and seen.instance == "pod-1"
        report = rc.drift("dev")
        assert report.in_sync and report.environments[0]["environment"] == "dev"
        ended = rc.end_deployment("fraud", "dev")
        assert (ended.kind, ended.version, ended.previous_version) == ("end", None, 2)
        assert rc.drift("dev", window_seconds=60).in_sync is False  # observed, not recorded


def test_deployments_cli(live_server, api):
    url = live_server.url
    register(api, "fraud", {"model.bin": b"f1"})
    register(api, "fraud", {"model.bin": b"f2"})
    assert api.post("/api/v1/environments", json={"name": "dev", "min_stage": "registered"}
                    ).status_code == 201
    t0 = datetime.now(UTC) - timedelta(hours=3)
    out = _run(url, "deploy", "record", "fraud/1", "dev", "--at", iso(t0), "--note", "first")
    assert out.stdout.startswith("fraud/1 in dev from ")
    event = json.loads(_run(url, "deploy", "record", "fraud/2", "dev", "--json").stdout)
    assert event["version"] == 2 and event["previous_version"] == 1

    table = _run(url, "deployments", "at", "dev", "--time", iso(t0 + timedelta(minutes=1)))
    assert "fraud" in table.stdout and " 1 " in table.stdout
    now = json.loads(_run(url, "deployments", "at", "dev", "--json").stdout)
    assert [d["ref"] for d in now] == ["fraud/2"]
    empty = _run(url, "deployments", "at", "dev", "--time", iso(t0 - timedelta(days=1)))
    assert "nothing served in dev" in empty.stdout
    served = _run(url, "deployments", "served", "dev", "fraud", "-t", iso(t0))
    assert "fraud/1" in served.stdout and "recorded by" in served.stdout
    assert "was not serving" in _run(url, "deployments", "served", "dev", "fraud", "-t",
                                     iso(t0 - timedelta(seconds=1))).stdout
    timeline = _run(url, "deployments", "timeline", "dev", "--json")
    assert [e["version"] for e in json.loads(timeline.stdout)] == [2, 1]
    spans = json.loads(_run(url, "deployments", "version", "fraud/1", "--json").stdout)
    assert len(spans) == 1 and spans[0]["end"] is not None
    register(api, "fraud", {"model.bin": b"f3"})
    assert "fraud/3 never served" in _run(url, "deployments", "version", "fraud@latest").stdout

    digest = api.get("/api/v1/models/fraud/versions/2").json()["digest"]
    assert "observed" in _run(url, "observe", "dev", digest, "--instance", "pod-a").stdout
    assert "in sync" in _run(url, "deployments", "drift", "--env", "dev").stdout
    stray = sha256_hex(b"unknown")
    _run(url, "observe", "dev", stray)
    drift = _run(url, "deployments", "drift", code=1)
    assert "unregistered" in drift.stdout
    body = json.loads(_run(url, "deployments", "drift", "--json", code=1).stdout)
    assert body["in_sync"] is False

    ended = _run(url, "deploy", "end", "fraud", "dev")
    assert "fraud (ended) in dev" in ended.stdout
    refused = _run(url, "deploy", "end", "fraud", "dev", code=1)
    assert "not serving" in refused.stderr
    future = _run(url, "deploy", "record", "fraud/1", "dev", "--at",
                  iso(datetime.now(UTC) + timedelta(days=1)), code=1)
    assert "future" in future.stderr
