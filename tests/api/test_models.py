from __future__ import annotations

from tests.api.helpers import error_of, register


def test_create_get_update_archive_model(api):
    r = api.post("/api/v1/models", json={"name": "Fraud_Scorer", "description": "scores",
                                         "owner_team": "risk", "risk_tier": "high",
                                         "tags": {"domain": "payments"}})
    assert r.status_code == 201, r.text
    m = r.json()
    assert m["name"] == "Fraud_Scorer"
    assert m["normalized_name"] == "fraud-scorer"
    assert m["tags"] == {"domain": "payments"}
    assert m["created_at"].endswith("Z")

    # Any spelling that normalises to the same name finds it…
    assert api.get("/api/v1/models/fraud.scorer").json()["name"] == "Fraud_Scorer"
    # …and cannot be created again.
    r = api.post("/api/v1/models", json={"name": "fraud--scorer"})
    assert r.status_code == 409
    assert error_of(r)["code"] == "conflict"

    r = api.patch("/api/v1/models/fraud-scorer", json={"description": "new", "tags": {"a": "b"}})
    assert r.status_code == 200
    assert r.json()["description"] == "new"
    assert r.json()["tags"] == {"a": "b"}

    r = api.post("/api/v1/models/fraud-scorer/archive")
    assert r.json()["archived"] is True
    # An archived model takes no new versions.
    r = api.post("/api/v1/models/fraud-scorer/versions", json={"files": []})
    assert r.status_code == 422  # empty manifest is checked first
    register(api, "fraud-scorer", expect=409)


def test_model_name_rules(api):
    for bad in ["", "-lead", "has space", "ünïcode", "a" * 129, "semi;colon", "../etc"]:
        r = api.post("/api/v1/models", json={"name": bad})
        assert r.status_code == 422, (bad, r.text)
        assert error_of(r)["code"] == "invalid"
    assert api.post("/api/v1/models", json={"name": "a" * 128}).status_code == 201
    assert api.post("/api/v1/models", json={"name": "x", "risk_tier": "extreme"}).status_code == 422


def test_list_models_paginates(api):
    for i in range(7):
        assert api.post("/api/v1/models", json={"name": f"m{i}"}).status_code == 201
    seen = []
    cursor = None
    while True:
        params = {"page_size": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/v1/models", params=params).json()
        seen += [m["name"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"m{i}" for i in range(7)]


def test_unknown_model_is_404(api):
    r = api.get("/api/v1/models/nope")
    assert r.status_code == 404
    assert error_of(r)["code"] == "not_found"
