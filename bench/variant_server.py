"""Harness-only server builds for the benchmarks; never a product configuration.

``python -m bench.variant_server serve ...`` runs ``regista serve`` after patching, per
``BENCH_VARIANT``: ``full`` (nothing patched), ``no-audit`` (``audit.append`` does
nothing) or ``core`` (no audit; every authorisation check passes without a lookup, and
the registry's governance hooks give the no-policy answers instead of reading the
policy). These only make sense with one worker process (the
patches live in this process). ``BENCH_LOOP=asyncio`` makes uvicorn use asyncio's event
loop instead of uvloop (the configuration in which uvicorn's multi-process mode stalls
reused connections), in every worker.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def _patch(variant: str) -> None:
    if variant == "full":
        return
    if variant not in ("no-audit", "core"):
        raise SystemExit(f"unknown BENCH_VARIANT {variant!r}")
    from regista.service import audit

    def append(*_: Any, **__: Any) -> int:
        return 0

    audit.append = append
    if variant == "core":
        from regista.service import governance_wiring as gw

        original = gw.wire_governance

        def wire(settings: Any, db: Any, secret: bytes) -> Any:
            authz, hooks, policy = original(settings, db, secret)
            return _AllowAll(authz), _DefaultHooks(hooks, settings), policy

        gw.wire_governance = wire


class _AllowAll:
    """The real authorizer, except that every check passes without looking anything up."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def require(self, *_: Any, **__: Any) -> None:
        return None

    def holds_anywhere(self, *_: Any, **__: Any) -> bool:
        return True

    def has_role(self, *_: Any, **__: Any) -> bool:
        return True


class _DefaultHooks:
    """The real hooks, except that the registry's questions get the no-policy answers."""

    def __init__(self, inner: Any, settings: Any) -> None:
        self._inner = inner
        self._settings = settings

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def required_metadata(self, stage: str) -> list[str]:
        return list(self._settings.required_metadata) if stage == "registered" else []

    def protected_aliases(self) -> frozenset[str]:
        return frozenset()

    def review_interval(self, risk_tier: str | None) -> Any:
        return None


def _force_loop(loop: str) -> None:
    import uvicorn

    original = uvicorn.Config.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["loop"] = loop
        original(self, *args, **kwargs)

    uvicorn.Config.__init__ = init  # type: ignore[method-assign]


def main() -> None:
    _patch(os.environ.get("BENCH_VARIANT", "full"))
    if os.environ.get("BENCH_LOOP"):
        _force_loop(os.environ["BENCH_LOOP"])
    from regista.cli.main import app

    app(sys.argv[1:])


if __name__ == "__main__":
    main()
