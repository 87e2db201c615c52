"""PostgreSQL: writers queue on advisory locks before the hot rows (the version counter of
a model, the audit head), and concurrent registrations still come out gapless."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from regista.domain.models import Actor
from regista.service.container import Services
from regista.service.registry import NewFile
from regista.store.sql import audit_queries as aq
from regista.store.sql import registry as q
from tests.conftest import sha256_hex

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_services(services: Services) -> Services:
    if not services.db.is_postgres:
        pytest.skip("PostgreSQL only")
    return services


def _advisory_locks(url: str) -> set[tuple[int, int, int]]:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            rows = c.execute(sa.text(
                "SELECT classid::bigint, objid::bigint, objsubid FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted"))
            return {(int(r[0]), int(r[1]), int(r[2])) for r in rows}
    finally:
        eng.dispose()


def test_the_counter_and_audit_locks_are_held_until_commit(pg_services: Services,
                                                           local_actor: Actor) -> None:
    svc = pg_services
    data = b"locked model"
    digest = sha256_hex(data)
    svc.blobs.put(local_actor, digest, len(data), [data])
    model = svc.registry.create_model(local_actor, "queued")
    seen: list[set[tuple[int, int, int]]] = []

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "INSERT INTO audit_events" in statement:  # the last statement before COMMIT
            seen.append(_advisory_locks(svc.db.url))

    sa.event.listen(svc.db.engine, "after_cursor_execute", after)
    try:
        version, _ = svc.registry.register_version(
            local_actor, "queued", files=[NewFile(path="m.bin", digest=digest, size=len(data))])
    finally:
        sa.event.remove(svc.db.engine, "after_cursor_execute", after)
    assert version.number == 1
    assert len(seen) == 1
    # Two-key form: (classid, objid, objsubid=2); one bigint key: (high, low, objsubid=1).
    assert (q.COUNTER_LOCK_SPACE, model.id, 2) in seen[0]
    assert (0, aq.AUDIT_LOCK_KEY, 1) in seen[0]
    assert not {k for k in _advisory_locks(svc.db.url)
                if k[:2] in {(q.COUNTER_LOCK_SPACE, model.id), (0, aq.AUDIT_LOCK_KEY)}}


def test_registrations_racing_into_one_model_are_gapless(pg_services: Services,
                                                         local_actor: Actor) -> None:
    svc = pg_services
    data = b"queued model"
    digest = sha256_hex(data)
    svc.blobs.put(local_actor, digest, len(data), [data])
    svc.registry.create_model(local_actor, "race")
    got: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(t: int) -> None:
        start.wait()
        for i in range(10):
            try:
                v, _ = svc.registry.register_version(
                    local_actor, "race",
                    files=[NewFile(path="m.bin", digest=digest, size=len(data))],
                    tags={"t": str(t), "i": str(i)})
                got.append(v.number)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
    assert sorted(got) == list(range(1, 81))
    result = svc.audit.verify(local_actor)
    assert result.ok and result.first_bad is None
