"""The HTTP core every client mixin builds on: one ``httpx.Client``, errors rebuilt from the wire.

A mixin never touches httpx directly for ordinary calls; it uses:

- ``self._request(method, path, ...) -> httpx.Response`` — raises the server's error class,
- ``self._json(method, path, ...) -> Any`` — the decoded JSON body of a successful reply,
- ``self._pages(path, params, parse) -> Pager[T]`` — a lazy pager following ``next_cursor``,
- ``self._stream(method, path, ...)`` — a context manager for a streamed (download) reply,
- ``quote(segment)`` (module function) — percent-encode one path segment.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar
from urllib.parse import quote as _urlquote

import httpx

from regista import __version__
from regista.errors import RegistryError, Unavailable, from_wire

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
#: Connect quickly or fail; reads may be long (large uploads are acknowledged after fsync).
DEFAULT_TIMEOUT = httpx.Timeout(300.0, connect=10.0)

Params = Mapping[str, str | int | float | bool | None]


def quote(segment: str) -> str:
    """Percent-encode one URL path segment (a name, alias or file path part)."""
    return _urlquote(segment, safe="")


def quote_path(path: str) -> str:
    """Percent-encode a slash-separated manifest path, keeping its slashes."""
    return "/".join(quote(part) for part in path.split("/"))


def error_from_response(response: httpx.Response) -> RegistryError:
    """The :class:`RegistryError` (subclass) a non-success reply stands for.

    A JSON error ``{"error": {"code", "message", "details"}}`` becomes the very class the
    server raised; anything else (a proxy's HTML page, say) becomes the class of its status.
    """
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        details = err.get("details")
        return from_wire(
            str(err.get("code", "")),
            status,
            str(err.get("message", "")),
            details if isinstance(details, dict) else {},
        )
    try:
        text = response.text.strip()[:300]
    except httpx.ResponseNotRead:
        text = ""
    reason = response.reason_phrase or "error"
    message = f"HTTP {status} {reason}" + (f": {text}" if text else "")
    if status in (502, 503, 504):
        # A proxy or load balancer in front of a registry that is down or restarting.
        return Unavailable(message, details={"status": status})
    return from_wire("", status, message, {"status": status})


class BaseClient:
    """Connection, authentication and error handling shared by every client mixin.

    ``url`` defaults to ``$REGISTA_URL`` (else ``http://127.0.0.1:8080``) and ``token`` to
    ``$REGISTA_TOKEN``; a token is sent as ``Authorization: Bearer <token>``. The underlying
    ``httpx.Client`` keeps connections alive between calls. Pass ``transport`` to run against
    an in-process app (``httpx.ASGITransport`` / ``WSGITransport``) without a socket.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        verify: bool | str = True,
    ) -> None:
        self.url = (url or os.environ.get("REGISTA_URL") or DEFAULT_URL).rstrip("/")
        token = token if token is not None else os.environ.get("REGISTA_TOKEN") or None
        base_headers = {"user-agent": f"regista-client/{__version__}", "accept": "application/json"}
        if token:
            base_headers["authorization"] = f"Bearer {token}"
        base_headers.update(headers or {})
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        elif not isinstance(timeout, httpx.Timeout):
            timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._http = httpx.Client(
            base_url=self.url,
            headers=base_headers,
            timeout=timeout,
            transport=transport,
            verify=verify,
            follow_redirects=False,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- requests ----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Params | None = None,
        content: bytes | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        expected: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """Send one request; return the reply if its status is ``expected``, else raise.

        The exception is the :mod:`regista.errors` class the server raised, rebuilt from
        its JSON error; a connection failure is :class:`regista.errors.Unavailable`.
        """
        try:
            response = self._http.request(
                method,
                path,
                json=json,
                params=_clean(params),
                content=content,
                headers=headers,
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from exc
        if response.status_code not in expected:
            raise error_from_response(response)
        return response

    def _json(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Params | None = None,
        content: bytes | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        expected: tuple[int, ...] = (200,),
    ) -> Any:
        """:meth:`_request`, then the decoded JSON body (``None`` for an empty reply)."""
        response = self._request(method, path, json=json, params=params, content=content,
                                 headers=headers, expected=expected)
        if not response.content:
            return None
        return response.json()

    @contextmanager
    def _stream(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        expected: tuple[int, ...] = (200,),
    ) -> Iterator[httpx.Response]:
        """A streamed reply (for downloads); the body is read only on error."""
        try:
            with self._http.stream(method, path, params=_clean(params), headers=headers) as response:
                if response.status_code not in expected:
                    response.read()
                    raise error_from_response(response)
                yield response
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from exc

    def _pages(
        self,
        path: str,
        params: Params | None,
        parse: Callable[[dict[str, Any]], T],
        *,
        limit: int | None = None,
    ) -> Pager[T]:
        """A lazy :class:`Pager` over a keyset-paginated list (``{"items", "next_cursor"}``)."""
        return Pager(self, path, params, parse, limit=limit)


class Pager(Generic[T]):
    """Iterate over every item of a paginated list, fetching pages as they are reached.

    The first page is fetched when the pager is made, so a bad filter or an unknown model
    raises at the call, not at the first ``next()``. ``limit`` stops after that many items.
    A pager is a one-pass iterator; ``list(pager)`` collects everything.
    """

    def __init__(
        self,
        client: BaseClient,
        path: str,
        params: Params | None,
        parse: Callable[[dict[str, Any]], T],
        *,
        limit: int | None = None,
    ) -> None:
        self._client = client
        self._path = path
        self._params: dict[str, str | int | float | bool | None] = dict(params or {})
        self._parse = parse
        self._limit = limit
        self._seen = 0
        self._buffer: deque[dict[str, Any]] = deque()
        self.next_cursor: str | None = None
        self._done = False
        self._fetch()

    def _fetch(self) -> None:
        page = self._client._json("GET", self._path, params=self._params)
        self._buffer = deque(page["items"])
        self.next_cursor = page.get("next_cursor") or None
        if self.next_cursor:
            self._params["cursor"] = self.next_cursor
        else:
            self._done = True

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._limit is not None and self._seen >= self._limit:
            raise StopIteration
        while not self._buffer:
            if self._done:
                raise StopIteration
            self._fetch()
        self._seen += 1
        return self._parse(self._buffer.popleft())


def _clean(params: Params | None) -> dict[str, str | int | float | bool] | None:
    if params is None:
        return None
    out: dict[str, str | int | float | bool] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


def _unreachable(url: str, exc: httpx.TransportError) -> Unavailable:
    return Unavailable(
        f"cannot reach the registry at {url}: {type(exc).__name__}: {exc}".rstrip(": "),
        details={"url": url},
    )
