"""``regista audit …`` and the client's audit methods against a live server."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import sqlalchemy as sa
from typer.testing import CliRunner

from regista.cli.main import app
from regista.client import Client
from regista.store.sql.tables import audit_events
from tests.audit.helpers import make_events


def _run(url: str, *args: str, code: int = 0):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["--url", url, *args], env={"REGISTA_TOKEN": None})
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result


def test_client_audit_methods(live_server, services, local_actor):
    make_events(services, local_actor, 5)
    with Client(live_server.url) as rc:
        events = list(rc.audit_events(page_size=2))
        assert [e.seq for e in events] == [5, 4, 3, 2, 1]
        assert [e.seq for e in rc.audit_events(oldest_first=True, limit=2)] == [1, 2]
        assert [e.model for e in rc.audit_events(model="m3")] == ["m3"]
        lines = b"".join(rc.audit_export(action="model.create")).splitlines()
        assert [orjson.loads(x)["seq"] for x in lines] == [1, 2, 3, 4, 5]
        cp = rc.audit_checkpoint()
        assert cp.seq == 5 and rc.audit_checkpoints() == [cp]
        result = rc.audit_verify([{"seq": cp.seq, "hash": cp.hash}])
        assert result.ok and result.events == 5 and result.first_bad_seq is None
        bad = rc.audit_verify([{"seq": 5, "hash": "0" * 64}], use_stored_checkpoints=False)
        assert (bad.ok, bad.first_bad_seq, bad.first_bad_reason) == (False, 5, "checkpoint_mismatch")


def test_audit_cli(live_server, services, local_actor, tmp_path: Path):
    url = live_server.url
    make_events(services, local_actor, 6)
    out = _run(url, "audit", "verify")
    assert out.stdout.startswith("ok: 6 events verified")
    listed = _run(url, "audit", "list", "--action", "model.create", "--limit", "3")
    assert "model.create" in listed.stdout and "m5" in listed.stdout and "m2" not in listed.stdout
    assert len(json.loads(_run(url, "audit", "list", "--model", "m1", "--json").stdout)) == 1

    cps = tmp_path / "checkpoints.jsonl"
    line = _run(url, "audit", "checkpoint", "--append-to", str(cps)).stdout
    assert orjson.loads(line)["seq"] == 6 and cps.read_text() == line
    assert _run(url, "audit", "checkpoint", "--all").stdout == line

    export = tmp_path / "audit.jsonl"
    assert "6 events written" in _run(url, "audit", "export", "-o", str(export)).stdout
    assert len(export.read_bytes().splitlines()) == 6
    stdout_export = _run(url, "audit", "export").stdout
    assert stdout_export.encode() == export.read_bytes()
    offline = _run(url, "audit", "verify", "--file", str(export), "--checkpoints", str(cps))
    assert offline.stdout.startswith("ok: 6 events verified")

    # A cut export fails offline against the checkpoint; an edited one names the event.
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(export.read_bytes().splitlines(keepends=True)[:4]))
    failed = _run(url, "audit", "verify", "--file", str(cut), "--checkpoints", str(cps), code=1)
    assert "event 5: truncated" in failed.stderr
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(export.read_bytes().replace(b'"m2"', b'"m9"'))
    assert "event 3: edited" in _run(url, "audit", "verify", "--file", str(edited), code=1).stderr

    # Tampering in the database: verify exits 1 and names the event; --json keeps the body.
    with services.db.engine.begin() as conn:
        conn.execute(sa.delete(audit_events).where(audit_events.c.seq == 2))
    failed = _run(url, "audit", "verify", code=1)
    assert "event 2: deleted" in failed.stderr
    body = json.loads(_run(url, "audit", "verify", "--json", code=1).stdout)
    assert body["first_bad"]["seq"] == 2 and body["ok"] is False
    # A checkpoint verifies what was appended since the last one, and refuses a bad tail.
    services.registry.create_model(local_actor, "later")
    with services.db.engine.begin() as conn:
        conn.execute(sa.update(audit_events).where(audit_events.c.seq == 7).values(actor="eve"))
    refused = _run(url, "audit", "checkpoint", code=1)
    assert "error: conflict" in refused.stderr and "edited at event 7" in refused.stderr

    bad_cps = tmp_path / "bad.jsonl"
    bad_cps.write_text("not json\n")
    assert _run(url, "audit", "verify", "--checkpoints", str(bad_cps), code=2)
