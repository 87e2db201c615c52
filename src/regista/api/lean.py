"""LeanRoute: API routes whose common requests skip FastAPI's per-request solver.

FastAPI resolves an endpoint's parameters per request by walking its dependency tree
(``solve_dependencies``), with telemetry, exit stacks and per-parameter introspection.
On a 2-core machine that costs about 0.5-0.8 ms of CPU per request, a quarter of a
registration's server CPU (measured in docs/decisions.md). Regista's endpoints are
regular: path, query and header parameters, at most one JSON body model, and
dependencies that take only the request (the route rule, the actor, the services).

:class:`LeanRoute` is an ``APIRoute`` (FastAPI's documented ``route_class`` hook), so
the OpenAPI document, the route table and the endpoint functions are unchanged. When
it builds a route's handler it checks that the endpoint has that regular shape and,
if so, serves it with a short plan: run the dependencies in FastAPI's order, take
string and integer parameters with simple constraints straight from the request and
convert the others with FastAPI's own function, validate the body with the model, call
the endpoint. Anything else - an unsupported signature, dependency overrides, a
parameter or body that fails validation, a body that is not JSON - goes to FastAPI's
own handler for that route, so every error answer is FastAPI's, byte for byte.

A blocking endpoint normally runs in the thread pool. One marked with :func:`inline`
runs on the event loop thread instead when the app says so (``app.state.inline_calls``,
from the ``inline_calls`` setting): on the 2-core benchmark machine a hop to the pool
and back costs ~0.3 ms of CPU and ~0.45 ms of latency (cross-core wake-ups), more than
the registration's own HTTP handling. Only short, bounded endpoints are marked, and an
inline endpoint must never wait for anything that itself needs the event loop.
"""

from __future__ import annotations

import inspect
import operator
import types
import typing
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import annotated_types
import orjson
from fastapi import routing as fastapi_routing
from fastapi.dependencies import utils as fastapi_dependency_utils
from fastapi.dependencies.utils import request_params_to_args
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
T = TypeVar("T")
#: Decides, from the endpoint's arguments, whether one call is short enough to run inline.
InlineWhen = Callable[[Mapping[str, Any]], bool]
_INLINE_ATTR = "__regista_inline__"


def _always(_kwargs: Mapping[str, Any]) -> bool:
    return True


def inline(when: InlineWhen | None = None) -> Callable[[Endpoint], Endpoint]:
    """Mark a blocking endpoint as short: it may run on the event loop (module docstring).

    ``when`` sees the endpoint's arguments and says whether this call qualifies (a
    registration of a few files does, one of ten thousand does not).
    """
    def mark(fn: Endpoint) -> Endpoint:
        setattr(fn, _INLINE_ATTR, when or _always)
        return fn

    return mark


def runs_inline(request: Request) -> bool:
    """Whether this app runs short blocking calls on the event loop."""
    return bool(getattr(request.app.state, "inline_calls", False))


