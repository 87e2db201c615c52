"""Deployments over HTTP: recording, the "as of" questions, timelines, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from regista.service.audit import iso
from tests.api.helpers import error_of, register


def _env(api, name: str = "dev", min_stage: str = "registered") -> None:  # type: ignore[no-untyped-def]
    r = api.post("/api/v1/environments", json={"name": name, "min_stage": min_stage})
    assert r.status_code in (200, 201), r.text


def _deploy(api, ref: str, env: str = "dev", at: datetime | None = None, expect: int = 201,  # type: ignore[no-untyped-def]
            **extra):
    body = {"ref": ref, "environment": env, **extra}
    if at is not None:
        body["at"] = iso(at)
    r = api.post("/api/v1/deployments", json=body)
    assert r.status_code == expect, r.text
    return r.json()


def _served(api, env: str, at: datetime | None = None) -> dict[str, int]:  # type: ignore[no-untyped-def]
    params = {"at": iso(at)} if at is not None else {}
    r = api.get(f"/api/v1/environments/{env}/deployments", params=params)
    assert r.status_code == 200, r.text
    return {d["model"]: d["version"] for d in r.json()["items"]}


def test_record_and_ask_as_of(api):
    register(api, "fraud", {"model.bin": b"f1"})
    register(api, "fraud", {"model.bin": b"f2"})
    register(api, "churn", {"model.bin": b"c1"})
    _env(api)
    t0 = datetime.now(UTC) - timedelta(hours=5)
    t = [t0 + timedelta(hours=i) for i in range(5)]
    e1 = _deploy(api, "fraud/1", at=t[0], note="first rollout")
    assert (e1["kind"], e1["version"], e1["previous_version"]) == ("deploy", 1, None)
    assert e1["note"] == "first rollout" and e1["recorded_by"] == "local"
    _deploy(api, "churn/1", at=t[0])
    e2 = _deploy(api, "fraud/2", at=t[1])
    assert e2["previous_version"] == 1
    r = api.post("/api/v1/deployments/end", json={"model": "fraud", "environment": "dev",
                                                  "at": iso(t[2])})
    assert r.status_code == 201, r.text
    assert (r.json()["kind"], r.json()["version"], r.json()["previous_version"]) == ("end", None, 2)
    _deploy(api, "fraud/1", at=t[3])  # rollback to an older version

    assert _served(api, "dev", t0 - timedelta(seconds=1)) == {}
    assert _served(api, "dev", t[0]) == {"fraud": 1, "churn": 1}  # the exact instant counts
    assert _served(api, "dev", t[1] - timedelta(microseconds=1)) == {"fraud": 1, "churn": 1}
    assert _served(api, "dev", t[1]) == {"fraud": 2, "churn": 1}
    assert _served(api, "dev", t[2]) == {"churn": 1}
    assert _served(api, "dev", t[3]) == {"fraud": 1, "churn": 1}
    assert _served(api, "dev") == {"fraud": 1, "churn": 1}
    item = api.get("/api/v1/environments/dev/deployments").json()["items"][1]
    assert item["ref"] == "fraud/1" and item["since"].startswith(t[3].strftime("%Y-%m-%dT%H"))
    assert len(item["digest"]) == 64 and item["stage"] == "registered"

    # Where and when did fraud/1 serve?
    r = api.get("/api/v1/models/fraud/versions/1/deployments")
    assert r.status_code == 200, r.text
    spans = [(s["environment"], s["start"], s["end"]) for s in r.json()["items"]]
    assert [(e, s[:13], (x or "")[:13]) for e, s, x in spans] == [
        ("dev", iso(t[0])[:13], iso(t[1])[:13]), ("dev", iso(t[3])[:13], "")]
    ends = api.get("/api/v1/models/fraud/versions/2/deployments").json()["items"]
    assert len(ends) == 1 and ends[0]["ended_by"] == "local"
    assert api.get("/api/v1/models/fraud/versions/9/deployments").status_code == 404

    # The environment's timeline, newest first, paginated, and filtered.
    seen, cursor = [], None
    while True:
        params = {"page_size": 2, **({"cursor": cursor} if cursor else {})}
        body = api.get("/api/v1/environments/dev/timeline", params=params).json()
        seen += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert [(e["model"], e["kind"], e["version"]) for e in seen] == [
        ("fraud", "deploy", 1), ("fraud", "end", None), ("fraud", "deploy", 2),
        ("churn", "deploy", 1), ("fraud", "deploy", 1)]
    assert len(seen) == 5
    assert [e["at"] for e in seen] == sorted((e["at"] for e in seen), reverse=True)
    asc = api.get("/api/v1/environments/dev/timeline", params={"order": "asc", "model": "fraud"})
    assert [(e["kind"], e["version"]) for e in asc.json()["items"]] == [
        ("deploy", 1), ("deploy", 2), ("end", None), ("deploy", 1)]
    window = api.get("/api/v1/environments/dev/timeline",
                     params={"since": iso(t[1]), "until": iso(t[3])}).json()["items"]
    assert [(e["kind"], e["version"]) for e in window] == [("end", None), ("deploy", 2)]
    hist = api.get("/api/v1/models/fraud/deployments", params={"order": "asc"}).json()["items"]
    assert [e["version"] for e in hist] == [1, 2, None, 1]


def test_same_version_again_is_a_no_op(api):
    register(api, "fraud", {"model.bin": b"f1"})
    _env(api)
    first = _deploy(api, "fraud/1")
    again = _deploy(api, "fraud@latest", expect=200)
    assert again["id"] == first["id"]
    assert len(api.get("/api/v1/environments/dev/timeline").json()["items"]) == 1


def test_model_and_version_fields_and_alias_refs(api):
    register(api, "fraud", {"model.bin": b"f1"}, aliases=["champion"])
    register(api, "fraud", {"model.bin": b"f2"})
    _env(api)
    r = api.post("/api/v1/deployments", json={"model": "fraud", "version": 2, "environment": "dev"})
    assert r.status_code == 201 and r.json()["version"] == 2
    assert _deploy(api, "fraud@champion")["version"] == 1


def test_bad_input(api):
    register(api, "fraud", {"model.bin": b"f1"})
    _env(api)
    now = datetime.now(UTC)
    _deploy(api, "fraud/1", at=now - timedelta(minutes=1))

    def err(status: int, response) -> dict:  # type: ignore[no-untyped-def,type-arg]
        assert response.status_code == status, response.text
        return error_of(response)

    post = api.post
    e = err(422, post("/api/v1/deployments", json={"ref": "fraud/1", "environment": "dev",
                                                   "at": iso(now + timedelta(minutes=5))}))
    assert "future" in e["message"]
    e = err(409, post("/api/v1/deployments", json={"ref": "fraud/1", "environment": "dev",
                                                   "at": iso(now - timedelta(hours=1))}))
    assert "append-only" in e["message"] and e["details"]["rule"] == "append_only"
    e = err(422, post("/api/v1/deployments", json={"ref": "fraud/1", "environment": "dev",
                                                   "at": "2026-01-01T00:00:00"}))
    assert "time zone" in e["message"]
    err(422, post("/api/v1/deployments", json={"ref": "fraud/1", "environment": "dev",
                                               "at": "soon"}))
    e = err(404, post("/api/v1/deployments", json={"ref": "fraud/1", "environment": "nowhere"}))
    assert "nowhere" in e["message"]
    err(404, post("/api/v1/deployments", json={"ref": "fraud/7", "environment": "dev"}))
    err(404, post("/api/v1/deployments", json={"ref": "ghost/1", "environment": "dev"}))
    err(422, post("/api/v1/deployments", json={"ref": "fraud/1", "model": "fraud", "version": 1,
                                               "environment": "dev"}))
    err(422, post("/api/v1/deployments", json={"environment": "dev"}))
    err(422, post("/api/v1/deployments", json={"ref": "fraud/1", "environment": "bad env!"}))
    err(422, post("/api/v1/deployments", json={"ref": "fraud/1", "environment": "dev",
                                               "note": "x" * 3000}))
    err(422, post("/api/v1/deployments", json={"ref": "fraud/1", "environment": "dev",
                                               "extra": 1}))
    e = err(409, post("/api/v1/deployments/end", json={"model": "fraud", "environment": "dev",
                                                       "at": iso(now - timedelta(hours=2))}))
    assert e["details"]["rule"] == "append_only"
    assert post("/api/v1/deployments/end", json={"model": "fraud", "environment": "dev"}
                ).status_code == 201
    e = err(409, post("/api/v1/deployments/end", json={"model": "fraud", "environment": "dev"}))
    assert e["details"]["rule"] == "not_serving"
    err(404, post("/api/v1/deployments/end", json={"model": "ghost", "environment": "dev"}))
    err(422, api.get("/api/v1/environments/dev/deployments", params={"at": "yesterday"}))
    err(400, api.get("/api/v1/environments/dev/timeline", params={"cursor": "zzz"}))
    err(422, api.get("/api/v1/environments/dev/timeline",
                     params={"since": iso(now), "until": iso(now - timedelta(days=1))}))
    err(404, api.get("/api/v1/environments/nowhere/deployments"))
    err(422, api.post("/api/v1/environments", json={"name": "x", "min_stage": "gold"}))
    err(422, api.post("/api/v1/environments", json={"name": "x", "min_stage": "archived"}))


def test_minimum_stage_and_policy_environments(api, services, local_actor):
    register(api, "fraud", {"model.bin": b"f1"})
    envs = {e["name"]: e for e in api.get("/api/v1/environments").json()["items"]}
    # The embedded default policy declares these before anything is recorded there.
    assert envs["production"]["min_stage"] == "production"
    assert envs["staging"]["min_stage"] == "staging"
    assert api.get("/api/v1/environments/staging/deployments").json()["items"] == []

    r = api.post("/api/v1/deployments", json={"ref": "fraud/1", "environment": "staging"})
    assert r.status_code == 409, r.text
    e = error_of(r)
    assert e["details"]["rule"] == "min_stage" and "'staging'" in e["message"]
    assert "registered" in e["message"]

    services.lifecycle.request_transition(local_actor, "fraud/1", "staging", "validate it")
    assert _deploy(api, "fraud/1", env="staging")["version"] == 1
    created = {e["name"]: e for e in api.get("/api/v1/environments").json()["items"]}
    assert created["staging"]["created_at"] is not None

    # Raising an environment's minimum does not rewrite history, but gates what comes next.
    _env(api, "dev", "production")
    r = api.post("/api/v1/deployments", json={"ref": "fraud/1", "environment": "dev"})
    assert r.status_code == 409

    # Archived versions never deploy.
    register(api, "old", {"model.bin": b"o1"})
    services.lifecycle.request_transition(local_actor, "old/1", "archived", "retired")
    _env(api, "lab", "registered")
    r = api.post("/api/v1/deployments", json={"ref": "old/1", "environment": "lab"})
    assert r.status_code == 409 and "archived" in error_of(r)["message"]


def test_auditor_question_names_version_approvers_and_evidence(api, services, local_actor,
                                                                monkeypatch):
    monkeypatch.setattr(services.settings, "auth_mode", "local")  # users exist below
    services.registry.create_model(local_actor, "fraud", owner_team="risk")
    for name in ("alice", "bob"):
        services.identity.create_user(local_actor, name)
        services.identity.grant_role(local_actor, name, "approver")
    from tests.api.helpers import upload

    files = [
        {"path": "model.bin", "sha256": upload(api, b"f3"), "size": 2, "role": "model"},
        {"path": "card.md", "sha256": upload(api, b"# card"), "size": 6, "role": "model_card"},
        {"path": "eval.json", "sha256": upload(api, b"{}"), "size": 2, "role": "eval_report"},
    ]
    r = api.post("/api/v1/models/fraud/versions", json={
        "files": files, "metadata": {"intended_use": "card payments"}})
    assert r.status_code == 201, r.text
    lc = services.lifecycle
    lc.request_transition(local_actor, "fraud/1", "staging", "validate")
    before_prod = datetime.now(UTC)
    req = lc.request_transition(local_actor, "fraud/1", "production", "ship it")
    assert req.status == "pending"
    for name in ("alice", "bob"):
        lc.approve(services.identity.actor_for_user(name), req.id, comment=f"ok from {name}")
    r = api.post("/api/v1/deployments", json={"ref": "fraud/1", "environment": "production",
                                              "note": "pipeline #42"})
    assert r.status_code == 201, r.text
    deployed_at = r.json()["at"]

    r = api.get("/api/v1/environments/production/served", params={"model": "fraud"})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["serving"] and a["ref"] == "fraud/1" and a["version"] == 1
    assert a["since"] == deployed_at and a["note"] == "pipeline #42"
    assert a["digest"] == api.get("/api/v1/models/fraud/versions/1").json()["digest"]
    assert a["stage_at"] == a["stage_now"] == "production"
    assert a["approved_by"] == ["alice", "bob"]
    prod = next(t for t in a["transitions"] if t["to_stage"] == "production")
    assert prod["justification"] == "ship it" and prod["requested_by"] == "local"
    assert {c["check"] for c in prod["checks"]} >= {"model_card_present", "eval_report_present"}
    assert all(c["passed"] for c in prod["checks"])
    assert [x["approver"] for x in prod["approvals"]] == ["alice", "bob"]
    assert all(x["version_digest"] == a["digest"] for x in prod["approvals"])
    assert [s["to_stage"] for s in a["stage_history"]][-2:] == ["staging", "production"]

    # Asked about an instant before the deployment: nothing served.
    early = api.get("/api/v1/environments/production/served",
                    params={"model": "fraud", "at": iso(before_prod)}).json()
    assert early["serving"] is False and early["version"] is None and early["approved_by"] == []
    assert api.get("/api/v1/environments/production/served",
                   params={"model": "ghost"}).status_code == 404
    assert api.get("/api/v1/environments/production/served").status_code == 422
