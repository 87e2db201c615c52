"""Roles at registry, team and model scope; teams; has_role; never locking out the admins."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

from regista.errors import Conflict, Forbidden, Invalid, NotFound
from regista.service.access import Permission
from regista.service.authz import ROLE_PERMISSIONS, Role, RoleAuthorizer
from regista.service.container import Services
from tests.identity.conftest import LOCAL, add_user, audit_rows, bearer


def _upload(api: TestClient, token: str, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    r = api.put(f"/api/v1/blobs/{digest}", content=data, headers=bearer(token))
    assert r.status_code in (200, 201), r.text
    return digest


def _register(api: TestClient, token: str, model: str) -> int:
    data = b"weights of " + model.encode()
    body = {"files": [{"path": "model.bin", "sha256": _upload(api, token, data), "size": len(data)}]}
    return api.post(f"/api/v1/models/{model}/versions", json=body, headers=bearer(token)).status_code


def test_role_table_is_data_and_nested_sensibly() -> None:
    assert ROLE_PERMISSIONS[Role.ADMIN] == frozenset(Permission)
    assert ROLE_PERMISSIONS[Role.VIEWER] < ROLE_PERMISSIONS[Role.CONTRIBUTOR] < ROLE_PERMISSIONS[
        Role.MAINTAINER]
    # Separation of duties: only admin both registers and approves.
    assert Permission.TRANSITION_APPROVE not in ROLE_PERMISSIONS[Role.MAINTAINER]
    assert Permission.VERSION_REGISTER not in ROLE_PERMISSIONS[Role.APPROVER]
    for role in (Role.VIEWER, Role.CONTRIBUTOR, Role.APPROVER, Role.MAINTAINER):
        assert Permission.PRINCIPAL_MANAGE not in ROLE_PERMISSIONS[role]
        assert Permission.TRANSITION_BREAK_GLASS not in ROLE_PERMISSIONS[role]


def test_team_scoped_bindings(api: TestClient, services: Services) -> None:
    identity = services.identity
    identity.create_team(LOCAL, "risk")
    identity.create_team(LOCAL, "growth")
    services.registry.create_model(LOCAL, "fraud", owner_team="Risk")
    services.registry.create_model(LOCAL, "churn", owner_team="growth")
    services.registry.create_model(LOCAL, "orphan")
    token = add_user(services, "ann")
    identity.grant_role(LOCAL, "risk", "contributor", team="risk")
    # Not a member yet: the team's binding is not hers.
    assert api.get("/api/v1/models/fraud", headers=bearer(token)).status_code == 403
    identity.add_member(LOCAL, "risk", "ann")
    assert api.get("/api/v1/models/fraud", headers=bearer(token)).status_code == 200
    assert _register(api, token, "fraud") == 201
    r = api.put("/api/v1/models/fraud/aliases/candidate", json={"version": 1}, headers=bearer(token))
    assert r.status_code == 200, r.text
    # Other teams' models and unowned models are out of reach.
    assert api.get("/api/v1/models/churn", headers=bearer(token)).status_code == 403
    assert _register(api, token, "churn") == 403
    assert _register(api, token, "orphan") == 403
    # A contributor does not edit models (maintainer does).
    assert api.patch("/api/v1/models/fraud", json={"description": "x"},
                     headers=bearer(token)).status_code == 403
    # Creating a model owned by her team is a team-scoped action; another team's is not.
    assert api.post("/api/v1/models", json={"name": "fraud-2", "owner_team": "risk"},
                    headers=bearer(token)).status_code == 201
    assert api.post("/api/v1/models", json={"name": "churn-2", "owner_team": "growth"},
                    headers=bearer(token)).status_code == 403
    who = api.get("/api/v1/whoami", headers=bearer(token)).json()
    assert who["principal"]["teams"] == ["risk"]
    assert {"role": "contributor", "scope_type": "team", "scope": "risk", "via": "risk"} in who["roles"]

    # Leaving the team, or the team being disabled, ends it at once.
    identity.set_disabled(LOCAL, "risk", True)
    assert api.get("/api/v1/models/fraud", headers=bearer(token)).status_code == 403
    identity.set_disabled(LOCAL, "risk", False)
    assert api.get("/api/v1/models/fraud", headers=bearer(token)).status_code == 200
    identity.remove_member(LOCAL, "risk", "ann")
    assert api.get("/api/v1/models/fraud", headers=bearer(token)).status_code == 403


def test_model_scoped_bindings(api: TestClient, services: Services) -> None:
    services.registry.create_model(LOCAL, "Model.One")
    services.registry.create_model(LOCAL, "model-two")
    token = add_user(services, "ben", role="maintainer", model="model_one")
    assert api.patch("/api/v1/models/model.one", json={"description": "mine"},
                     headers=bearer(token)).status_code == 200
    assert api.patch("/api/v1/models/model-two", json={"description": "not mine"},
                     headers=bearer(token)).status_code == 403
    assert api.get("/api/v1/models/model-two", headers=bearer(token)).status_code == 403
    # The coarse route check passes (she holds model:read somewhere), the scoped one does not.
    assert api.get("/api/v1/models", headers=bearer(token)).status_code == 403
    r = api.post("/api/v1/models/model-two/archive", headers=bearer(token))
    assert r.status_code == 403
    assert r.json()["error"]["details"] == {"permission": "model:archive", "scope_type": "model",
                                            "scope": "model-two", "model": "model-two"}


def test_has_role(services: Services) -> None:
    authz = services.registry.authz
    assert isinstance(authz, RoleAuthorizer)
    identity = services.identity
    services.registry.create_model(LOCAL, "credit", owner_team="lending")
    identity.create_team(LOCAL, "lending")
    identity.create_user(LOCAL, "cat")
    identity.create_user(LOCAL, "dan")
    identity.create_user(LOCAL, "eve")
    identity.grant_role(LOCAL, "cat", "approver", model="credit")
    identity.grant_role(LOCAL, "dan", "maintainer")
    identity.grant_role(LOCAL, "lending", "admin", team="lending")
    identity.add_member(LOCAL, "lending", "eve")
    cat, dan, eve = (identity.actor_for_user(n) for n in ("cat", "dan", "eve"))
    assert authz.has_role(cat, "approver", model="credit")
    assert not authz.has_role(cat, "approver", model="other")
    assert not authz.has_role(cat, "approver")
    assert not authz.has_role(dan, "approver", model="credit")  # maintainer does not approve
    assert authz.has_role(dan, "contributor", model="credit")
    assert authz.has_role(eve, "approver", model="credit")  # team admin, via membership
    assert authz.has_role(eve, "approver", model="credit", team="lending")
    assert not authz.has_role(eve, "approver", model="elsewhere")
    assert not authz.has_role(cat, "risk-officer", model="credit")  # unknown role: never
    assert authz.has_role(LOCAL, "admin")
    # A token narrowed below the role does not carry it.
    token = identity.create_token(LOCAL, principal="cat", scopes=["model:read"])
    narrow, _ = identity.authenticate_token(token.secret)
    assert not authz.has_role(narrow, "approver", model="credit")
    full, _ = identity.authenticate_token(
        identity.create_token(LOCAL, principal="cat", scopes=["approver"]).secret)
    assert authz.has_role(full, "approver", model="credit")


def test_role_bindings_api(api: TestClient, services: Services) -> None:
    admin = add_user(services, "fin", role="admin")
    services.registry.create_model(LOCAL, "scorer")
    token = add_user(services, "gil")
    r = api.post("/api/v1/role-bindings", json={"principal": "gil", "role": "maintainer",
                                                "model": "scorer"}, headers=bearer(admin))
    assert r.status_code == 201, r.text
    binding = r.json()
    assert binding["scope_type"] == "model" and binding["scope"] == "scorer"
    again = api.post("/api/v1/role-bindings", json={"principal": "gil", "role": "maintainer",
                                                    "model": "scorer"}, headers=bearer(admin))
    assert again.json()["id"] == binding["id"]  # idempotent
    listed = api.get("/api/v1/role-bindings?model=scorer", headers=bearer(admin)).json()
    assert [b["principal"] for b in listed] == ["gil"]
    assert api.patch("/api/v1/models/scorer", json={"description": "x"},
                     headers=bearer(token)).status_code == 200
    r = api.delete(f"/api/v1/role-bindings/{binding['id']}", headers=bearer(admin))
    assert r.status_code == 200
    assert api.patch("/api/v1/models/scorer", json={"description": "y"},
                     headers=bearer(token)).status_code == 403
    grants = audit_rows(services, action="role.grant", target="gil")
    revokes = audit_rows(services, action="role.revoke", target="gil")
    assert len(grants) == 1 and len(revokes) == 1
    assert grants[0].actor == "fin" and grants[0].model == "scorer"
    for body, status in (({"principal": "gil", "role": "overlord"}, 422),
                         ({"principal": "nobody", "role": "viewer"}, 404),
                         ({"principal": "gil", "role": "viewer", "model": "missing"}, 404),
                         ({"principal": "gil", "role": "viewer", "team": "missing"}, 404),
                         ({"principal": "gil", "role": "viewer", "team": "t", "model": "scorer"}, 422),
                         ({"principal": "gil", "role": "viewer", "extra": 1}, 422)):
        r = api.post("/api/v1/role-bindings", json=body, headers=bearer(admin))
        assert r.status_code == status, (body, r.text)
    assert api.delete("/api/v1/role-bindings/999999", headers=bearer(admin)).status_code == 404
    assert api.delete("/api/v1/role-bindings/abc", headers=bearer(admin)).status_code == 422


def test_a_model_admin_manages_roles_on_its_model_only(services: Services) -> None:
    identity = services.identity
    services.registry.create_model(LOCAL, "mine")
    services.registry.create_model(LOCAL, "theirs")
    identity.create_user(LOCAL, "hana")
    identity.create_user(LOCAL, "ivan")
    identity.grant_role(LOCAL, "hana", "admin", model="mine")
    hana = identity.actor_for_user("hana")
    identity.grant_role(hana, "ivan", "viewer", model="mine")
    with pytest.raises(Forbidden):
        identity.grant_role(hana, "ivan", "viewer", model="theirs")
    with pytest.raises(Forbidden):
        identity.grant_role(hana, "ivan", "viewer")
    with pytest.raises(Forbidden):
        identity.create_user(hana, "jack")


def test_the_last_admin_cannot_be_removed(services: Services) -> None:
    identity = services.identity
    identity.create_user(LOCAL, "kay", admin=True)
    kay = identity.actor_for_user("kay")
    (binding,) = identity.list_role_bindings(kay, principal="kay")
    with pytest.raises(Conflict):
        identity.revoke_role(kay, binding.id)
    with pytest.raises(Conflict):
        identity.set_disabled(kay, "kay", True)
    # Admin through a team counts too; removing the last such member is refused.
    identity.create_team(kay, "ops")
    identity.grant_role(kay, "ops", "admin")
    identity.create_user(kay, "lou")
    identity.add_member(kay, "ops", "lou")
    identity.revoke_role(kay, binding.id)  # lou still is an admin, via ops
    with pytest.raises(Conflict):
        identity.remove_member(identity.actor_for_user("lou"), "ops", "lou")
    with pytest.raises(Conflict):
        identity.set_disabled(LOCAL, "ops", True)


def test_teams_api(api: TestClient, services: Services) -> None:
    admin = add_user(services, "max", role="admin")
    viewer = add_user(services, "ned", role="viewer")
    services.identity.create_service_account(LOCAL, "bot")
    assert api.post("/api/v1/teams", json={"name": "vision"}, headers=bearer(admin)).status_code == 201
    for member in ("ned", "bot"):
        r = api.put(f"/api/v1/teams/vision/members/{member}", headers=bearer(admin))
        assert r.status_code == 200, r.text
    r = api.put("/api/v1/teams/vision/members/ned", headers=bearer(admin))  # idempotent
    assert r.json()["members"] == ["bot", "ned"]
    assert len(audit_rows(services, action="team.member.add")) == 2
    # Anyone who can read the registry sees the teams; only admins change them.
    teams = api.get("/api/v1/teams", headers=bearer(viewer))
    assert teams.status_code == 200 and teams.json()[0]["members"] == ["bot", "ned"]
    assert api.put("/api/v1/teams/vision/members/max", headers=bearer(viewer)).status_code == 403
    assert api.put("/api/v1/teams/vision/members/vision", headers=bearer(admin)).status_code == 422
    assert api.put("/api/v1/teams/nope/members/ned", headers=bearer(admin)).status_code == 404
    assert api.put("/api/v1/teams/ned/members/max", headers=bearer(admin)).status_code == 404
    assert api.delete("/api/v1/teams/vision/members/ned", headers=bearer(admin)).status_code == 200
    assert api.delete("/api/v1/teams/vision/members/ned", headers=bearer(admin)).status_code == 404
    assert api.post("/api/v1/teams", json={"name": "Vision"}, headers=bearer(admin)).status_code == 409
    assert services.identity.get_principal(LOCAL, "vision").members == ["bot"]
    with pytest.raises(NotFound):
        services.identity.get_principal(LOCAL, "nobody")


def test_users_api(api: TestClient, services: Services) -> None:
    admin = add_user(services, "olga", role="admin")
    r = api.post("/api/v1/users", json={"name": "pia", "display_name": "Pia P.",
                                        "email": "pia@example.com", "password": "p" * 16},
                 headers=bearer(admin))
    assert r.status_code == 201, r.text
    assert r.json()["display_name"] == "Pia P." and r.json()["has_password"] is True
    assert "token" not in r.json()
    assert api.get("/api/v1/users/pia", headers=bearer(admin)).json()["email"] == "pia@example.com"
    assert [u["name"] for u in api.get("/api/v1/users", headers=bearer(admin)).json()] == ["olga", "pia"]
    assert api.get("/api/v1/users/nobody", headers=bearer(admin)).status_code == 404
    for body in ({"name": "x", "email": "not-an-email"}, {"name": "x", "password": "short"},
                 {"name": "bad name"}, {"name": "y", "unknown": 1}, {}):
        assert api.post("/api/v1/users", json=body, headers=bearer(admin)).status_code == 422, body
    created = audit_rows(services, action="principal.create", target="pia")
    assert len(created) == 1 and created[0].after["password_set"] is True
    assert "p" * 16 not in str(created[0].after)
    r = api.put("/api/v1/users/pia/password", json={"password": "q" * 16}, headers=bearer(admin))
    assert r.status_code == 204
    assert services.identity.authenticate_password("pia", "q" * 16).name == "pia"
    with pytest.raises(Invalid):
        services.identity.set_password(LOCAL, "pia", "short")