async def call_blocking(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a short blocking call: on the event loop when the app says so, else in the pool."""
    if runs_inline(request):
        return fn(*args, **kwargs)
    return await run_in_threadpool(fn, *args, **kwargs)

# Dependant attributes naming special parameters we do not fill (FastAPI does).
_SPECIAL_PARAMS = ("websocket_param_name", "http_connection_param_name", "response_param_name",
                   "background_tasks_param_name", "security_scopes_param_name")


@dataclass(frozen=True)
class _Dependency:
    name: str | None  # the endpoint parameter it fills; None for route-level dependencies
    call: Callable[[Request], Awaitable[Any]]


_SLOW = object()  # a converter's answer: let FastAPI's own conversion decide


@dataclass(frozen=True)
class _Param:
    """A path, query or header parameter.

    ``key`` is the request key FastAPI reads (None when it may read one of several).
    Then an absent optional parameter takes its default (``default_ok``: None, not
    validated), and a present one goes through ``fast`` when the parameter is a string
    or an integer whose only constraints are lengths or bounds: it gives the value
    FastAPI's conversion would, or ``_SLOW`` for anything it is not sure of (a bound
    crossed, a sign, spaces, non-ASCII digits), which FastAPI's own
    ``request_params_to_args`` then converts or refuses. Everything else goes there too.
    """

    where: str  # "path", "query" or "header"
    field: Any
    key: str | None
    fast: Callable[[str], Any] | None
    default_ok: bool


@dataclass(frozen=True)
class _Plan:
    dependencies: tuple[_Dependency, ...]
    params: tuple[_Param, ...]
    body: tuple[str, type[BaseModel]] | None  # (parameter name, model) of a JSON body
    request_name: str | None
    call: Callable[..., Any]
    is_async: bool
    inline: InlineWhen | None  # set for a blocking endpoint marked with inline()


class LeanRoute(APIRoute):
    """An APIRoute served by a short plan when its endpoint allows (module docstring)."""

    lean: bool = False  # whether this route's handler is the lean one (tests read it)

    def get_route_handler(self) -> Handler:
        full = super().get_route_handler()
        dependant = self.dependant
        embed = bool(getattr(self, "_embed_body_fields", False))
        provider = self.dependency_overrides_provider
        # FastAPI 0.12x+ builds an included route's handler under a context variable that
        # holds the route as included (its prefixed path, the router's dependencies).
        var = getattr(fastapi_routing, "_effective_route_context_var", None)
        context = var.get() if var is not None else None
        if context is not None and getattr(context, "original_route", None) is self:
            dependant = context.dependant
            embed = bool(getattr(context, "_embed_body_fields", embed))
            provider = getattr(context, "dependency_overrides_provider", provider)
        plan = _plan_for(dependant, embed)
        if plan is None:
            return full
        self.lean = True
        return _lean_handler(plan, full, provider)


def _plan_for(dependant: Any, embed_body: bool) -> _Plan | None:
    """The plan for an endpoint, or None when FastAPI's own handler must serve it."""
    call = dependant.call
    if call is None or any(getattr(dependant, a, None) for a in _SPECIAL_PARAMS):
        return None
    if dependant.cookie_params or getattr(dependant, "own_oauth_scopes", None):
        return None
    if inspect.isgeneratorfunction(call) or inspect.isasyncgenfunction(call):
        return None
    try:
        returns = typing.get_type_hints(call).get("return")
    except Exception:  # unresolvable annotations: let FastAPI handle the route
        return None
    if not (isinstance(returns, type) and issubclass(returns, Response)):
        return None
    deps: list[_Dependency] = []
    for sub in dependant.dependencies:
        dep = _simple_dependency(sub)
        if dep is None:
            return None
        deps.append(dep)
    if any(not _scalar(f) for f in dependant.query_params + dependant.header_params):
        return None
    body: tuple[str, type[BaseModel]] | None = None
    if dependant.body_params:
        if len(dependant.body_params) != 1 or embed_body:
            return None
        field = dependant.body_params[0]
        annotation = field.field_info.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)
                and field.field_info.is_required()):
            return None
        body = (field.name, annotation)
    params = tuple(_param(where, f) for where, fields in (
        ("path", dependant.path_params), ("query", dependant.query_params),
        ("header", dependant.header_params)) for f in fields)
    return _Plan(dependencies=tuple(deps), params=params, body=body,
                 request_name=dependant.request_param_name,
                 call=call, is_async=inspect.iscoroutinefunction(call),
                 inline=getattr(call, _INLINE_ATTR, None))


def _param(where: str, field: Any) -> _Param:
    info = field.field_info
    default_ok = (not info.is_required() and info.default_factory is None
                  and not info.validate_default and info.get_default() is None)
    return _Param(where=where, field=field, key=_request_key(field),
                  fast=_converter(info.annotation, info.metadata), default_ok=default_ok)


def _request_key(field: Any) -> str | None:
    """The one request key FastAPI reads this parameter from, or None if not just one."""
    if field.field_info.validation_alias is not None or getattr(field, "config", None):
        return None
    aliases = getattr(fastapi_dependency_utils, "_get_param_aliases", None)
    if aliases is None:  # a FastAPI without alias choices: the field's alias is the key
        return str(field.alias)
    pairs = aliases(field)
    return str(pairs[0][1]) if len(pairs) == 1 else None


_BOUNDS: tuple[tuple[type, str, Callable[[Any, Any], bool]], ...] = (
    (annotated_types.Ge, "ge", operator.ge), (annotated_types.Gt, "gt", operator.gt),
    (annotated_types.Le, "le", operator.le), (annotated_types.Lt, "lt", operator.lt))


def _identity(value: str) -> str:
    return value


