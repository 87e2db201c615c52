from __future__ import annotations

import hashlib

from tests.api.helpers import error_of, register, upload

PROV = {
    "training_data": {"uri": "s3://data/fraud", "version": "2026-10", "digest": "abc"},
    "training_code": {"repository": "git@example/fraud", "commit": "deadbeef", "dirty": False},
    "parameters": {"lr": 0.1, "depth": 6},
    "metrics": {"auc": 0.91, "f1": 0.7},
    "environment": {"python": "3.11.7", "packages": {"scikit-learn": "1.5.0"}},
    "framework": "sklearn",
}


def test_register_and_read_back(api):
    v = register(api, "fraud", {"model.bin": b"w1", "conf/config.json": b"{}"}, metadata=PROV,
                 tags={"a": "1", "b": "2", "c": "3"}, aliases=["champion"])
    assert v["version"] == 1
    assert v["ref"] == "fraud/1"
    assert v["stage"] == "registered"
    assert v["metadata"]["metrics"] == {"auc": 0.91, "f1": 0.7}
    assert v["aliases"] == ["champion"]
    assert [f["path"] for f in v["files"]] == ["conf/config.json", "model.bin"]
    assert len(v["digest"]) == 64

    again = api.get("/api/v1/models/fraud/versions/1").json()
    assert again["digest"] == v["digest"]
    assert api.get("/api/v1/resolve", params={"ref": "fraud@champion"}).json()["version"] == 1
    assert api.get("/api/v1/resolve", params={"ref": "fraud@latest"}).json()["version"] == 1
    assert api.get("/api/v1/models/fraud/aliases/champion").json()["version"] == 1

    v2 = register(api, "fraud", {"model.bin": b"w2"})
    assert v2["version"] == 2
    assert api.get("/api/v1/resolve", params={"ref": "fraud@latest"}).json()["version"] == 2
    assert api.get("/api/v1/models/fraud").json()["latest_version"] == 2


def test_version_digest_is_manifest_digest(api):
    a = register(api, "m", {"model.bin": b"same"})
    b = register(api, "m", {"model.bin": b"same"})
    assert a["digest"] == b["digest"]
    c = register(api, "m", {"model.bin": b"other"})
    assert c["digest"] != a["digest"]


def test_sealed_version_keeps_files_and_provenance(api):
    register(api, "m", metadata=PROV)
    r = api.patch("/api/v1/models/m/versions/1", json={"description": "better words",
                                                      "tags": {"k": "v"}})
    assert r.status_code == 200
    assert r.json()["description"] == "better words"
    assert r.json()["tags"] == {"k": "v"}
    # Files and metadata are not editable fields at all.
    r = api.patch("/api/v1/models/m/versions/1", json={"metadata": {"metrics": {"auc": 1.0}}})
    assert r.status_code == 422
    r = api.patch("/api/v1/models/m/versions/1", json={"files": []})
    assert r.status_code == 422
    assert api.get("/api/v1/models/m/versions/1").json()["metadata"]["metrics"]["auc"] == 0.91


def test_idempotency_key_returns_same_version(api):
    first = register(api, "m", idempotency_key="run-42")
    again = register(api, "m", idempotency_key="run-42", expect=200)
    assert again["version"] == first["version"] == 1
    # Same key, different request: refused.
    r = register(api, "m", {"model.bin": b"different"}, idempotency_key="run-42", expect=409)
    assert "idempotency" in r["error"]["message"]
    assert api.get("/api/v1/models/m").json()["latest_version"] == 1


def test_an_archived_model_takes_no_new_version(api):
    register(api, "m")
    assert api.post("/api/v1/models/m/archive").status_code == 200
    r = register(api, "m", {"model.bin": b"after archiving"}, expect=409)
    assert "archived" in r["error"]["message"]
    assert api.get("/api/v1/models/m").json()["latest_version"] == 1


