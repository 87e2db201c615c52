"""Local single-user mode, passwords, trusted-proxy headers and the web-session hook."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from regista.errors import Conflict, Forbidden, Invalid, Unauthenticated
from regista.service.container import Services
from tests.identity.conftest import LOCAL, PASSWORD, add_user, bearer


def test_local_mode_until_the_first_user(api: TestClient, services: Services,
                                         caplog: pytest.LogCaptureFixture) -> None:
    import regista.service.identity as identity_module

    identity_module._local_warned = False  # the warning is once per process
    with caplog.at_level(logging.WARNING, logger="regista.identity"):
        who = api.get("/api/v1/whoami")
        api.get("/api/v1/whoami")
    assert who.status_code == 200
    assert who.json()["name"] == "local" and who.json()["local_mode"] is True
    assert sum("LOCAL single-user mode" in r.message for r in caplog.records) == 1

    # Bootstrap: the local actor creates the first admin, with a token shown once.
    r = api.post("/api/v1/users", json={"name": "Root", "admin": True, "issue_token": True})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "root"  # names are kept in their normal form
    token = r.json()["token"]["secret"]

    # Local mode is over, for good: no credentials → 401 with a helpful message.
    r = api.get("/api/v1/models")
    assert r.status_code == 401
    assert "rgst_" in r.json()["error"]["message"]
    assert api.post("/api/v1/models", json={"name": "m"}).status_code == 401
    assert services.identity.is_local_mode() is False
    who = api.get("/api/v1/whoami", headers=bearer(token))
    assert who.json()["name"] == "root" and who.json()["local_mode"] is False
    assert api.post("/api/v1/models", json={"name": "m"}, headers=bearer(token)).status_code == 201


def test_first_user_from_another_process_ends_local_mode(services: Services,
                                                         make_services: Any) -> None:
    other = make_services()
    assert services.identity.is_local_mode() is True
    other.identity.create_user(LOCAL, "first", admin=True)
    # This process learns within LOCAL_MODE_TTL_SECONDS; force the refresh for the test.
    services.identity._local_until = 0.0
    assert services.identity.is_local_mode() is False


def test_service_accounts_do_not_end_local_mode(services: Services) -> None:
    services.identity.create_service_account(LOCAL, "bot")
    services.identity.create_team(LOCAL, "crew")
    assert services.identity.is_local_mode() is True


def test_auth_mode_tokens_and_local(make_client: Any) -> None:
    strict = make_client(auth_mode="tokens")
    assert strict.get("/api/v1/whoami").status_code == 401
    assert strict.get("/api/v1/health").status_code == 200  # public
    dev = make_client(auth_mode="local")
    services: Services = dev.app.state.services  # type: ignore[attr-defined]
    add_user(services, "someone", role="viewer")
    assert dev.get("/api/v1/whoami").json()["local_mode"] is True


def test_unknown_auth_mode_is_refused_at_start(make_services: Any) -> None:
    with pytest.raises(Invalid):
        make_services(auth_mode="token")


def test_passwords(services: Services) -> None:
    identity = services.identity
    identity.create_user(LOCAL, "pat", password=PASSWORD)
    identity.create_user(LOCAL, "quinn")  # no password: token-only
    actor = identity.authenticate_password("Pat", PASSWORD)
    assert actor.name == "pat" and actor.principal_id is not None
    for name, password in (("pat", "wrong password!"), ("nobody", PASSWORD), ("quinn", PASSWORD),
                           ("pat", ""), ("", PASSWORD), ("pat", "x" * 5000)):
        with pytest.raises(Unauthenticated):
            identity.authenticate_password(name, password)
    with pytest.raises(Invalid):
        identity.create_user(LOCAL, "short", password="tiny")
    # Change one's own password: the current one is required.
    with pytest.raises(Forbidden):
        identity.set_password(actor, "pat", "a brand new password", current_password="nope")
    identity.set_password(actor, "pat", "a brand new password", current_password=PASSWORD)
    assert identity.authenticate_password("pat", "a brand new password").name == "pat"
    identity.set_disabled(LOCAL, "pat", True)
    with pytest.raises(Unauthenticated):
        identity.authenticate_password("pat", "a brand new password")
    with pytest.raises(Unauthenticated):
        identity.actor_for_user("pat")


def test_password_hashes_never_leave_the_server(api: TestClient, services: Services) -> None:
    admin = add_user(services, "rae", role="admin", password=PASSWORD)
    for path in ("/api/v1/users", "/api/v1/users/rae", "/api/v1/whoami"):
        r = api.get(path, headers=bearer(admin))
        assert r.status_code == 200
        assert "argon2" not in r.text and PASSWORD not in r.text
    r = api.get("/api/v1/users/rae", headers=bearer(admin))
    assert r.json()["has_password"] is True


PROXY = {"trusted_proxy_header": "X-Forwarded-User", "trusted_proxy_ips": ["10.0.0.0/8", "::1"]}


def test_trusted_proxy_header(make_client: Any, services: Services) -> None:
    add_user(services, "sam", role="viewer")
    services.identity.create_user(LOCAL, "tess")
    services.identity.set_disabled(LOCAL, "tess", True)
    proxied = make_client(client=("10.1.2.3", 40000), **PROXY)
    r = proxied.get("/api/v1/whoami", headers={"X-Forwarded-User": "sam"})
    assert r.status_code == 200 and r.json()["name"] == "sam"
    assert proxied.get("/api/v1/models", headers={"X-Forwarded-User": "sam"}).status_code == 200
    assert proxied.post("/api/v1/models", json={"name": "m"},
                        headers={"X-Forwarded-User": "sam"}).status_code == 403
    for user in ("stranger", "tess", "", "a" * 300):
        r = proxied.get("/api/v1/whoami", headers={"X-Forwarded-User": user})
        assert r.status_code == 401, user

    # The same header from a peer that is not a trusted proxy is refused, not believed.
    direct = make_client(client=("192.168.1.20", 40000), **PROXY)
    r = direct.get("/api/v1/whoami", headers={"X-Forwarded-User": "sam"})
    assert r.status_code == 401
    assert r.json()["error"]["details"]["reason"] == "untrusted_proxy"
    # Without the option the header means nothing (and users exist: credentials needed).
    plain = make_client(client=("10.1.2.3", 40000))
    assert plain.get("/api/v1/whoami", headers={"X-Forwarded-User": "sam"}).status_code == 401


class _SessionUser:
    """What the web layer does for a signed-in browser: put the user in the request state."""

    def __init__(self, app: ASGIApp, user: str) -> None:
        self.app, self.user = app, user

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["session_user"] = self.user
        await self.app(scope, receive, send)


def test_web_session_hook(app: Any, services: Services) -> None:
    add_user(services, "uma", role="viewer")
    with TestClient(_SessionUser(app, "uma"), raise_server_exceptions=False) as client:
        assert client.get("/api/v1/whoami").json()["name"] == "uma"
    with TestClient(_SessionUser(app, "ghost"), raise_server_exceptions=False) as client:
        assert client.get("/api/v1/whoami").status_code == 401


def test_principal_names(services: Services) -> None:
    identity = services.identity
    identity.create_user(LOCAL, "Vera.Smith")
    with pytest.raises(Conflict):
        identity.create_user(LOCAL, "vera_smith")  # same normal form
    with pytest.raises(Conflict):
        identity.create_team(LOCAL, "VERA-SMITH")
    for bad in ("", "-x", "a b", "x" * 200, "local", "System", "é"):
        with pytest.raises(Invalid):
            identity.create_user(LOCAL, bad)
    assert identity.actor_for_user("VERA.SMITH").name == "vera-smith"