def _converter(annotation: Any, metadata: list[Any]) -> Callable[[str], Any] | None:
    """A converter for a string or integer with simple constraints (see :class:`_Param`)."""
    if annotation in (str, str | None):
        lo, hi = 0, None
        for m in metadata:
            if isinstance(m, annotated_types.MinLen):
                lo = m.min_length
            elif isinstance(m, annotated_types.MaxLen):
                hi = m.max_length
            else:
                return None
        if lo == 0 and hi is None:
            return _identity

        def text(value: str) -> Any:
            return value if lo <= len(value) and (hi is None or len(value) <= hi) else _SLOW

        return text
    if annotation in (int, int | None):
        limits: list[tuple[Callable[[Any, Any], bool], Any]] = []
        for m in metadata:
            for kind, attr, check in _BOUNDS:
                if isinstance(m, kind):
                    limits.append((check, getattr(m, attr)))
                    break
            else:
                return None

        def integer(value: str) -> Any:
            # Plain ASCII digits only: pydantic reads those exactly as int() does.
            if not (0 < len(value) <= 18 and value.isascii() and value.isdigit()):
                return _SLOW
            n = int(value)
            return n if all(check(n, b) for check, b in limits) else _SLOW

        return integer
    return None


def _simple_dependency(sub: Any) -> _Dependency | None:
    """A dependency we can run ourselves: an async function of the request alone."""
    call = sub.call
    if call is None or not inspect.iscoroutinefunction(call):
        return None
    if (sub.dependencies or sub.path_params or sub.query_params or sub.header_params
            or sub.cookie_params or sub.body_params or sub.request_param_name is None
            or any(getattr(sub, a, None) for a in _SPECIAL_PARAMS)
            or not getattr(sub, "use_cache", True)):
        return None
    if len(inspect.signature(call).parameters) != 1:
        return None
    return _Dependency(name=sub.name, call=call)


def _scalar(field: Any) -> bool:
    """A query or header parameter of one value (lists and models go to FastAPI)."""
    annotation = field.field_info.annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation) if origin is not None else (annotation,)
    allowed = (str, int, float, bool, type(None))
    return origin in (None, typing.Union, types.UnionType) and all(a in allowed for a in args)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = media.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _lean_handler(plan: _Plan, full: Handler, provider: Any) -> Handler:
    async def handler(request: Request) -> Response:
        if provider is not None and getattr(provider, "dependency_overrides", None):
            return await full(request)
        parsed: Any = None
        if plan.body is not None:
            # FastAPI parses the body before it runs dependencies (a malformed body is a
            # 422 even for a caller the rule refuses): so does this.
            raw = await request.body()
            if not raw or not _is_json(request.headers.get("content-type", "")):
                return await full(request)
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return await full(request)
        kwargs: dict[str, Any] = {}
        cache: dict[Any, Any] = {}
        for dep in plan.dependencies:
            if dep.call in cache:
                value = cache[dep.call]
            else:
                value = cache[dep.call] = await dep.call(request)
            if dep.name is not None:
                kwargs[dep.name] = value
        for param in plan.params:
            source: Mapping[str, Any] = (
                request.path_params if param.where == "path"
                else request.query_params if param.where == "query" else request.headers)
            if param.key is not None:
                value = source.get(param.key)
                if value is None:
                    if param.default_ok:
                        kwargs[param.field.name] = None
                        continue
                elif param.fast is not None:
                    converted = param.fast(value)
                    if converted is not _SLOW:
                        kwargs[param.field.name] = converted
                        continue
            values, errors = request_params_to_args([param.field], source)
            if errors:
                return await full(request)
            kwargs.update(values)
        if plan.body is not None:
            name, model = plan.body
            try:
                kwargs[name] = model.model_validate(parsed)
            except ValidationError:
                return await full(request)
        if plan.request_name is not None:
            kwargs[plan.request_name] = request
        if plan.is_async:
            response = await plan.call(**kwargs)
        elif plan.inline is not None and plan.inline(kwargs):
            response = await call_blocking(request, plan.call, **kwargs)
        else:
            response = await run_in_threadpool(plan.call, **kwargs)
        if not isinstance(response, Response):  # the plan checked the annotation
            raise TypeError(f"{plan.call.__qualname__} returned {type(response).__name__}, "
                            "not a Response")
        return response

    return handler