def test_unuploaded_blob_is_refused_and_no_number_is_used(api):
    api.post("/api/v1/models", json={"name": "m"})
    ghost = hashlib.sha256(b"never uploaded").hexdigest()
    r = api.post("/api/v1/models/m/versions", json={
        "files": [{"path": "model.bin", "sha256": ghost, "size": 14}]})
    assert r.status_code == 409
    assert error_of(r)["details"]["missing_blobs"][0]["sha256"] == ghost
    # The failed attempt consumed no number: the next version is 1.
    assert register(api, "m")["version"] == 1


def test_declared_size_must_match(api):
    api.post("/api/v1/models", json={"name": "m"})
    d = upload(api, b"12345")
    r = api.post("/api/v1/models/m/versions", json={
        "files": [{"path": "model.bin", "sha256": d, "size": 6}]})
    assert r.status_code == 422


def test_required_metadata_lists_every_missing_field(settings, tmp_path):
    from fastapi.testclient import TestClient

    from regista.api.app import create_app
    from regista.service.container import build_services

    settings = settings.model_copy(update={"required_metadata": [
        "training_code.commit", "training_data.uri", "metrics"]})
    svc = build_services(settings)
    try:
        with TestClient(create_app(services=svc)) as api:
            r = api.post("/api/v1/models", json={"name": "m"})
            d = upload(api, b"x")
            r = api.post("/api/v1/models/m/versions", json={
                "files": [{"path": "model.bin", "sha256": d, "size": 1}],
                "metadata": {"training_code": {"repository": "r"}}})
            assert r.status_code == 422
            err = error_of(r)
            assert err["code"] == "missing_metadata"
            assert err["details"]["missing"] == ["training_code.commit", "training_data.uri",
                                                 "metrics"]
    finally:
        svc.close()


def test_aliases_move_and_history_as_of(api):
    register(api, "m")
    register(api, "m", {"model.bin": b"two"})
    r = api.put("/api/v1/models/m/aliases/champion", json={"version": 1})
    assert r.status_code == 200
    t1 = r.json()["at"]
    r = api.put("/api/v1/models/m/aliases/champion", json={"version": 2})
    t2 = r.json()["at"]
    assert api.get("/api/v1/models/m/aliases/champion").json()["version"] == 2
    assert api.get("/api/v1/models/m/aliases/champion",
                   params={"as_of": t1}).json()["version"] == 1
    assert api.get("/api/v1/models/m/aliases/champion",
                   params={"as_of": t2}).json()["version"] == 2
    r = api.get("/api/v1/models/m/aliases/champion", params={"as_of": "2000-01-01T00:00:00Z"})
    assert r.status_code == 404
    assert api.delete("/api/v1/models/m/aliases/champion").status_code == 204
    assert api.get("/api/v1/models/m/aliases/champion").status_code == 404
    assert api.get("/api/v1/models/m/aliases/champion",
                   params={"as_of": t2}).json()["version"] == 2
    hist = api.get("/api/v1/models/m/alias-history").json()["items"]
    assert [h["version"] for h in hist] == [None, 2, 1]
    # Reserved and malformed aliases.
    assert api.put("/api/v1/models/m/aliases/latest", json={"version": 1}).status_code == 422
    assert api.put("/api/v1/models/m/aliases/9lives", json={"version": 1}).status_code == 422
    assert api.put("/api/v1/models/m/aliases/x", json={"version": 99}).status_code == 404


