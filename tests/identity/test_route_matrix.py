"""Authorisation fails closed, on every route of the app (including routes added later).

- The route walk fails if any route of the app has no explicit rule.
- The role-by-action matrix calls every route with a token of a user holding each role at
  registry scope (and of a user holding none) and checks the answer is 401/403 exactly
  when the role lacks the route's rule permission (per ``ROLE_PERMISSIONS``), and never
  a 5xx (public routes: only never a 5xx). Path parameters name real fixture objects,
  and JSON bodies are built from the OpenAPI schema, so allowed calls reach the services.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from regista.api.app import iter_routes
from regista.api.deps import AUTHENTICATED, PUBLIC
from regista.service.access import Permission
from regista.service.authz import ROLE_PERMISSIONS, Role
from regista.service.container import Services
from regista.service.registry import NewFile
from tests.identity.conftest import LOCAL, add_user

ROLES: list[str | None] = [None, *(r.value for r in Role)]
DOCS = ("/api/docs", "/api/v1/openapi.json", "/docs/oauth2-redirect", "/api/redoc")
_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
_CSRF = re.compile(r'name="csrf_token"\s+value="([^"]+)"')


def test_every_route_has_a_rule(app: Any) -> None:
    routes = iter_routes(app)
    assert len(routes) > 20
    missing = [(path, sorted(methods)) for path, methods, rule in routes if not rule]
    assert missing == [], f"routes without an authorisation rule: {missing}"
    for path, _, rule in routes:
        assert rule in (PUBLIC, AUTHENTICATED) or rule in {p.value for p in Permission}, (path, rule)


def allowed(role: str | None, rule: str) -> bool:
    """Whether the role table grants the route's rule (the one source of truth)."""
    if rule in (PUBLIC, AUTHENTICATED):
        return True
    held = ROLE_PERMISSIONS[Role(role)] if role else frozenset()
    return Permission(rule) in held


class Fixture:
    """Objects the path parameters name, so allowed calls reach the service."""

    def __init__(self, services: Services) -> None:
        self.tokens = {role: add_user(services, f"as-{role or 'none'}", role=role) for role in ROLES}
        identity = services.identity
        identity.create_team(LOCAL, "fixture-team")
        identity.create_user(LOCAL, "target-user")
        identity.add_member(LOCAL, "fixture-team", "target-user")
        identity.create_service_account(LOCAL, "target-bot")
        binding = identity.grant_role(LOCAL, "target-user", "viewer")
        target_token = identity.create_token(LOCAL, principal="target-user").token
        services.registry.create_model(LOCAL, "fixture-model", owner_team="fixture-team")
        data = b"fixture weights"
        self.digest = hashlib.sha256(data).hexdigest()
        services.blobs.put(LOCAL, self.digest, len(data), [data])
        services.registry.register_version(
            LOCAL, "fixture-model",
            files=[NewFile(path="model.bin", digest=self.digest, size=len(data), role="model")],
            aliases=["fixture-alias"])  # not a protected alias: that needs more than alias:set
        self.params: dict[str, str] = {
            "name": "fixture-model", "model": "fixture-model", "number": "1", "version": "1",
            "alias": "fixture-alias", "path": "model.bin", "digest": self.digest,
            "upload_id": "0" * 32, "user": "target-user", "team": "fixture-team",
            "member": "target-user", "account": "target-bot", "principal": "target-bot",
            "binding_id": str(binding.id), "token_id": target_token.token_id,
            "env": "production", "environment": "production", "ref": "fixture-model/1",
            "request_id": "1", "as_of": datetime.now(UTC).isoformat(),
            "time": datetime.now(UTC).isoformat(),
        }


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def sample(schema: dict[str, Any], components: dict[str, Any], name: str, params: dict[str, str],
           depth: int = 0) -> Any:
    """A minimal value of a JSON schema: required fields only, fixture names where known."""
    schema = _resolve(schema, components)
    if depth > 6:
        return None
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if _resolve(o, components).get("type") != "null"]
            return sample(options[0], components, name, params, depth + 1) if options else None
    if "allOf" in schema:
        return sample(schema["allOf"][0], components, name, params, depth + 1)
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: sample(props.get(k, {}), components, k, params, depth + 1)
                for k in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    if schema.get("format") == "date-time":
        return (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return params.get(name, "x1")


def _operation(openapi: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    op: dict[str, Any] = openapi.get("paths", {}).get(path, {}).get(method.lower(), {})
    return op


def build_request(openapi: dict[str, Any], path: str, method: str,
                  params: dict[str, str]) -> tuple[str, dict[str, Any], Any]:
    """(url, query, json body) for one route."""
    url = _PARAM.sub(lambda m: params.get(m.group(1), "1"), path)
    op = _operation(openapi, path, method)
    components = openapi.get("components", {}).get("schemas", {})
    query = {}
    for p in op.get("parameters", []):
        if p.get("in") == "query" and p.get("required"):
            query[p["name"]] = sample(p.get("schema", {}), components, p["name"], params)
    body = None
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        body = sample(content["application/json"].get("schema", {}), components, "", params)
    return url, query, body


def _csrf(client: TestClient) -> str | None:
    """A CSRF token for the web UI's forms (from the public sign-in page), if there is one."""
    page = client.get("/login")
    m = _CSRF.search(page.text) if page.status_code == 200 else None
    return m.group(1) if m else None


def test_role_action_matrix(api: TestClient, services: Services, app: Any) -> None:
    fx = Fixture(services)
    openapi = app.openapi()
    csrf = _csrf(api)
    failures: list[str] = []
    calls = 0
    for path, methods, rule in iter_routes(app):
        assert rule, path
        if path in DOCS:
            continue
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            url, query, body = build_request(openapi, path, method, fx.params)
            for role in ROLES:
                headers = {"Authorization": f"Bearer {fx.tokens[role]}"}
                if csrf and not path.startswith("/api/"):
                    headers["x-csrf-token"] = csrf
                r = api.request(method, url, params=query, json=body, headers=headers,
                                follow_redirects=False)
                calls += 1
                expect = allowed(role, rule)
                refused = r.status_code in (401, 403)
                # A public route's own 401 (e.g. a sign-in form refusing bad credentials)
                # is not an authorisation decision; it only must not fail.
                if r.status_code >= 500 or (refused == expect and rule != PUBLIC):
                    failures.append(f"{method} {path} as {role or 'no role'} (rule {rule}): "
                                    f"{r.status_code} {r.text[:200]}")
    assert calls > 100
    assert failures == [], "\n".join(failures)
