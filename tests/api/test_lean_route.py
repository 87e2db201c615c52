"""LeanRoute: which endpoints get the short plan, that it is really used, and that every
answer it gives (or hands to FastAPI) is the one FastAPI alone would give."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Header, Query, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from regista.api.lean import LeanRoute
from regista.domain.models import Actor
from regista.service.container import Services
from tests.api.helpers import register, upload

LOCAL = Actor(name="local", local_mode=True)


def _routes(app: FastAPI) -> Iterator[Any]:
    for r in app.routes:
        original = getattr(r, "original_router", None)
        if original is not None:
            yield from original.routes
        else:
            yield r


def _lean_of(app: FastAPI) -> dict[tuple[str, str], bool]:
    return {(m, r.path): r.lean for r in _routes(app) if isinstance(r, LeanRoute)
            for m in r.methods}


# --------------------------------------------------------------------------- the app


def test_the_hot_endpoints_are_lean(app: FastAPI) -> None:
    lean = _lean_of(app)
    for key in [("POST", "/api/v1/models/{name}/versions"), ("GET", "/api/v1/models/{name}"),
                ("GET", "/api/v1/models/{name}/versions"), ("GET", "/api/v1/models"),
                ("GET", "/api/v1/health")]:
        assert lean[key], key
    # Most of the API is; what is not is served by FastAPI's own handler, unchanged.
    assert sum(lean.values()) >= 0.8 * len(lean)


def test_the_lean_plan_really_serves_registrations(api: TestClient, monkeypatch: Any) -> None:
    import fastapi.routing

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("FastAPI's dependency solver ran")

    digest = upload(api, b"weights")
    monkeypatch.setattr(fastapi.routing, "solve_dependencies", refuse)
    files = [{"path": "m.bin", "sha256": digest, "size": 7, "role": "model"}]
    body = {"files": files, "create_model": True, "tags": {"a": "b"}}
    r = api.post("/api/v1/models/lean/versions", json=body, headers={"Idempotency-Key": "k-1"})
    assert r.status_code == 201, r.text
    assert (r.json()["version"], r.json()["tags"]) == (1, {"a": "b"})
    r = api.post("/api/v1/models/lean/versions", json=body,
                 headers={"Idempotency-Key": "k-1"})  # the header reached the service
    assert (r.status_code, r.json()["version"]) == (200, 1)
    assert api.get("/api/v1/models/lean/versions", params={"page_size": 1}).status_code == 200


def _both(api: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch, method: str,
          url: str, **kw: Any) -> tuple[Any, Any]:
    """The answer of the lean plan, then of FastAPI's own handler (an override disables it)."""
    import fastapi.routing

    solved: list[int] = []
    original = fastapi.routing.solve_dependencies

    async def spy(*args: Any, **kwargs: Any) -> Any:
        solved.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", spy)
    lean = api.request(method, url, **kw)
    app.dependency_overrides[_never_used] = _never_used
    try:
        full_from = len(solved)
        full = api.request(method, url, **kw)
        assert len(solved) > full_from, "FastAPI's own handler did not serve the request"
    finally:
        app.dependency_overrides.clear()
    return lean, full


def _never_used() -> None:  # pragma: no cover - only a key of dependency_overrides
    pass