def test_download_with_range_and_digest(api):
    data = bytes(range(256)) * 100
    register(api, "m", {"model.bin": data})
    r = api.get("/api/v1/models/m/versions/1/files/model.bin")
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["x-regista-sha256"] == hashlib.sha256(data).hexdigest()
    assert r.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    r = api.get("/api/v1/models/m/versions/1/files/model.bin", headers={"range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.content == data[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
    r = api.get("/api/v1/models/m/versions/1/files/model.bin", headers={"range": "bytes=-5"})
    assert r.content == data[-5:]
    r = api.get("/api/v1/models/m/versions/1/files/model.bin",
                headers={"range": f"bytes={len(data)}-"})
    assert r.status_code == 416
    r = api.get("/api/v1/models/m/versions/1/files/model.bin", headers={"range": "bytes=1-2,4-5"})
    assert r.status_code == 416
    assert api.get("/api/v1/models/m/versions/1/files/nothere.bin").status_code == 404


def test_blob_dedup_and_check(api):
    d = upload(api, b"shared bytes")
    r = api.post("/api/v1/blobs/check", json={"digests": [d, "0" * 64]})
    assert r.json() == [{"sha256": d, "present": True, "size": 12},
                        {"sha256": "0" * 64, "present": False, "size": 0}]
    # Identical bytes again: idempotent success.
    r = api.put(f"/api/v1/blobs/{d}", content=b"shared bytes")
    assert r.status_code == 200


def test_resumable_upload(api):
    data = b"abcdefghij" * 1000
    d = hashlib.sha256(data).hexdigest()
    r = api.post("/api/v1/uploads", json={"sha256": d, "size": len(data)})
    assert r.status_code == 201
    up = r.json()
    assert up["offset"] == 0 and not up["complete"]
    uid = up["upload_id"]
    r = api.patch(f"/api/v1/uploads/{uid}", content=data[:4000],
                  headers={"content-range": f"bytes 0-3999/{len(data)}"})
    assert r.json()["offset"] == 4000
    # Out of order: 416 with where to resume.
    r = api.patch(f"/api/v1/uploads/{uid}", content=data[6000:],
                  headers={"content-range": f"bytes 6000-9999/{len(data)}"})
    assert r.status_code == 416
    assert api.get(f"/api/v1/uploads/{uid}").json()["offset"] == 4000
    r = api.patch(f"/api/v1/uploads/{uid}", content=data[4000:],
                  headers={"content-range": f"bytes 4000-9999/{len(data)}"})
    assert r.status_code == 200
    assert r.json()["complete"] is True
    assert api.post("/api/v1/blobs/check", json={"digests": [d]}).json()[0]["present"]
    # Finished uploads are gone; a new one for the same bytes is complete at once.
    assert api.get(f"/api/v1/uploads/{uid}").status_code == 404
    r = api.post("/api/v1/uploads", json={"sha256": d, "size": len(data)})
    assert r.json()["complete"] is True


def test_resumable_upload_wrong_digest_leaves_nothing(api):
    data = b"x" * 5000
    wrong = hashlib.sha256(b"y" * 5000).hexdigest()
    uid = api.post("/api/v1/uploads", json={"sha256": wrong, "size": 5000}).json()["upload_id"]
    r = api.patch(f"/api/v1/uploads/{uid}", content=data,
                  headers={"content-range": "bytes 0-4999/5000"})
    assert r.status_code == 400
    assert error_of(r)["code"] == "digest_mismatch"
    assert not api.post("/api/v1/blobs/check", json={"digests": [wrong]}).json()[0]["present"]


def test_search_versions_by_metric_and_tag(api):
    register(api, "a", metadata={"metrics": {"auc": 0.95}}, tags={"team": "risk"})
    register(api, "a", {"model.bin": b"2"}, metadata={"metrics": {"auc": 0.80}})
    register(api, "b", metadata={"metrics": {"auc": 0.99}}, tags={"team": "ops"})
    r = api.get("/api/v1/versions", params={"filter": "metrics.auc > 0.9",
                                            "order_by": "metrics.auc DESC"})
    assert r.status_code == 200, r.text
    assert [v["ref"] for v in r.json()["items"]] == ["b/1", "a/1"]
    r = api.get("/api/v1/versions", params={"filter": 'tags.team = "risk" OR name = "b"'})
    assert sorted(v["ref"] for v in r.json()["items"]) == ["a/1", "b/1"]
    r = api.get("/api/v1/models/a/versions", params={"filter": "metrics.auc < 0.9"})
    assert [v["ref"] for v in r.json()["items"]] == ["a/2"]


def test_failed_resumable_upload_is_forgotten(api):
    data = b"z" * 3000
    wrong = hashlib.sha256(b"q" * 3000).hexdigest()
    uid = api.post("/api/v1/uploads", json={"sha256": wrong, "size": 3000}).json()["upload_id"]
    r = api.patch(f"/api/v1/uploads/{uid}", content=data,
                  headers={"content-range": "bytes 0-2999/3000"})
    assert r.status_code == 400
    assert api.get(f"/api/v1/uploads/{uid}").status_code == 404
