"""Hygiene over HTTP: the three endpoints, their rules, and bad input."""

from __future__ import annotations

from tests.api.helpers import error_of, register, upload
from tests.hygiene.helpers import DAY, LOCAL, age_blob, blob_row, corrupt, events


def test_report_gc_and_verify_over_http(api, services):
    register(api, "fraud", {"model.bin": b"weights", "card.md": b"# card"})
    orphan = upload(api, b"never registered")
    age_blob(services, orphan, 2 * DAY)

    r = api.get("/api/v1/hygiene/report", params={"limit": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"generated_at", "orphaned_blobs", "stale_uploads", "superseded_versions",
                         "unverified_versions", "verification_failures"}
    assert body["generated_at"].endswith("Z")
    assert body["orphaned_blobs"]["count"] == 1
    assert body["orphaned_blobs"]["items"][0]["digest"] == orphan

    dry = api.post("/api/v1/hygiene/gc", json={"dry_run": True})
    assert dry.status_code == 200 and dry.json()["blobs"] == 1 and dry.json()["dry_run"] is True
    assert blob_row(services, orphan) is not None

    gc = api.post("/api/v1/hygiene/gc")  # no body: the defaults (grace one day)
    assert gc.status_code == 200, gc.text
    assert (gc.json()["blobs"], gc.json()["digests"]) == (1, [orphan])
    assert api.get(f"/api/v1/blobs/{orphan}").status_code == 404
    [event] = events(services, "hygiene.gc")
    assert event.seq == gc.json()["audit_seq"]

    card = register(api, "fraud", {"model.bin": b"weights", "card.md": b"# card"}, expect=201)
    digest = next(f["sha256"] for f in card["files"] if f["path"] == "card.md")
    corrupt(services, digest)
    v = api.post("/api/v1/hygiene/verify-blobs", json={"limit": 100})
    assert v.status_code == 200, v.text
    [bad] = v.json()["corrupt"]
    assert bad["digest"] == digest and {x["version"] for x in bad["versions"]} == {1, 2}
    after = api.get("/api/v1/hygiene/report").json()["verification_failures"]
    assert [i["digest"] for i in after["items"]] == [digest] and after["count"] == 1


def test_bad_input_is_a_422_naming_the_field(api):
    cases = [
        ("get", "/api/v1/hygiene/report", {"params": {"limit": 0}}, "limit"),
        ("get", "/api/v1/hygiene/report", {"params": {"limit": 1000}}, "limit"),
        ("get", "/api/v1/hygiene/report", {"params": {"limit": "ten"}}, "limit"),
        ("get", "/api/v1/hygiene/report", {"params": {"verify_window_seconds": -5}},
         "verify_window_seconds"),
        ("post", "/api/v1/hygiene/gc", {"json": {"grace_seconds": -1}}, "grace_seconds"),
        ("post", "/api/v1/hygiene/gc", {"json": {"grace_seconds": "1d"}}, "grace_seconds"),
        ("post", "/api/v1/hygiene/gc", {"json": {"dry_run": "perhaps"}}, "dry_run"),
        ("post", "/api/v1/hygiene/gc", {"json": {"force": True}}, "force"),
        ("post", "/api/v1/hygiene/gc", {"json": [1, 2]}, "body"),
        ("post", "/api/v1/hygiene/verify-blobs", {"json": {"limit": 0}}, "limit"),
        ("post", "/api/v1/hygiene/verify-blobs", {"json": {"older_than_seconds": -1}},
         "older_than_seconds"),
    ]
    for method, path, kwargs, field in cases:
        r = getattr(api, method)(path, **kwargs)
        assert r.status_code == 422, (path, kwargs, r.status_code, r.text)
        assert field in str(error_of(r)), (path, kwargs, r.text)


def test_rules(api, services):
    services.identity.create_user(LOCAL, "viewer")
    services.identity.grant_role(LOCAL, "viewer", "viewer")
    services.identity.create_user(LOCAL, "approver")
    services.identity.grant_role(LOCAL, "approver", "approver")
    services.identity.create_user(LOCAL, "root", admin=True)

    def auth(name: str) -> dict[str, str]:
        secret = services.identity.create_token(LOCAL, principal=name).secret
        return {"Authorization": f"Bearer {secret}"}

    # Local mode ended with the first user: no credentials, no access.
    assert api.get("/api/v1/hygiene/report").status_code == 401
    assert api.post("/api/v1/hygiene/gc").status_code == 401
    viewer, approver, root = auth("viewer"), auth("approver"), auth("root")
    assert api.get("/api/v1/hygiene/report", headers=viewer).status_code == 403
    assert api.get("/api/v1/hygiene/report", headers=approver).status_code == 200
    for path in ("/api/v1/hygiene/gc", "/api/v1/hygiene/verify-blobs"):
        r = api.post(path, headers=approver)
        assert r.status_code == 403 and error_of(r)["details"]["permission"] == "hygiene:run"
        assert api.post(path, headers=root).status_code == 200
    assert [e.actor for e in events(services, "hygiene.gc")] == ["root"]
