"""``regista hygiene`` and the client's hygiene calls against a live server."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from regista.cli.main import app
from regista.client import Client
from tests.hygiene.helpers import DAY, age_blob, blob_row, corrupt, put_blob, register


def _run(url: str, *args: str, code: int = 0):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["--url", url, *args], env={"REGISTA_TOKEN": None})
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result


def test_cli_report_gc_verify(live_server, services):
    url = live_server.url
    version = register(services, "fraud", b"weights", b"config")
    orphan = put_blob(services, b"left behind")
    age_blob(services, orphan, 3 * DAY)

    text = _run(url, "hygiene", "report").stdout
    assert "orphaned blobs:" in text and "1 (11 B)" in text and "last verification: never" in text
    body = json.loads(_run(url, "hygiene", "report", "--json", "--limit", "3").stdout)
    assert body["orphaned_blobs"]["count"] == 1

    dry = _run(url, "hygiene", "gc", "--dry-run").stdout
    assert dry.startswith("would remove 1 orphaned blob(s)")
    assert blob_row(services, orphan) is not None
    # A grace longer than the orphan's age keeps it.
    kept = json.loads(_run(url, "hygiene", "gc", "--grace", str(7 * 86400), "--json").stdout)
    assert kept["blobs"] == 0 and blob_row(services, orphan) is not None
    assert _run(url, "hygiene", "gc").stdout.startswith("removed 1 orphaned blob(s)")
    assert blob_row(services, orphan) is None

    ok = _run(url, "hygiene", "verify-blobs", "--limit", "10").stdout
    assert ok.startswith("checked 2 blob(s): 2 ok, 0 missing, 0 corrupt")
    corrupt(services, version.files[1].digest)
    bad = _run(url, "hygiene", "verify-blobs", code=1)
    assert "1 corrupt" in bad.stdout
    assert f"corrupt: {version.files[1].digest} (fraud/1)" in bad.stderr
    as_json = _run(url, "hygiene", "verify-blobs", "--json", code=1)
    assert json.loads(as_json.stdout)["corrupt"][0]["digest"] == version.files[1].digest
    assert "Missing or corrupt blobs:" in _run(url, "hygiene", "report").stdout

    assert "--limit" in _run(url, "hygiene", "report", "--limit", "0", code=2).stderr


def test_client(live_server, services):
    register(services, "fraud", b"weights")
    orphan = put_blob(services, b"orphan bytes")
    age_blob(services, orphan, 2 * DAY)
    with Client(live_server.url) as rc:
        report = rc.hygiene_report(limit=5)
        assert (report.orphaned_blobs, report.orphaned_bytes) == (1, len(b"orphan bytes"))
        assert report.verification_failures == 0 and "stale_uploads" in report.raw
        dry = rc.hygiene_gc(dry_run=True)
        assert dry.dry_run and dry.blobs == 1 and dry.audit_seq is None
        done = rc.hygiene_gc(grace_seconds=3600)
        assert (done.blobs, done.digests) == (1, [orphan]) and done.audit_seq is not None
        checked = rc.hygiene_verify_blobs(older_than_seconds=0)
        assert (checked.checked, checked.failed) == (1, False)
