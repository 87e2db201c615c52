"""API tokens: issue, use, expire, revoke (at once, on every process), scopes, bad tokens."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from regista.errors import Forbidden, Invalid
from regista.service.container import Services
from regista.store.sql.tables import api_tokens
from tests.identity.conftest import LOCAL, add_user, audit_rows, bearer


def _set_expiry(services: Services, token_id: str, when: datetime) -> None:
    with services.db.write() as conn:
        conn.execute(sa.update(api_tokens).where(api_tokens.c.token_id == token_id)
                     .values(expires_at=when))


def test_token_lifecycle(api: TestClient, services: Services) -> None:
    admin = add_user(services, "alice", role="admin")
    r = api.post("/api/v1/tokens", json={"name": "laptop"}, headers=bearer(admin))
    assert r.status_code == 201, r.text
    issued = r.json()
    secret = issued["secret"]
    assert secret.startswith("rgst_" + issued["token_id"] + "_")
    assert issued["prefix"] == "rgst_" + issued["token_id"]
    assert issued["principal"] == "alice"
    # Default lifetime is the maximum: 90 days.
    expires = datetime.fromisoformat(issued["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=89) < expires - datetime.now(UTC) <= timedelta(days=90)

    who = api.get("/api/v1/whoami", headers=bearer(secret))
    assert who.status_code == 200, who.text
    assert who.json()["name"] == "alice"
    assert who.json()["local_mode"] is False
    assert who.json()["token"]["token_id"] == issued["token_id"]
    assert {"role": "admin", "scope_type": "registry", "scope": "", "via": None} in who.json()["roles"]

    # Listing never shows a secret or its hash.
    listed = api.get("/api/v1/tokens", headers=bearer(secret))
    assert listed.status_code == 200
    assert {t["token_id"] for t in listed.json()} >= {issued["token_id"]}
    assert secret[-40:] not in listed.text and "secret" not in listed.text

    # last_used_at was recorded (once; not on every request).
    with services.db.read() as conn:
        used = conn.execute(sa.select(api_tokens.c.last_used_at)
                            .where(api_tokens.c.token_id == issued["token_id"])).scalar_one()
    assert used is not None
    api.get("/api/v1/whoami", headers=bearer(secret))
    with services.db.read() as conn:
        again = conn.execute(sa.select(api_tokens.c.last_used_at)
                             .where(api_tokens.c.token_id == issued["token_id"])).scalar_one()
    assert again == used

    # Revoked: refused on the very next request.
    r = api.delete(f"/api/v1/tokens/{issued['token_id']}", headers=bearer(secret))
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    r = api.get("/api/v1/whoami", headers=bearer(secret))
    assert r.status_code == 401
    assert r.json()["error"]["details"]["reason"] == "revoked_token"
    assert "revoked" in r.json()["error"]["message"]

    # Neither the secret nor its hash ever reached the audit log.
    digest = hashlib.sha256(secret.split("_", 2)[2].encode()).hexdigest()
    for row in audit_rows(services):
        text = orjson.dumps([row.before, row.after, row.target]).decode()
        assert secret[-40:] not in text and digest not in text
    actions = [r.action for r in audit_rows(services, target="alice")]
    assert "token.create" in actions and "token.revoke" in actions


def test_expired_token_is_refused(api: TestClient, services: Services) -> None:
    token = add_user(services, "bob", role="viewer")
    assert api.get("/api/v1/models", headers=bearer(token)).status_code == 200
    _set_expiry(services, token.split("_")[1], datetime.now(UTC) - timedelta(seconds=1))
    r = api.get("/api/v1/models", headers=bearer(token))
    assert r.status_code == 401
    assert r.json()["error"]["details"]["reason"] == "expired_token"


def test_revocation_takes_effect_on_every_process(services: Services, make_client: Any) -> None:
    token = add_user(services, "carol", role="viewer")
    first = make_client()
    second = make_client()  # another "server process" on the same database
    for client in (first, second):
        assert client.get("/api/v1/whoami", headers=bearer(token)).status_code == 200
    r = first.delete(f"/api/v1/tokens/{token.split('_')[1]}", headers=bearer(token))
    assert r.status_code == 200
    for client in (first, second):
        assert client.get("/api/v1/whoami", headers=bearer(token)).status_code == 401


def test_disabling_a_user_stops_its_tokens(api: TestClient, services: Services) -> None:
    admin = add_user(services, "root", role="admin")
    token = add_user(services, "dave", role="viewer")
    assert api.get("/api/v1/models", headers=bearer(token)).status_code == 200
    assert api.post("/api/v1/users/dave/disable", headers=bearer(admin)).status_code == 200
    r = api.get("/api/v1/models", headers=bearer(token))
    assert r.status_code == 401 and r.json()["error"]["details"]["reason"] == "disabled"
    assert api.post("/api/v1/users/dave/enable", headers=bearer(admin)).status_code == 200
    assert api.get("/api/v1/models", headers=bearer(token)).status_code == 200


def test_out_of_scope_tokens_are_refused(api: TestClient, services: Services) -> None:
    services.registry.create_model(LOCAL, "alpha")
    services.registry.create_model(LOCAL, "beta")
    read_only = add_user(services, "erin", role="maintainer", scopes=["model:read"])
    assert api.get("/api/v1/models/alpha", headers=bearer(read_only)).status_code == 200
    r = api.patch("/api/v1/models/alpha", json={"description": "x"}, headers=bearer(read_only))
    assert r.status_code == 403
    assert r.json()["error"]["details"]["permission"] == "model:update"

    only_alpha = services.identity.create_token(LOCAL, principal="erin", models=["Alpha"]).secret
    ok = api.patch("/api/v1/models/alpha", json={"description": "x"}, headers=bearer(only_alpha))
    assert ok.status_code == 200, ok.text
    r = api.patch("/api/v1/models/beta", json={"description": "x"}, headers=bearer(only_alpha))
    assert r.status_code == 403
    assert "restricted to models alpha" in r.json()["error"]["message"]
    # Listing every model is a registry-wide read: not for a model-restricted token.
    assert api.get("/api/v1/models", headers=bearer(only_alpha)).status_code == 403

    # A role name works as a scope, and still only narrows: the viewer's rights win.
    narrowed = add_user(services, "fay", role="viewer", scopes=["maintainer"])
    r = api.patch("/api/v1/models/alpha", json={"description": "y"}, headers=bearer(narrowed))
    assert r.status_code == 403


def test_a_token_cannot_mint_a_wider_token(api: TestClient, services: Services) -> None:
    narrow = add_user(services, "gus", role="admin", scopes=["viewer"], models=["m"])
    r = api.post("/api/v1/tokens", json={"scopes": ["admin"]}, headers=bearer(narrow))
    assert r.status_code == 403
    r = api.post("/api/v1/tokens", json={"models": ["other"]}, headers=bearer(narrow))
    assert r.status_code == 403
    r = api.post("/api/v1/tokens", json={"name": "same"}, headers=bearer(narrow))
    assert r.status_code == 201, r.text
    assert r.json()["scopes"] == ["model:read"] and r.json()["models"] == ["m"]
    # Nor change its user's password (which would open an unrestricted web session).
    r = api.put("/api/v1/whoami/password", json={"password": "a" * 20}, headers=bearer(narrow))
    assert r.status_code == 403


@pytest.mark.parametrize("body", [
    {"expires_in_days": 91},
    {"expires_in_days": 0},
    {"expires_at": "2001-01-01T00:00:00Z"},
    {"expires_at": (datetime.now(UTC) + timedelta(days=400)).isoformat()},
    {"scopes": ["model:fly"]},
    {"scopes": "model:read"},
    {"models": ["../etc"]},
    {"name": ""},
    {"name": "x" * 201},
])
def test_bad_token_requests_are_4xx(api: TestClient, services: Services, body: dict[str, Any]) -> None:
    token = add_user(services, "hal")
    r = api.post("/api/v1/tokens", json=body, headers=bearer(token))
    assert r.status_code == 422, r.text


def test_max_lifetime_is_configurable(services: Services, make_services: Any) -> None:
    short = make_services(token_max_lifetime_days=7)
    add_user(short, "ivy")
    with pytest.raises(Invalid):
        short.identity.create_token(LOCAL, principal="ivy", expires_in_days=8)
    issued = short.identity.create_token(LOCAL, principal="ivy")
    assert issued.token.expires_at is not None
    assert issued.token.expires_at - datetime.now(UTC) <= timedelta(days=7)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("header", [
    "Bearer",
    "Bearer ",
    "Bearer rgst_",
    "Bearer rgst_zz",
    "Bearer rgst_0123456789abcdef_",
    "Bearer rgst_0123456789abcdef_" + "a" * 40,  # well formed, unknown
    "Bearer rgst_0123456789ABCDEF_" + "a" * 40,
    "Bearer rgst_0123456789abcdef_" + "a" * 39 + "!",
    "Bearer rgst_0123456789abcdef_" + "a" * 41,
    "Bearer ghp_abcdef",
    "Bearer " + "rgst_" * 2000,
    "Basic !!!",
    "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    _basic("x", "password"),
    "Digest username=x",
    "rgst_0123456789abcdef_" + "a" * 40,
])
def test_malformed_tokens_are_401_not_500(api: TestClient, services: Services, header: str) -> None:
    add_user(services, "jo", role="admin")  # local mode is over: credentials are checked
    for method, path in (("GET", "/api/v1/models"), ("POST", "/api/v1/models")):
        r = api.request(method, path, headers={"Authorization": header}, json={"name": "m"})
        assert r.status_code == 401, (header[:60], r.text)
        assert r.json()["error"]["code"] == "unauthenticated"


def test_wrong_secret_for_a_real_token_id(api: TestClient, services: Services) -> None:
    token = add_user(services, "kim", role="viewer")
    forged = token[:-1] + ("b" if token[-1] != "b" else "c")
    r = api.get("/api/v1/models", headers=bearer(forged))
    assert r.status_code == 401
    assert r.json()["error"]["details"]["reason"] == "invalid_token"


def test_basic_auth_with_a_token_as_password(api: TestClient, services: Services) -> None:
    token = add_user(services, "lee", role="viewer")
    assert api.get("/api/v1/whoami", headers={"Authorization": _basic("lee", token)}).json()["name"] == "lee"
    assert api.get("/api/v1/whoami", headers={"Authorization": _basic("", token)}).status_code == 200
    assert api.get("/api/v1/whoami", headers={"Authorization": _basic("mo", token)}).status_code == 401


def test_tokens_of_others(api: TestClient, services: Services) -> None:
    admin = add_user(services, "ned", role="admin")
    other = add_user(services, "ola", role="viewer")
    services.identity.create_service_account(LOCAL, "ci-bot")
    # Someone else's token id is "not found" to a non-admin (no probing)...
    r = api.delete(f"/api/v1/tokens/{admin.split('_')[1]}", headers=bearer(other))
    assert r.status_code == 404
    assert api.get("/api/v1/whoami", headers=bearer(admin)).status_code == 200
    # ... and revocable by an admin.
    r = api.delete(f"/api/v1/tokens/{other.split('_')[1]}", headers=bearer(admin))
    assert r.status_code == 200
    # Admins issue tokens for service accounts; the secret is shown once.
    r = api.post("/api/v1/principals/ci-bot/tokens", json={"scopes": ["contributor"]},
                 headers=bearer(admin))
    assert r.status_code == 201, r.text
    bot = r.json()["secret"]
    who = api.get("/api/v1/whoami", headers=bearer(bot)).json()
    assert who["name"] == "ci-bot" and who["kind"] == "service"
    all_tokens = api.get("/api/v1/tokens/all", headers=bearer(admin))
    assert {t["principal"] for t in all_tokens.json()} >= {"ned", "ola", "ci-bot"}
    assert api.get("/api/v1/tokens/all", headers=bearer(bot)).status_code == 403
    with pytest.raises(Forbidden):
        services.identity.list_tokens(services.identity.actor_for_user("ola"), all_principals=True)
