"""The audit log over HTTP: list with filters and pagination, export, verify, checkpoints."""

from __future__ import annotations

import orjson
import sqlalchemy as sa

from regista.service import audit
from regista.store.sql.tables import audit_events
from tests.api.helpers import error_of, register


def _changes(api) -> None:  # type: ignore[no-untyped-def]
    """A small history: 2 models, 3 versions, alias moves, an edit."""
    register(api, "fraud", {"model.bin": b"f1"})                  # model.create + version.register
    register(api, "fraud", {"model.bin": b"f2"}, aliases=["champion"])  # register + alias.set
    register(api, "churn", {"model.bin": b"c1"})                  # model.create + version.register
    r = api.patch("/api/v1/models/fraud", json={"description": "scores fraud"})
    assert r.status_code == 200, r.text
    r = api.put("/api/v1/models/fraud/aliases/champion", json={"version": 1})
    assert r.status_code in (200, 201), r.text


def _all(api, **params):  # type: ignore[no-untyped-def]
    items, cursor = [], None
    while True:
        q = dict(params, page_size=2, **({"cursor": cursor} if cursor else {}))
        r = api.get("/api/v1/audit/events", params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= 2
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_list_pages_newest_first_and_filters(api):
    _changes(api)
    events = _all(api)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs, reverse=True) and seqs[-1] == 1
    assert len(seqs) == len(set(seqs)) == seqs[0]
    assert set(events[0]) == {"seq", "at", "actor", "action", "outcome", "model", "version",
                              "target", "request_id", "before", "after", "prev_hash", "hash"}

    asc = _all(api, order="asc")
    assert [e["seq"] for e in asc] == sorted(seqs)

    fraud = _all(api, model="Fraud")  # names are matched by their normal form
    assert fraud and all(e["model"] == "fraud" for e in fraud)
    assert {e["action"] for e in fraud} >= {"model.create", "version.register", "alias.set",
                                            "model.update"}
    v2 = _all(api, model="fraud", version=2)
    assert v2 and all(e["version"] == 2 for e in v2)
    regs = _all(api, action="version.register")
    assert [e["model"] for e in regs] == ["churn", "fraud", "fraud"]
    family = _all(api, action="alias.*")
    assert family and all(e["action"].startswith("alias.") for e in family)
    assert _all(api, actor="local") == events
    assert _all(api, actor="nobody") == []
    assert _all(api, outcome="ok") == events

    middle = events[len(events) // 2]
    since = _all(api, since=middle["at"])
    assert since and all(e["at"] >= middle["at"] for e in since)
    until = _all(api, until=middle["at"])
    assert until and all(e["at"] < middle["at"] for e in until)
    assert {e["seq"] for e in since} | {e["seq"] for e in until} == set(seqs)


def test_list_bad_input(api):
    _changes(api)
    for params, status, field in [
        ({"version": 2}, 422, "version"),
        ({"since": "2026-01-01T00:00:00"}, 422, "since"),
        ({"until": "yesterday"}, 422, "until"),
        ({"outcome": "maybe"}, 422, "outcome"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, 422, "until"),
        ({"model": "bad name!"}, 422, None),
        ({"cursor": "not-a-cursor"}, 400, "cursor"),
        ({"page_size": 0}, 422, None),
    ]:
        r = api.get("/api/v1/audit/events", params=params)
        assert r.status_code == status, (params, r.text)
        err = error_of(r)
        if field:
            assert field in err["message"] or err["details"].get("field") == field, err
    # A cursor of one order is refused by the other.
    first = api.get("/api/v1/audit/events", params={"page_size": 1}).json()
    r = api.get("/api/v1/audit/events", params={"order": "asc", "cursor": first["next_cursor"]})
    assert r.status_code == 400


def test_export_is_json_lines_that_verify_offline(api):
    _changes(api)
    r = api.get("/api/v1/audit/export")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(x) for x in r.content.splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
    # Every line carries what it takes to recompute the chain without the server.
    prev = audit.GENESIS
    for e in lines:
        from datetime import datetime

        at = datetime.fromisoformat(e["at"].replace("Z", "+00:00"))
        payload = audit.canonical(e["seq"], at, e["actor"], e["action"], e["outcome"], e["model"],
                                  e["version"], e["target"], e["request_id"], e["before"],
                                  e["after"])
        assert e["prev_hash"] == prev
        assert audit.chain_hash(prev, payload) == e["hash"]
        prev = e["hash"]
    filtered = api.get("/api/v1/audit/export", params={"model": "churn"})
    assert {orjson.loads(x)["model"] for x in filtered.content.splitlines()} == {"churn"}
    assert api.get("/api/v1/audit/export", params={"since": "garbage"}).status_code == 422


def test_export_streams_in_chunks(services, local_actor, api, monkeypatch):
    monkeypatch.setattr(audit, "EXPORT_CHUNK", 3)
    for i in range(7):
        services.registry.create_model(local_actor, f"m{i}")
    lines = api.get("/api/v1/audit/export").content.splitlines()
    assert [orjson.loads(x)["seq"] for x in lines] == list(range(1, 8))


def test_verify_endpoint(api, services):
    _changes(api)
    r = api.post("/api/v1/audit/verify")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["first_bad"] is None
    assert body["head"]["seq"] == body["events"] > 0
    with services.db.engine.begin() as conn:
        conn.execute(sa.update(audit_events).where(audit_events.c.seq == 3).values(actor="eve"))
    body = api.post("/api/v1/audit/verify", json={}).json()
    assert body["ok"] is False
    assert body["first_bad"]["seq"] == 3 and body["first_bad"]["reason"] == "edited"
    assert "3" in body["first_bad"]["message"]


def test_checkpoints_endpoints(api):
    r = api.post("/api/v1/audit/checkpoints")
    assert r.status_code == 409  # an empty log has nothing to pin
    _changes(api)
    r = api.post("/api/v1/audit/checkpoints")
    assert r.status_code == 201, r.text
    cp = r.json()
    head = api.post("/api/v1/audit/verify").json()["head"]
    assert (cp["seq"], cp["hash"]) == (head["seq"], head["hash"])
    assert api.get("/api/v1/audit/checkpoints").json()["items"] == [cp]
    jl = api.get("/api/v1/audit/checkpoints", params={"format": "jsonl"})
    assert jl.headers["content-type"].startswith("application/x-ndjson")
    exported = [orjson.loads(x) for x in jl.content.splitlines()]
    assert exported == [cp]
    # Exported lines go straight back into verify.
    body = api.post("/api/v1/audit/verify", json={"checkpoints": exported,
                                                  "use_stored_checkpoints": False}).json()
    assert body["ok"] and body["checkpoints_checked"] == 1
    wrong = [{"seq": cp["seq"], "hash": "0" * 64}]
    body = api.post("/api/v1/audit/verify", json={"checkpoints": wrong}).json()
    assert not body["ok"] and body["first_bad"]["reason"] == "checkpoint_mismatch"
    beyond = [{"seq": cp["seq"] + 100, "hash": "0" * 64}]
    body = api.post("/api/v1/audit/verify", json={"checkpoints": beyond}).json()
    assert not body["ok"] and body["first_bad"] == {
        "seq": cp["seq"] + 1, "reason": "truncated", "message": body["first_bad"]["message"]}
    bad = api.post("/api/v1/audit/verify", json={"checkpoints": [{"seq": 0, "hash": "x"}]})
    assert bad.status_code == 422


def test_deployment_and_observation_events_are_audited(api):
    register(api, "fraud", {"model.bin": b"f1"})
    r = api.post("/api/v1/environments", json={"name": "dev", "min_stage": "registered"})
    assert r.status_code == 201, r.text
    r = api.post("/api/v1/deployments", json={"ref": "fraud/1", "environment": "dev"})
    assert r.status_code == 201, r.text
    digest = api.get("/api/v1/models/fraud/versions/1").json()["digest"]
    assert api.post("/api/v1/observations", json={"environment": "dev", "digest": digest}
                    ).status_code == 201
    assert api.post("/api/v1/deployments/end", json={"model": "fraud", "environment": "dev"}
                    ).status_code == 201
    actions = [e["action"] for e in _all(api, order="asc")]
    assert actions[-4:] == ["environment.create", "deployment.record", "observation.report",
                            "deployment.end"]
    rec = _all(api, action="deployment.record")[0]
    assert (rec["model"], rec["version"], rec["target"]) == ("fraud", 1, "dev")
    assert api.post("/api/v1/audit/verify").json()["ok"]
