"""Fixtures for client tests: a client on the live server, with its requests counted."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from regista.client import Client


class CountingTransport(httpx.HTTPTransport):
    """A real HTTP transport that records (method, path) of every request it sends.

    ``fail`` may raise (e.g. ``httpx.WriteError``) for a request to inject a network fault.
    """

    def __init__(self, fail: Callable[[httpx.Request, int], None] | None = None) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.headers: list[httpx.Headers] = []
        self._fail = fail
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.calls.append((request.method, request.url.path))
            self.headers.append(request.headers)
            n = len(self.calls)
        if self._fail is not None:
            self._fail(request, n)
        return super().handle_request(request)

    def count(self, method: str, prefix: str = "") -> int:
        return sum(1 for m, p in self.calls if m == method and p.startswith(prefix))

    def by_route(self) -> Counter[tuple[str, str]]:
        return Counter(self.calls)


@pytest.fixture
def transport() -> CountingTransport:
    return CountingTransport()


@pytest.fixture
def client(live_server, transport: CountingTransport) -> Iterator[Client]:  # type: ignore[no-untyped-def]
    with Client(live_server.url, transport=transport) as c:
        yield c


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    """Create ``files`` (relative path → bytes) under ``root``; return ``root``."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root
