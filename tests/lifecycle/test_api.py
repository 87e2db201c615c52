"""The lifecycle over HTTP with real users and tokens: policy, transitions, approvals,
break-glass, stage history, reviews; and every bad input as a clear 4xx."""

from __future__ import annotations

from datetime import timedelta

import orjson

from regista.api.app import iter_routes
from regista.service.clock import utcnow
from tests.api.helpers import error_of
from tests.lifecycle.conftest import COMPLETE, FULL_FILES, LOCAL, ONE_APPROVAL, audit_rows


def test_every_lifecycle_route_has_a_rule(app):
    routes = {(path, m): r for path, methods, r in iter_routes(app) for m in methods}
    expected = {
        ("/api/v1/policy", "PUT"): "policy:apply",
        ("/api/v1/policy", "GET"): "model:read",
        ("/api/v1/policy/versions/{version}", "GET"): "model:read",
        ("/api/v1/models/{name}/versions/{number}/transitions", "POST"): "transition:request",
        ("/api/v1/transitions", "GET"): "model:read",
        ("/api/v1/transitions/{request_id}", "GET"): "model:read",
        ("/api/v1/transitions/{request_id}/approve", "POST"): "transition:approve",
        ("/api/v1/transitions/{request_id}/reject", "POST"): "transition:approve",
        ("/api/v1/transitions/{request_id}/cancel", "POST"): "transition:request",
        ("/api/v1/models/{name}/versions/{number}/break-glass", "POST"): "transition:break-glass",
        ("/api/v1/models/{name}/versions/{number}/stage-history", "GET"): "model:read",
        ("/api/v1/reviews/overdue", "GET"): "model:read",
        ("/api/v1/models/{name}/reviewed", "POST"): "transition:approve",
    }
    for key, rule in expected.items():
        assert routes.get(key) == rule, key


def test_policy_apply_and_show(api, people):
    root = people.headers("root")
    shown = api.get("/api/v1/policy", headers=people.headers("vic")).json()
    assert shown["current"]["version"] == 0 and shown["current"]["embedded_default"]
    assert shown["current"]["policy"]["stages"][0]["name"] == "registered"

    r = api.put("/api/v1/policy", content=ONE_APPROVAL,
                headers={**root, "Content-Type": "application/yaml"})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1 and r.json()["changed"] is True
    again = api.put("/api/v1/policy", json={"document": ONE_APPROVAL}, headers=root)
    assert again.status_code == 200 and again.json()["changed"] is False

    shown = api.get("/api/v1/policy", headers=people.headers("vic")).json()
    assert shown["current"]["version"] == 1 and shown["current"]["document"] == ONE_APPROVAL
    assert shown["current"]["applied_at"].endswith("Z")
    assert [h["version"] for h in shown["history"]] == [1]
    old = api.get("/api/v1/policy/versions/0", headers=root).json()
    assert old["embedded_default"] and "staging" in old["document"]
    assert api.get("/api/v1/policy/versions/7", headers=root).status_code == 404


def test_policy_bad_input(api, people, services):
    root = people.headers("root")
    bad = "stages:\n  - registered\n  - staging\ntransitions:\n  - {from: registered, to: prod}\n"
    r = api.put("/api/v1/policy", content=bad, headers={**root, "Content-Type": "text/yaml"})
    assert r.status_code == 422
    err = error_of(r)
    assert err["code"] == "invalid"
    assert err["details"]["errors"] == [{"line": 5, "field": "transitions[0].to",
                                         "message": "unknown stage 'prod' (stages: registered, "
                                                    "staging)"}]
    assert "line 5" in err["message"]
    r = api.put("/api/v1/policy", json={"text": ONE_APPROVAL}, headers=root)
    assert r.status_code == 422 and "document" in error_of(r)["message"]
    r = api.put("/api/v1/policy", content=b"\xff\xfe", headers={**root, "Content-Type": "text/plain"})
    assert r.status_code == 400
    r = api.put("/api/v1/policy", content=b"x", headers={**root, "Content-Type": "image/png"})
    assert r.status_code == 400
    r = api.put("/api/v1/policy", content=ONE_APPROVAL, headers=people.headers("alice"))
    assert r.status_code == 403
    assert services.policy.current().version == 0