@pytest.mark.parametrize("case", [
    "wrong_types", "missing_files", "extra_field", "not_json", "no_body", "empty_object",
    "long_header", "bad_page_size", "bad_number", "bad_filter", "unknown_model",
])
def test_bad_requests_get_fastapi_s_own_answers(api: TestClient, app: FastAPI, case: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    register(api, "parity")
    url = "/api/v1/models/parity/versions"
    good = {"files": [{"path": "m.bin", "sha256": "0" * 64, "size": 1, "role": "model"}]}
    requests: dict[str, tuple[str, str, dict[str, Any]]] = {
        "wrong_types": ("POST", url, {"json": {"files": "many", "tags": [1]}}),
        "missing_files": ("POST", url, {"json": {"tags": {}}}),
        "extra_field": ("POST", url, {"json": {**good, "surprise": 1}}),
        "not_json": ("POST", url, {"content": b"files=1",
                                   "headers": {"content-type": "text/plain"}}),
        "no_body": ("POST", url, {"headers": {"content-type": "application/json"}}),
        "empty_object": ("POST", url, {"json": {}}),
        "long_header": ("POST", url, {"json": good, "headers": {"Idempotency-Key": "k" * 200}}),
        "bad_page_size": ("GET", url, {"params": {"page_size": "0"}}),
        "bad_number": ("GET", f"{url}/zero", {}),
        "bad_filter": ("GET", url, {"params": {"filter": "tags.a = "}}),
        "unknown_model": ("POST", "/api/v1/models/nope/versions", {"json": good}),
    }
    method, target, kw = requests[case]
    lean, full = _both(api, app, monkeypatch, method, target, **kw)
    assert 400 <= lean.status_code < 500, lean.text
    assert (lean.status_code, lean.json()) == (full.status_code, full.json())


@pytest.mark.parametrize(("target", "params"), [
    ("versions", {"page_size": "abc"}), ("versions", {"page_size": "100001"}),
    ("versions", {"page_size": "\u0665"}), ("versions", {"page_size": "+5"}),
    ("versions", {"page_size": " 5"}), ("versions", {"page_size": "5.0"}),
    ("versions", {"page_size": "0005"}), ("versions", {"page_size": "9" * 30}),
    ("versions", {"filter": "x" * 4097}), ("versions", {"filter": ""}),
    ("versions/0", {}), ("versions/-1", {}), ("versions/%EF%BC%91", {}), ("versions/01", {}),
])
def test_parameters_get_the_values_and_errors_fastapi_gives(
        api: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch, target: str,
        params: dict[str, str]) -> None:
    """Unusual parameter values, refused or accepted: the same answer either way."""
    register(api, "params")
    lean, full = _both(api, app, monkeypatch, "GET", f"/api/v1/models/params/{target}",
                       params=params)
    assert (lean.status_code, lean.json()) == (full.status_code, full.json())


def test_simple_parameters_skip_fastapi_s_conversion(api: TestClient,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import regista.api.lean

    register(api, "fast")
    calls: list[int] = []
    original = regista.api.lean.request_params_to_args

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(regista.api.lean, "request_params_to_args", spy)
    r = api.get("/api/v1/models/fast/versions",
                params={"filter": "version >= 1", "page_size": "5", "order_by": "version"})
    assert (r.status_code, len(r.json()["items"])) == (200, 1), r.text
    assert api.get("/api/v1/models/fast/versions/1").json()["version"] == 1
    digest = upload(api, b"again")
    files = [{"path": "m.bin", "sha256": digest, "size": 5, "role": "model"}]
    r = api.post("/api/v1/models/fast/versions", json={"files": files},
                 headers={"Idempotency-Key": "k-7"})
    assert r.status_code == 201, r.text
    assert calls == []
    assert api.get("/api/v1/models/fast/versions", params={"page_size": "0"}).status_code == 422
    assert calls  # a refused value is FastAPI's to refuse


def test_a_refused_caller_is_refused_before_the_body_is_validated(
        api: TestClient, app: FastAPI, services: Services,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.identity.conftest import add_user, bearer

    register(api, "guarded")
    token = add_user(services, "reader", role="viewer")
    for body in ({"files": "not a list"}, {"files": []}):
        lean, full = _both(api, app, monkeypatch, "POST", "/api/v1/models/guarded/versions",
                           json=body, headers=bearer(token))
        assert lean.status_code == full.status_code == 403, lean.text
        assert lean.json()["error"]["code"] == full.json()["error"]["code"]


# --------------------------------------------------------------------------- the plan


class _Body(BaseModel):
    n: int


async def _who(request: Request) -> str:
    request.scope.setdefault("calls", []).append("who")
    return "someone"


async def _guard(request: Request) -> None:
    request.scope.setdefault("calls", []).append("guard")


async def _yielding(request: Request):  # type: ignore[no-untyped-def]
    yield 1


def _toy() -> tuple[FastAPI, APIRouter]:
    router = APIRouter(route_class=LeanRoute)

    @router.post("/sync/{key}", dependencies=[Depends(_guard)])
    def sync_endpoint(key: str, body: _Body, request: Request,
                      who: Annotated[str, Depends(_who)], again: Annotated[str, Depends(_who)],
                      x_mode: Annotated[str | None, Header(max_length=4)] = None,
                      limit: Annotated[int, Query(ge=1)] = 5) -> Response:
        return JSONResponse({"key": key, "n": body.n, "who": who, "again": again,
                             "mode": x_mode, "limit": limit, "calls": request.scope["calls"]})

    @router.get("/async/{n}")
    async def async_endpoint(n: int) -> Response:
        return JSONResponse({"n": n})

    @router.get("/returns-dict")
    def returns_dict() -> dict[str, int]:
        return {"a": 1}

    @router.get("/list-query")
    def list_query(q: Annotated[list[str] | None, Query()] = None) -> Response:
        return JSONResponse({"q": q})

    @router.get("/yield-dep")
    def yield_dep(v: Annotated[int, Depends(_yielding)]) -> Response:
        return JSONResponse({"v": v})

    @router.post("/background")
    def background(tasks: BackgroundTasks) -> Response:
        return JSONResponse({})

    @router.post("/optional-body")
    def optional_body(body: _Body | None = None) -> Response:
        return JSONResponse({"body": body.n if body else None})

    app = FastAPI()
    app.include_router(router)
    return app, router


def test_only_regular_signatures_get_a_plan() -> None:
    app, _ = _toy()
    lean = {path: flag for (_, path), flag in _lean_of(app).items()}
    assert lean == {"/sync/{key}": True, "/async/{n}": True, "/returns-dict": False,
                    "/list-query": False, "/yield-dep": False, "/background": False,
                    "/optional-body": False}
    with TestClient(app) as client:  # the ones FastAPI serves still work
        assert client.get("/returns-dict").json() == {"a": 1}
        assert client.get("/list-query", params={"q": ["a", "b"]}).json() == {"q": ["a", "b"]}
        assert client.get("/yield-dep").json() == {"v": 1}
        assert client.post("/optional-body").json() == {"body": None}


def test_the_plan_fills_parameters_as_fastapi_does() -> None:
    app, _ = _toy()
    with TestClient(app) as client:
        r = client.post("/sync/k1?limit=7", json={"n": "3"}, headers={"x-mode": "fast"})
        # Route-level dependencies first, then the parameters' in order; a dependency
        # used twice runs once (FastAPI's per-request cache).
        assert r.json() == {"key": "k1", "n": 3, "who": "someone", "again": "someone",
                            "mode": "fast", "limit": 7, "calls": ["guard", "who"]}
        r = client.post("/sync/k2", json={"n": 1})  # absent header and query: defaults
        assert (r.json()["mode"], r.json()["limit"]) == (None, 5)
        assert client.get("/async/12").json() == {"n": 12}
        for bad in (client.post("/sync/k1?limit=0", json={"n": 1}),
                    client.post("/sync/k1", json={"n": "x"}),
                    client.post("/sync/k1", json={"n": 1}, headers={"x-mode": "toolong"}),
                    client.get("/async/twelve")):
            assert bad.status_code == 422, bad.text
            assert bad.json()["detail"][0]["type"]  # FastAPI's own validation answer


def test_dependency_overrides_are_honoured(api: TestClient, app: FastAPI) -> None:
    from regista.api.deps import current_actor

    digest = upload(api, b"weights")
    files = [{"path": "m.bin", "sha256": digest, "size": 7, "role": "model"}]

    async def someone_else() -> Actor:
        return Actor(name="someone-else", local_mode=True)

    app.dependency_overrides[current_actor] = someone_else
    try:
        r = api.post("/api/v1/models/overridden/versions",
                     json={"files": files, "create_model": True})
    finally:
        app.dependency_overrides.clear()
    assert r.status_code == 201, r.text
    assert r.json()["created_by"] == "someone-else"
