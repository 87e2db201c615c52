"""A refused governed action is itself audited: once, in its own transaction."""

from __future__ import annotations

from fastapi.testclient import TestClient

from regista.service.container import Services
from tests.identity.conftest import LOCAL, add_user, audit_rows, bearer


def test_route_level_denial_is_audited(api: TestClient, services: Services) -> None:
    viewer = add_user(services, "vic", role="viewer")
    r = api.post("/api/v1/models", json={"name": "nope"}, headers=bearer(viewer))
    assert r.status_code == 403
    assert r.json()["error"]["details"]["permission"] == "model:create"
    (row,) = audit_rows(services, outcome="denied")
    assert (row.actor, row.action, row.target) == ("vic", "model:create", "/api/v1/models")
    assert row.after == {"method": "POST"}
    assert row.request_id == r.headers["x-request-id"]
    assert audit_rows(services, action="model.create") == []


def test_service_level_denial_is_audited_once_and_rolled_back(api: TestClient,
                                                              services: Services) -> None:
    services.registry.create_model(LOCAL, "mine")
    services.registry.create_model(LOCAL, "theirs", description="before")
    token = add_user(services, "wes", role="maintainer", model="mine")
    # The route's coarse check passes (wes holds model:update somewhere); the service refuses.
    r = api.patch("/api/v1/models/theirs", json={"description": "after"}, headers=bearer(token))
    assert r.status_code == 403
    rows = audit_rows(services, outcome="denied")
    assert len(rows) == 1
    assert (rows[0].actor, rows[0].action, rows[0].model, rows[0].target) == (
        "wes", "model:update", "theirs", "/api/v1/models/theirs")
    assert services.registry.get_model(LOCAL, "theirs").description == "before"
    assert audit_rows(services, action="model.update") == []


def test_reads_are_not_audited_and_401_is_not_a_denial(api: TestClient, services: Services) -> None:
    services.registry.create_model(LOCAL, "secret-model")
    services.registry.create_model(LOCAL, "other")
    token = add_user(services, "xia", role="viewer", model="other")
    assert api.get("/api/v1/models/secret-model", headers=bearer(token)).status_code == 403
    assert api.post("/api/v1/models", json={"name": "m"}).status_code == 401
    assert audit_rows(services, outcome="denied") == []


def test_identity_denials_are_audited(api: TestClient, services: Services) -> None:
    token = add_user(services, "yan", role="maintainer")
    r = api.post("/api/v1/users", json={"name": "intruder", "admin": True}, headers=bearer(token))
    assert r.status_code == 403
    r = api.post("/api/v1/role-bindings", json={"principal": "yan", "role": "admin"},
                 headers=bearer(token))
    assert r.status_code == 403
    actions = [(row.actor, row.action) for row in audit_rows(services, outcome="denied")]
    assert actions == [("yan", "principal:manage"), ("yan", "principal:manage")]
    assert audit_rows(services, action="principal.create", target="intruder") == []
