"""Property-based: random histories of deployments and alias moves, replayed in pure Python.

Every "as of T" answer of the service must equal the reference replay, at every instant
of a change, just before and just after it, and after rollbacks (re-deploying an older
version). Runs at the service level (no HTTP) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from regista.errors import Conflict, NotFound
from regista.service.registry import NewFile
from tests.conftest import sha256_hex

MODELS = ("alpha", "beta")
VERSIONS = 3
ENVS = 2
US = timedelta(microseconds=1)
PROFILE = hsettings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

_names = itertools.count()


@pytest.fixture
def registry_setup(services, local_actor):  # type: ignore[no-untyped-def]
    """Two models with three versions each, registered once per test."""
    for m in MODELS:
        for n in range(VERSIONS):
            data = f"{m} weights {n}".encode()
            digest = sha256_hex(data)
            services.blobs.put(local_actor, digest, len(data), [data])
            services.registry.register_version(
                local_actor, m, files=[NewFile("model.bin", digest, len(data), "model")],
                create_model=True)
    return services


# --------------------------------------------------------------------------- deployments


@dataclass(frozen=True)
class Step:
    kind: str  # deploy | end
    model: int
    env: int
    version: int  # 1..VERSIONS (deploy only)
    gap_us: int  # time advance before this step (0: the same instant as the last step)
    backdate_us: int  # > 0: date the event this far before the clock (may be refused)


GAPS = st.sampled_from([0, 0, 1, 2, 1_000, 1_000_000, 3_600_000_000])
steps = st.lists(
    st.builds(
        Step,
        kind=st.sampled_from(["deploy", "deploy", "deploy", "end"]),
        model=st.integers(0, len(MODELS) - 1),
        env=st.integers(0, ENVS - 1),
        version=st.integers(1, VERSIONS),
        gap_us=GAPS,
        backdate_us=st.sampled_from([0, 0, 0, 0, 1, 5_000_000]),
    ),
    min_size=1,
    max_size=25,
)


class Reference:
    """The semantics, in a few lines: per (E, M) an append-only list of (at, version)."""

    def __init__(self) -> None:
        # (E, M) -> [(at, version, insertion index)]; version None: stopped serving.
        self.events: dict[tuple[str, str], list[tuple[datetime, int | None, int]]] = {}
        self.count = 0

    def record(self, env: str, model: str, at: datetime, version: int | None) -> str:
        history = self.events.setdefault((env, model), [])
        last = history[-1] if history else None
        if version is None and (last is None or last[1] is None):
            return "not_serving"
        if last is not None and at < last[0]:
            return "append_only"
        if version is not None and last is not None and last[1] == version:
            return "no_op"
        history.append((at, version, self.count))
        self.count += 1
        return "recorded"

    def served_at(self, env: str, at: datetime) -> dict[str, int]:
        out = {}
        for (e, m), history in self.events.items():
            if e != env:
                continue
            current = None
            for when, version, _ in history:
                if when <= at:
                    current = version
            if current is not None:
                out[m] = current
        return out

    def timeline(self, env: str) -> list[tuple[str, datetime, int | None]]:
        rows = [(when, i, m, v) for (e, m), h in self.events.items() if e == env
                for when, v, i in h]
        return [(m, when, v) for when, _, m, v in sorted(rows)]

    def intervals(self, model: str, version: int) -> list[tuple[str, datetime, datetime | None]]:
        spans = []
        for (e, m), history in self.events.items():
            if m != model:
                continue
            for k, (when, v, i) in enumerate(history):
                if v == version:
                    end = history[k + 1][0] if k + 1 < len(history) else None
                    spans.append((when, i, e, end))
        return [(e, when, end) for when, _, e, end in sorted(spans)]

    def instants(self) -> Iterator[datetime]:
        for history in self.events.values():
            for when, _, _ in history:
                yield from (when - US, when, when + US)


@given(history=steps)
@PROFILE
def test_deployment_history_matches_replay(registry_setup, local_actor, history):  # type: ignore[no-untyped-def]
    services = registry_setup
    dep = services.deployments
    tag = next(_names)
    envs = [f"env{tag}-{i}" for i in range(ENVS)]
    for e in envs:
        dep.ensure_environment(local_actor, e, min_stage="registered")
    ref = Reference()
    clock = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    first = clock
    for step in history:
        clock += timedelta(microseconds=step.gap_us)
        at = clock - timedelta(microseconds=step.backdate_us)
        env, model = envs[step.env], MODELS[step.model]
        version = step.version if step.kind == "deploy" else None
        expected = ref.record(env, model, at, version)
        try:
            if version is None:
                event = dep.end_deployment(local_actor, model, env, at=at)
                outcome = "recorded"
            else:
                event, created = dep.record_deployment(local_actor, f"{model}/{version}", env,
                                                       at=at)
                outcome = "recorded" if created else "no_op"
            assert event.at == (at if outcome == "recorded" else event.at)
        except Conflict as exc:
            outcome = exc.details["rule"]
        assert outcome == expected, (step, outcome, expected)

    instants = sorted({first - US, clock + timedelta(seconds=1), *ref.instants()})
    for env in envs:
        for t in instants:
            got = {d.model: d.version for d in dep.served_at(local_actor, env, t)}
            assert got == ref.served_at(env, t), (env, t)
        # The timeline is the same history, in time order.
        page = dep.timeline(local_actor, env, page_size=500, descending=False)
        assert [(e.model, e.at, e.version) for e in page.items] == ref.timeline(env)
    for model in MODELS:
        for version in range(1, VERSIONS + 1):
            got_spans = [(s.environment, s.start, s.end)
                         for s in dep.version_deployments(local_actor, f"{model}/{version}")
                         if s.environment in envs]
            assert got_spans == ref.intervals(model, version)
    # The auditor's single-model answer agrees with the environment-wide one.
    for t in instants[:: max(1, len(instants) // 8)]:
        for model in MODELS:
            answer = dep.served(local_actor, envs[0], model, t)
            expect = ref.served_at(envs[0], t).get(model)
            assert (answer.deployment.version if answer.deployment else None) == expect


# --------------------------------------------------------------------------- aliases


alias_ops = st.lists(
    st.tuples(st.sampled_from(["set", "set", "set", "delete"]), st.integers(0, 1),
              st.integers(1, VERSIONS)),
    min_size=1, max_size=15,
)


@given(ops=alias_ops)
@PROFILE
def test_alias_as_of_matches_replay(registry_setup, local_actor, ops):  # type: ignore[no-untyped-def]
    services = registry_setup
    reg = services.registry
    tag = next(_names)
    aliases = [f"a{tag}x{i}" for i in range(2)]
    model = MODELS[tag % len(MODELS)]
    current: dict[str, int | None] = {}
    expected_moves: list[tuple[str, int | None]] = []
    for op, which, number in ops:
        alias = aliases[which]
        if op == "set":
            reg.set_alias(local_actor, model, alias, number)
            if current.get(alias) != number:
                expected_moves.append((alias, number))
            current[alias] = number
        else:
            try:
                reg.delete_alias(local_actor, model, alias)
                assert current.get(alias) is not None
                expected_moves.append((alias, None))
                current[alias] = None
            except NotFound:
                assert current.get(alias) is None

    # The server stamps each move with its own clock: read the instants back.
    recorded = [a for a in reversed(reg.alias_history(local_actor, model, limit=1000))
                if a.name in aliases]
    assert [(a.name, a.version) for a in recorded] == expected_moves
    instants = sorted({t for a in recorded for t in (a.at - US, a.at, a.at + US)})
    for alias in aliases:
        moves = [(a.at, a.version) for a in recorded if a.name == alias]
        for t in instants:
            want = None
            for when, version in moves:
                if when <= t:
                    want = version
            try:
                got: int | None = reg.get_version(local_actor, f"{model}@{alias}", as_of=t).number
            except NotFound:
                got = None
            assert got == want, (alias, t, moves)
