"""Observed state against recorded state: the drift report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from regista.service.audit import iso
from tests.api.helpers import error_of, register
from tests.conftest import sha256_hex


def _observe(api, env: str, digest: str, instance: str = "", at: datetime | None = None):  # type: ignore[no-untyped-def]
    body = {"environment": env, "digest": digest, "instance": instance}
    if at is not None:
        body["at"] = iso(at)
    r = api.post("/api/v1/observations", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_drift_report(api):
    for i, name in enumerate(("fraud", "fraud", "churn", "credit", "other")):
        register(api, name, {"model.bin": f"{name} weights {i}".encode()})
    digest = {f"{v['model']}/{v['version']}": v["digest"]
              for v in api.get("/api/v1/versions", params={"page_size": 100}).json()["items"]}
    for env in ("dev", "quiet"):
        assert api.post("/api/v1/environments", json={"name": env, "min_stage": "registered"}
                        ).status_code == 201
    for ref in ("fraud/2", "churn/1", "credit/1"):
        assert api.post("/api/v1/deployments", json={"ref": ref, "environment": "dev"}
                        ).status_code == 201
    stray = sha256_hex(b"something nobody registered")
    _observe(api, "dev", digest["fraud/1"], "pod-a")       # mismatch: fraud/2 is recorded
    _observe(api, "dev", digest["churn/1"], "pod-b")       # in sync
    _observe(api, "dev", digest["churn/1"], "pod-c")
    _observe(api, "dev", stray, "pod-d")                   # unregistered
    _observe(api, "dev", digest["other/1"], "pod-e")       # registered, never recorded here
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    _observe(api, "dev", digest["credit/1"], "pod-f", at=two_hours_ago)  # too old by default

    r = api.get("/api/v1/drift")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["window_seconds"] == 3600 and report["in_sync"] is False
    envs = {e["environment"]: e for e in report["environments"]}
    assert envs["quiet"]["in_sync"] is True and envs["quiet"]["drift"] == []
    dev = envs["dev"]
    assert dev["in_sync"] is False
    assert {d["ref"] for d in dev["recorded"]} == {"fraud/2", "churn/1", "credit/1"}
    kinds = {(d["kind"], d["model"], d["version"]) for d in dev["drift"]}
    assert kinds == {
        ("mismatch", "fraud", 1),
        ("unregistered", None, None),
        ("unrecorded", "other", 1),
        ("not_observed", "credit", 1),
    }
    mismatch = next(d for d in dev["drift"] if d["kind"] == "mismatch")
    assert mismatch["expected_version"] == 2 and mismatch["expected_digest"] == digest["fraud/2"]
    assert mismatch["instances"] == ["pod-a"] and mismatch["digest"] == digest["fraud/1"]
    unreg = next(d for d in dev["drift"] if d["kind"] == "unregistered")
    assert unreg["digest"] == stray and unreg["instances"] == ["pod-d"]
    churn = next(o for o in dev["observed"] if o["digest"] == digest["churn/1"])
    assert churn["instances"] == ["pod-b", "pod-c"] and churn["versions"] == ["churn/1"]

    # A wider freshness window sees the old report of credit/1.
    wide = api.get("/api/v1/drift", params={"environment": "dev", "window": 3 * 3600}).json()
    assert [e["environment"] for e in wide["environments"]] == ["dev"]
    assert ("not_observed", "credit", 1) not in {
        (d["kind"], d["model"], d["version"]) for d in wide["environments"][0]["drift"]}

    # Bring dev back in line: deploy what is observed, stop what is not there.
    assert api.post("/api/v1/deployments", json={"ref": "fraud/1", "environment": "dev"}
                    ).status_code == 201
    assert api.post("/api/v1/deployments", json={"ref": "other/1", "environment": "dev"}
                    ).status_code == 201
    assert api.post("/api/v1/deployments/end", json={"model": "credit", "environment": "dev"}
                    ).status_code == 201
    left = api.get("/api/v1/drift", params={"environment": "dev"}).json()["environments"][0]
    assert [d["kind"] for d in left["drift"]] == ["unregistered"]


def test_observation_bad_input(api):
    assert api.post("/api/v1/environments", json={"name": "dev", "min_stage": "registered"}
                    ).status_code == 201
    good = sha256_hex(b"x")
    cases = [
        ({"environment": "dev", "digest": "abc"}, 400),
        ({"environment": "dev", "digest": good.upper()}, 400),
        ({"environment": "nowhere", "digest": good}, 404),
        ({"environment": "dev", "digest": good, "at": iso(datetime.now(UTC) + timedelta(hours=1))}, 422),
        ({"environment": "dev", "digest": good, "at": "2026-01-01"}, 422),
        ({"environment": "dev", "digest": good, "instance": "x" * 300}, 422),
        ({"environment": "dev", "digest": good, "instance": "tab\there"}, 422),
        ({"environment": "dev"}, 422),
    ]
    for body, status in cases:
        r = api.post("/api/v1/observations", json=body)
        assert r.status_code == status, (body, r.text)
        error_of(r)
    assert api.get("/api/v1/drift", params={"window": 0}).status_code == 422
    assert api.get("/api/v1/drift", params={"environment": "nowhere"}).status_code == 404
    # Within the allowed clock skew a report slightly ahead of the server is accepted.
    soon = datetime.now(UTC) + timedelta(seconds=2)
    assert _observe(api, "dev", good, at=soon)["observed_at"].startswith(iso(soon)[:19])
