"""Short blocking endpoints run on the event loop (embedded mode), others in the pool.

Each spy records whether the service was called on the event loop's thread: there a loop
is running; in a thread-pool worker there is none.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from regista.api.app import create_app
from regista.api.routes.models import INLINE_MAX_FILES
from regista.config import Settings
from regista.domain.models import Actor
from regista.service.container import Services, build_services
from tests.api.helpers import upload

LOCAL = Actor(name="local", local_mode=True)


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _spy(monkeypatch: pytest.MonkeyPatch, obj: Any, name: str) -> list[bool]:
    """Wrap ``obj.name``; the list gets, per call, whether it ran on the event loop."""
    seen: list[bool] = []
    original: Callable[..., Any] = getattr(obj, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(_on_loop())
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, spy)
    return seen


def _files(api: TestClient, n: int) -> list[dict[str, Any]]:
    digest = upload(api, b"weights")
    return [{"path": f"part-{i}.bin", "sha256": digest, "size": 7, "role": "model"}
            for i in range(n)]


def test_the_setting_decides(tmp_path: Path) -> None:
    pg = "postgresql+psycopg://postgres@127.0.0.1:5432/x"
    assert Settings(data_dir=tmp_path).runs_inline()  # embedded: SQLite, one process
    assert not Settings(data_dir=tmp_path, workers=2).runs_inline()
    assert not Settings(data_dir=tmp_path, database_url=pg).runs_inline()
    assert Settings(data_dir=tmp_path, database_url=pg, inline_calls="always").runs_inline()
    assert not Settings(data_dir=tmp_path, inline_calls="never").runs_inline()
    with pytest.raises(ValueError, match="inline_calls"):
        Settings(data_dir=tmp_path, inline_calls="sometimes")  # type: ignore[arg-type]


def test_short_calls_run_on_the_loop_only_in_embedded_mode(
        api: TestClient, app: Any, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    inline = services.db.is_sqlite
    assert app.state.inline_calls is inline
    registered = _spy(monkeypatch, services.registry, "register_version")
    read = _spy(monkeypatch, services.registry, "get_version")
    body = {"files": _files(api, 1), "create_model": True, "aliases": ["prod"]}
    r = api.post("/api/v1/models/m/versions", json=body)
    assert r.status_code == 201, r.text
    for url in ("/api/v1/models/m/versions/1", "/api/v1/models/m/aliases/prod",
                "/api/v1/resolve?ref=m@prod"):
        r = api.get(url)
        assert (r.status_code, r.json()["version"]) == (200, 1), url
    assert registered == [inline]
    assert read == [inline] * 3
    # An unmarked blocking endpoint always goes to the pool.
    searched = _spy(monkeypatch, services.registry, "search_versions")
    assert api.get("/api/v1/models/m/versions").status_code == 200
    assert searched == [False]


def test_a_large_manifest_goes_to_the_pool(
        api: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    registered = _spy(monkeypatch, services.registry, "register_version")
    for n in (INLINE_MAX_FILES, INLINE_MAX_FILES + 1):
        body = {"files": _files(api, n), "create_model": True}
        r = api.post("/api/v1/models/big/versions", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["file_count"] == n
    assert registered == [services.db.is_sqlite, False]


@pytest.fixture
def never(settings: Settings) -> Iterator[tuple[TestClient, Services]]:
    svc = build_services(settings.model_copy(update={"inline_calls": "never"}))
    with TestClient(create_app(services=svc), raise_server_exceptions=False) as client:
        yield client, svc
    svc.close()


def test_never_keeps_every_call_in_the_pool(
        never: tuple[TestClient, Services], monkeypatch: pytest.MonkeyPatch) -> None:
    api, services = never
    registered = _spy(monkeypatch, services.registry, "register_version")
    r = api.post("/api/v1/models/m/versions", json={"files": _files(api, 1), "create_model": True})
    assert r.status_code == 201, r.text
    assert registered == [False]


def test_authentication_and_the_route_rule_run_inline_too(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """With tokens, the rule's check reads the database: inline as well, when enabled."""
    svc = build_services(settings.model_copy(update={"auth_mode": "tokens"}))
    try:
        svc.identity.create_user(LOCAL, "ada")
        svc.identity.grant_role(LOCAL, "ada", "admin")
        token = svc.identity.create_token(LOCAL, name="t", principal="ada").secret
        checked = _spy(monkeypatch, svc.registry.authz, "holds_anywhere")
        with TestClient(create_app(services=svc), raise_server_exceptions=False) as api:
            auth = {"Authorization": f"Bearer {token}"}
            data = b"weights"
            digest = hashlib.sha256(data).hexdigest()
            assert api.put(f"/api/v1/blobs/{digest}", content=data,
                           headers=auth).status_code in (200, 201)
            body = {"files": [{"path": "m.bin", "sha256": digest, "size": 7, "role": "model"}],
                    "create_model": True}
            before = len(checked)
            r = api.post("/api/v1/models/m/versions", json=body, headers=auth)
            assert r.status_code == 201, r.text
            assert checked[before:] == [svc.db.is_sqlite]  # the route rule's check
            assert api.post("/api/v1/models/m/versions", json=body).status_code == 401
    finally:
        svc.close()