def _upload(api, headers, data: bytes) -> str:
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    r = api.put(f"/api/v1/blobs/{digest}", content=data, headers=headers)
    assert r.status_code in (200, 201), r.text
    return digest


def _register(api, headers, model, files, metadata):
    manifest = [{"path": p, "sha256": _upload(api, headers, data), "size": len(data), "role": role}
                for p, (data, role) in files.items()]
    r = api.post(f"/api/v1/models/{model}/versions", headers=headers,
                 json={"files": manifest, "metadata": metadata, "create_model": True})
    assert r.status_code == 201, r.text
    return r.json()


def test_transition_story_over_http(api, people, services):
    alice, paula = people.headers("alice"), people.headers("paula")
    services.registry.create_model(LOCAL, "fraud", owner_team="risk")
    _register(api, alice, "fraud", FULL_FILES, COMPLETE)

    url = "/api/v1/models/fraud/versions/1/transitions"
    r = api.post(url, json={"to_stage": "staging", "justification": "validate"}, headers=paula)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "applied" and r.json()["checks_passed"]

    r = api.post(url, json={"to_stage": "production", "justification": "ship it"}, headers=paula)
    req = r.json()
    assert r.status_code == 201 and req["status"] == "pending"
    assert req["missing"] == ["2 more approvals from role approver"]
    assert req["required_approvals"] == 2 and req["approver_role"] == "approver"
    rid = req["id"]

    # Self-approval: a clear 403 naming the rule, and the refusal is audited.
    r = api.post(f"/api/v1/transitions/{rid}/approve", json={}, headers=paula)
    assert r.status_code == 403
    assert error_of(r)["details"]["rule"] == "self_approval"
    assert "self-approval is forbidden" in error_of(r)["message"]
    denied = [e for e in audit_rows(services) if e.outcome == "denied"]
    assert denied and denied[-1].actor == "paula" and denied[-1].model == "fraud"

    r = api.post(f"/api/v1/transitions/{rid}/approve", json={"comment": "ok"},
                 headers=people.headers("bob"))
    assert r.status_code == 200 and r.json()["approval_count"] == 1
    r = api.post(f"/api/v1/transitions/{rid}/approve", headers=people.headers("bob"))
    assert r.status_code == 409 and error_of(r)["details"]["rule"] == "already_decided"
    r = api.post(f"/api/v1/transitions/{rid}/approve", json={"comment": "card read"},
                 headers=people.headers("carol"))
    assert r.status_code == 200 and r.json()["status"] == "applied"
    r = api.post(f"/api/v1/transitions/{rid}/approve", headers=people.headers("erin"))
    assert r.status_code == 409 and "already applied" in error_of(r)["message"]

    vic = people.headers("vic")
    assert api.get("/api/v1/models/fraud/versions/1", headers=vic).json()["stage"] == "production"
    got = api.get(f"/api/v1/transitions/{rid}", headers=vic).json()
    assert [a["approver"] for a in got["approvals"]] == ["bob", "carol"]
    listed = api.get("/api/v1/transitions", params={"status": "applied", "model": "fraud"},
                     headers=vic).json()
    assert [x["to_stage"] for x in listed["items"]] == ["production", "staging"]
    history = api.get("/api/v1/models/fraud/versions/1/stage-history", headers=vic).json()
    assert [e["to_stage"] for e in history["items"]] == ["registered", "staging", "production"]
    assert history["items"][2]["request"]["approvals"][1]["comment"] == "card read"
    assert history["items"][2]["at"].endswith("Z")


