"""Small builders for API tests (real HTTP calls on the in-process app)."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi.testclient import TestClient


def upload(api: TestClient, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    r = api.put(f"/api/v1/blobs/{digest}", content=data)
    assert r.status_code in (200, 201), r.text
    return digest


def register(
    api: TestClient,
    model: str,
    files: dict[str, bytes] | None = None,
    *,
    metadata: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    aliases: list[str] | None = None,
    create_model: bool = True,
    expect: int = 201,
    **extra: Any,
) -> dict[str, Any]:
    files = files if files is not None else {"model.bin": b"weights-" + model.encode()}
    manifest = []
    for path, data in files.items():
        manifest.append({"path": path, "sha256": upload(api, data), "size": len(data),
                         "role": "model" if path.endswith(".bin") else "other"})
    body: dict[str, Any] = {"files": manifest, "metadata": metadata or {}, "tags": tags or {},
                            "aliases": aliases or [], "create_model": create_model, **extra}
    r = api.post(f"/api/v1/models/{model}/versions", json=body)
    assert r.status_code == expect, r.text
    return r.json()  # type: ignore[no-any-return]


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]  # type: ignore[no-any-return]
