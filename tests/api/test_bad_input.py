"""Hostile and malformed input: always a 4xx JSON error naming the problem, never a 500."""

from __future__ import annotations

import hashlib

import pytest

from tests.api.helpers import error_of, register, upload

TRAVERSALS = [
    "../model.bin",
    "a/../../etc/passwd",
    "/etc/passwd",
    "a\\..\\b",
    "model.bin\x00.txt",
    "%2e%2e/secret",
    "%252e%252e/secret",
    "\u2025/secret",  # two-dot leader look-alike
    "\uff0e\uff0e/secret",  # fullwidth dots
    "a//b",
    "./a",
    "a/./b",
    "",
    "x" * 2000,
    "a/" + "b" * 300,
    "CON\n",
    "trailing/",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_manifest_paths_are_validated(api, path):
    d = upload(api, b"x")
    r = api.post("/api/v1/models/m/versions", json={
        "files": [{"path": path, "sha256": d, "size": 1}], "create_model": True})
    assert 400 <= r.status_code < 500, (path, r.status_code)
    err = error_of(r)
    assert "path" in err["message"] or err["details"], err
    assert api.get("/api/v1/models/m").status_code == 404  # nothing half-created


@pytest.mark.parametrize("url", [
    "/api/v1/models/m/versions/1/files/..%2F..%2Fetc%2Fpasswd",
    "/api/v1/models/m/versions/1/files/%2e%2e/x",
    "/api/v1/models/m/versions/1/files/%252e%252e%252fx",
    "/api/v1/models/m/versions/1/files/a%00b",
    "/api/v1/models/m/versions/1/files/%C0%AE%C0%AE/x",
])
def test_download_traversal_is_refused(api, url):
    register(api, "m")
    r = api.get(url)
    assert 400 <= r.status_code < 500, (url, r.status_code)
    error_of(r)


def test_duplicate_paths_refused(api):
    d = upload(api, b"x")
    r = api.post("/api/v1/models/m/versions", json={"create_model": True, "files": [
        {"path": "a.bin", "sha256": d, "size": 1}, {"path": "A.bin", "sha256": d, "size": 1}]})
    assert r.status_code == 422


@pytest.mark.parametrize("digest", ["../../etc/passwd", "A" * 64, "abc", "0" * 63 + "g",
                                    "%2e%2e", "0" * 65])
def test_bad_digests(api, digest):
    r = api.put(f"/api/v1/blobs/{digest}", content=b"x")
    assert 400 <= r.status_code < 500
    error_of(r)
    r = api.get(f"/api/v1/blobs/{digest}")
    assert 400 <= r.status_code < 500


def test_wrong_digest_or_size_is_400_and_stores_nothing(api, services):
    data = b"payload"
    wrong = hashlib.sha256(b"other").hexdigest()
    r = api.put(f"/api/v1/blobs/{wrong}", content=data)
    assert r.status_code == 400
    assert error_of(r)["code"] == "digest_mismatch"
    assert not services.blob_store.exists(wrong)
    right = hashlib.sha256(data).hexdigest()
    # Declared size (Content-Length) that does not match is rejected by the HTTP layer or us.
    r = api.put(f"/api/v1/blobs/{right}", content=data + b"extra")
    assert r.status_code == 400
    assert not services.blob_store.exists(right)


def test_different_bytes_for_a_sealed_file_cannot_exist(api):
    # Content addressing: a path in a sealed version always names the same bytes; a new
    # registration with other bytes is a new version, and the old one is unchanged.
    v1 = register(api, "m", {"model.bin": b"one"})
    register(api, "m", {"model.bin": b"two"})
    assert api.get("/api/v1/models/m/versions/1/files/model.bin").content == b"one"
    assert api.get("/api/v1/models/m/versions/1").json()["digest"] == v1["digest"]


def test_oversized_body_is_413(api, services):
    limit = services.settings.max_request_bytes
    r = api.post("/api/v1/models", content=b"{" + b" " * limit + b"}",
                 headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert error_of(r)["code"] == "payload_too_large"


@pytest.mark.parametrize("path", ["/api/v1/blobs/check", "/api/v1/uploads",
                                  "/api/v1/blobs/" + "a" * 64 + "/x"])
def test_json_beside_the_streamed_uploads_is_held_to_the_body_limits(api, services, path):
    # Only PUT /blobs/{sha256} and PATCH /uploads/{id} stream past the body limit.
    limit = services.settings.max_request_bytes
    r = api.post(path, content=b'{"digests": [' + b" " * limit + b"]}",
                 headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert error_of(r)["code"] == "payload_too_large"
    r = api.post(path, content='{"digests": ' + "[" * 100 + "]" * 100 + "}",
                 headers={"content-type": "application/json"})
    assert r.status_code == 400


def test_deeply_nested_json_is_400(api):
    body = '{"name": "m", "description": "", "tags": {}, "x": ' + "[" * 100 + "]" * 100 + "}"
    r = api.post("/api/v1/models", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "nested" in error_of(r)["message"]
    r = api.post("/api/v1/models", content="[" * 100_000,
                 headers={"content-type": "application/json"})
    assert r.status_code == 400


def test_malformed_json_and_wrong_types(api):
    r = api.post("/api/v1/models", content="{not json",
                 headers={"content-type": "application/json"})
    assert r.status_code == 400
    error_of(r)
    r = api.post("/api/v1/models", json={"name": 5})
    assert r.status_code == 422
    assert error_of(r)["details"]["errors"][0]["field"].endswith("name")
    r = api.post("/api/v1/models", json={"name": "m", "unexpected": 1})
    assert r.status_code == 422
    r = api.post("/api/v1/models/m/versions", json={"files": "nope"})
    assert r.status_code == 422


def test_bad_metadata_is_422_naming_fields(api):
    d = upload(api, b"x")
    r = api.post("/api/v1/models/m/versions", json={
        "create_model": True, "files": [{"path": "m.bin", "sha256": d, "size": 1}],
        "metadata": {"metrics": {"auc": "high"}, "bogus": 1}})
    assert r.status_code == 422
    fields = {e["field"] for e in error_of(r)["details"]["errors"]}
    assert "metadata.metrics.auc" in fields
    assert "metadata.bogus" in fields


@pytest.mark.parametrize("flt", [
    "name = 'x'; DROP TABLE models; --",
    "name = \"x' OR '1'='1\"",
    "metrics.auc > ",
    "((((",
    "tags.\"a\" = 1) OR (1",
    "name ~~ 'x'",
    "x" * 5000,
])
def test_hostile_filters(api, flt):
    register(api, "m")
    r = api.get("/api/v1/versions", params={"filter": flt})
    assert r.status_code in (200, 400, 422), (flt, r.status_code)
    if r.status_code == 200:
        assert r.json()["items"] == []
    else:
        error_of(r)
    assert api.get("/api/v1/models/m").status_code == 200  # tables survive


def test_filter_syntax_error_points_at_position(api):
    r = api.get("/api/v1/versions", params={"filter": "metrics.auc >> 3"})
    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "filter_syntax"
    assert isinstance(err["details"]["position"], int)


@pytest.mark.parametrize("params", [{"page_size": 0}, {"page_size": 10**9}, {"page_size": -1},
                                    {"page_size": "abc"}, {"cursor": "garbage"},
                                    {"cursor": "eyJ0YW1wZXJlZCI6MX0.AAAA"}])
def test_absurd_pages_and_tampered_cursors(api, params):
    register(api, "m")
    r = api.get("/api/v1/versions", params=params)
    assert 400 <= r.status_code < 500, (params, r.status_code)
    error_of(r)


def test_tampered_real_cursor(api):
    for i in range(3):
        register(api, "m", {"model.bin": str(i).encode()})
    page = api.get("/api/v1/versions", params={"page_size": 1}).json()
    cursor = page["next_cursor"]
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    r = api.get("/api/v1/versions", params={"page_size": 1, "cursor": flipped})
    assert r.status_code == 400
    assert error_of(r)["code"] == "invalid_cursor"


@pytest.mark.parametrize("ref", ["m/0", "m/-1", "m/abc", "m@", "@x", "m@bad alias", "m/1/2",
                                 "m/99999999999999999999", "../m", ""])
def test_bad_refs(api, ref):
    register(api, "m")
    r = api.get("/api/v1/resolve", params={"ref": ref})
    assert 400 <= r.status_code < 500, (ref, r.status_code)
    error_of(r)


@pytest.mark.parametrize("as_of", ["yesterday", "2026-01-01T00:00:00", "2026-13-01T00:00:00Z",
                                   "9" * 100])
def test_bad_times(api, as_of):
    register(api, "m", aliases=["champion"])
    r = api.get("/api/v1/models/m/aliases/champion", params={"as_of": as_of})
    assert 400 <= r.status_code < 500
    error_of(r)


def test_bad_upload_requests(api):
    d = hashlib.sha256(b"x").hexdigest()
    assert api.post("/api/v1/uploads", json={"sha256": d, "size": -1}).status_code == 422
    assert api.post("/api/v1/uploads", json={"sha256": "nothex", "size": 1}).status_code == 400
    r = api.post("/api/v1/uploads", json={"sha256": d, "size": 10**20})
    assert r.status_code in (413, 422)
    assert api.patch("/api/v1/uploads/doesnotexist", content=b"x",
                     headers={"content-range": "bytes 0-0/1"}).status_code == 404
    uid = api.post("/api/v1/uploads", json={"sha256": d, "size": 1}).json()["upload_id"]
    assert api.patch(f"/api/v1/uploads/{uid}", content=b"x").status_code == 416
    assert api.patch(f"/api/v1/uploads/{uid}", content=b"x",
                     headers={"content-range": "bytes x-y/1"}).status_code == 416
    assert api.delete(f"/api/v1/uploads/{uid}").status_code == 204
    assert api.get(f"/api/v1/uploads/{uid}").status_code == 404


def test_unknown_route_and_method_are_json(api):
    r = api.get("/api/v1/nothing")
    assert r.status_code == 404
    error_of(r)
    r = api.delete("/api/v1/models")
    assert r.status_code == 405
    error_of(r)


def test_server_never_fetches_client_locations(api):
    # A URI in metadata is data, never fetched: registration succeeds offline instantly.
    v = register(api, "m", metadata={"training_data": {"uri": "http://169.254.169.254/latest"}})
    assert v["metadata"]["training_data"]["uri"] == "http://169.254.169.254/latest"