def test_transition_bad_input_over_http(api, people, services):
    alice = people.headers("alice")
    _register(api, alice, "m", {"model.bin": (b"w", "model")}, {})
    url = "/api/v1/models/m/versions/1/transitions"
    cases = [
        ({"to_stage": "prod", "justification": "x"}, 422, "unknown stage 'prod'"),
        ({"to_stage": "production", "justification": "x"}, 409,
         "does not allow registered → production"),
        ({"to_stage": "staging", "justification": ""}, 422, "justification must not be empty"),
        ({"to_stage": "staging"}, 422, "justification"),
        ({"to_stage": "staging", "justification": "x", "extra": 1}, 422, "extra"),
    ]
    for body, status, fragment in cases:
        r = api.post(url, json=body, headers=alice)
        assert r.status_code == status, (body, r.text)
        assert fragment in error_of(r)["message"], (body, r.text)
    r = api.post("/api/v1/models/m/versions/9/transitions",
                 json={"to_stage": "staging", "justification": "x"}, headers=alice)
    assert r.status_code == 404
    r = api.post(url, json={"to_stage": "staging", "justification": "x"},
                 headers=people.headers("vic"))
    assert r.status_code == 403

    services.policy.apply(LOCAL, ONE_APPROVAL)
    api.post(url, json={"to_stage": "staging", "justification": "x"}, headers=alice)
    rid = api.post(url, json={"to_stage": "production", "justification": "x"},
                   headers=alice).json()["id"]
    r = api.post(f"/api/v1/transitions/{rid}/reject", json={}, headers=people.headers("bob"))
    assert r.status_code == 422 and "comment must not be empty" in error_of(r)["message"]
    r = api.post(f"/api/v1/transitions/{rid}/cancel", headers=people.headers("frank"))
    assert r.status_code == 403 and error_of(r)["details"]["rule"] == "requester_only"
    r = api.post(f"/api/v1/transitions/{rid}/reject", json={"comment": "not yet"},
                 headers=people.headers("bob"))
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    r = api.post(f"/api/v1/transitions/{rid}/approve", headers=people.headers("carol"))
    assert r.status_code == 409 and error_of(r)["details"]["status"] == "rejected"
    assert api.get("/api/v1/transitions/0", headers=alice).status_code == 422
    assert api.get("/api/v1/transitions/424242", headers=alice).status_code == 404
    r = api.get("/api/v1/transitions", params={"status": "open"}, headers=alice)
    assert r.status_code == 422
    r = api.get("/api/v1/transitions", params={"cursor": "abc"}, headers=alice)
    assert r.status_code == 400


def test_break_glass_over_http(api, people, services):
    _register(api, people.headers("alice"), "m", {"model.bin": (b"w", "model")}, {})
    url = "/api/v1/models/m/versions/1/break-glass"
    r = api.post(url, json={"to_stage": "production", "reason": "incident"},
                 headers=people.headers("bob"))
    assert r.status_code == 403
    r = api.post(url, json={"to_stage": "production", "reason": ""}, headers=people.headers("root"))
    assert r.status_code == 422 and "reason must not be empty" in error_of(r)["message"]
    r = api.post(url, json={"to_stage": "production"}, headers=people.headers("root"))
    assert r.status_code == 422
    r = api.post(url, json={"to_stage": "production", "reason": "INC-7 hotfix"},
                 headers=people.headers("root"))
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "production"
    [event] = audit_rows(services, action="transition.break_glass")
    assert event.outcome == "break_glass" and event.after["reason"] == "INC-7 hotfix"
    history = api.get("/api/v1/models/m/versions/1/stage-history",
                      headers=people.headers("vic")).json()["items"]
    assert history[-1]["break_glass"] is True and history[-1]["actor"] == "root"


def test_reviews_over_http(api, people, services):
    services.registry.create_model(LOCAL, "risky", risk_tier="critical")
    vic = people.headers("vic")
    assert api.get("/api/v1/reviews/overdue", headers=vic).json()["items"] == []
    later = (utcnow() + timedelta(days=31)).isoformat()
    items = api.get("/api/v1/reviews/overdue", params={"at": later}, headers=vic).json()["items"]
    assert [m["name"] for m in items] == ["risky"]
    r = api.get("/api/v1/reviews/overdue", params={"at": "yesterday"}, headers=vic)
    assert r.status_code == 422
    assert api.post("/api/v1/models/risky/reviewed", headers=people.headers("alice")).status_code == 403
    due_before = items[0]["next_review_at"]
    r = api.post("/api/v1/models/risky/reviewed", headers=people.headers("bob"))
    assert r.status_code == 200
    assert r.json()["next_review_at"] > due_before  # 30 days (critical) from the review
    assert api.post("/api/v1/models/nope/reviewed", headers=people.headers("bob")).status_code == 404


def test_openapi_documents_the_policy_body(api, people):
    spec = orjson.loads(api.get("/api/v1/openapi.json").content)
    body = spec["paths"]["/api/v1/policy"]["put"]["requestBody"]["content"]
    assert "application/yaml" in body and "application/json" in body
