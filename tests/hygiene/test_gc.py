"""Garbage collection: orphaned blobs and stale uploads go, referenced blobs never do."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa

from regista.errors import Conflict, Forbidden, Invalid, NotFound
from regista.service.registry import NewFile
from regista.store.sql import hygiene as hq
from regista.store.sql import registry as rq
from tests.hygiene.helpers import (
    DAY,
    LOCAL,
    age_blob,
    age_upload,
    blob_path,
    blob_row,
    events,
    local_store,
    make_old,
    put_blob,
    register,
    upload_row,
)


def test_orphan_older_than_grace_is_removed_from_db_and_store(services):
    orphan = put_blob(services, b"uploaded, never registered")
    young = put_blob(services, b"uploaded a minute ago")
    version = register(services, "fraud", b"weights v1")
    used = version.files[0].digest
    age_blob(services, orphan, 2 * DAY)
    age_blob(services, used, 30 * DAY)  # old, but referenced
    age_blob(services, young, timedelta(minutes=1))

    result = services.hygiene.collect_garbage(LOCAL)

    assert (result.dry_run, result.blobs) == (False, 1)
    assert result.bytes_freed == len(b"uploaded, never registered")
    assert result.digests == [orphan] and result.skipped == 0 and not result.truncated
    assert blob_row(services, orphan) is None
    assert not blob_path(services, orphan).exists()
    assert not services.blob_store.exists(orphan)
    for kept in (used, young):
        assert blob_row(services, kept) is not None and services.blob_store.exists(kept)
    # The registered version still downloads intact.
    assert b"".join(services.blobs.open(used)) == b"weights v1"


def test_referenced_blob_is_never_removed_even_with_zero_grace(services):
    shared = b"shared weights"
    a = register(services, "a", shared)
    b = register(services, "b", shared, b"config")
    for digest in {f.digest for f in a.files + b.files}:
        age_blob(services, digest, 365 * DAY)
    result = services.hygiene.collect_garbage(LOCAL, grace_seconds=0)
    assert result.blobs == 0
    with services.db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM blobs")).scalar_one() == 2


def test_dry_run_removes_nothing_and_writes_no_audit_event(services):
    orphan = put_blob(services, b"orphan")
    age_blob(services, orphan, 2 * DAY)
    upload = services.blobs.start_upload(LOCAL, hashlib.sha256(b"x" * 10).hexdigest(), 10)
    age_upload(services, upload.id, 2 * DAY)

    result = services.hygiene.collect_garbage(LOCAL, dry_run=True)

    assert result.dry_run and (result.blobs, result.bytes_freed, result.uploads) == (1, 6, 1)
    assert result.digests == [orphan] and result.staging_files is None and result.audit_seq is None
    assert blob_row(services, orphan) is not None and services.blob_store.exists(orphan)
    assert upload_row(services, upload.id) is not None
    assert events(services, "hygiene.gc") == []


def test_stale_uploads_are_aborted_and_forgotten(services):
    data = b"z" * 1000
    digest = hashlib.sha256(data).hexdigest()
    stale = services.blobs.start_upload(LOCAL, digest, len(data))
    services.blobs.append_upload(LOCAL, stale.id, 0, [data[:400]])
    fresh = services.blobs.start_upload(LOCAL, digest, len(data))
    expiry = services.settings.upload_expiry_seconds
    age_upload(services, stale.id, timedelta(seconds=expiry + 60))
    handle = upload_row(services, stale.id).handle
    uploads_dir = local_store(services).root / ".uploads"
    assert (uploads_dir / handle).exists()

    result = services.hygiene.collect_garbage(LOCAL)

    assert (result.uploads, result.upload_bytes) == (1, len(data))
    assert upload_row(services, stale.id) is None
    assert not (uploads_dir / handle).exists()
    assert upload_row(services, fresh.id) is not None  # younger than the expiry
    # The stale upload is gone for its client too; the fresh one carries on.
    with pytest.raises(NotFound):
        services.blobs.append_upload(LOCAL, stale.id, 400, [data[400:]])
    done = services.blobs.append_upload(LOCAL, fresh.id, 0, [data])
    assert done.offset == len(data) and services.blob_store.exists(digest)


def test_store_leftovers_without_rows_are_purged(services):
    store = local_store(services)
    expiry = timedelta(seconds=services.settings.upload_expiry_seconds + 60)
    stray = store.upload_start()  # an upload whose row was never written (crash)
    make_old(store.root / ".uploads" / stray, expiry)
    recent = store.upload_start()
    leftover = store.root / ".staging" / "0123456789abcdef.tmp"  # a crashed put_stream
    leftover.write_bytes(b"partial")
    make_old(leftover, expiry)

    dry = services.hygiene.collect_garbage(LOCAL, dry_run=True)
    assert dry.upload_files == 1 and (store.root / ".uploads" / stray).exists()

    result = services.hygiene.collect_garbage(LOCAL)
    assert (result.upload_files, result.staging_files) == (1, 1)
    assert not (store.root / ".uploads" / stray).exists()
    assert not leftover.exists()
    assert (store.root / ".uploads" / recent).exists()


def test_gc_is_audited_as_one_event_with_counts(services):
    orphans = [put_blob(services, f"orphan {i}".encode()) for i in range(3)]
    for d in orphans:
        age_blob(services, d, 3 * DAY)
    upload = services.blobs.start_upload(LOCAL, hashlib.sha256(b"u").hexdigest(), 1)
    age_upload(services, upload.id, 3 * DAY)

    result = services.hygiene.collect_garbage(LOCAL)

    [event] = events(services, "hygiene.gc")
    assert event.seq == result.audit_seq and event.actor == "local" and event.outcome == "ok"
    after = event.after
    assert (after["blobs"], after["uploads"], after["bytes_freed"]) == (3, 1, sum(
        len(f"orphan {i}".encode()) for i in range(3)))
    assert sorted(after["digests"]) == sorted(orphans) and after["grace_seconds"] == 86400
    assert services.audit.verify(LOCAL).ok
    # Nothing left: a second run deletes nothing (and says so in its own event).
    again = services.hygiene.collect_garbage(LOCAL)
    assert (again.blobs, again.uploads) == (0, 0)
    assert len(events(services, "hygiene.gc")) == 2


def test_registration_after_collection_must_upload_again(services):
    data = b"abandoned, then wanted after all"
    digest = put_blob(services, data)
    age_blob(services, digest, 2 * DAY)
    assert services.hygiene.collect_garbage(LOCAL).blobs == 1

    files = [NewFile(path="model.bin", digest=digest, size=len(data), role="model")]
    with pytest.raises(Conflict) as exc:
        services.registry.register_version(LOCAL, "late", files=files, create_model=True)
    assert exc.value.details["missing_blobs"] == [{"path": "model.bin", "sha256": digest}]
    put_blob(services, data)  # the client uploads again; now it works
    _, created = services.registry.register_version(LOCAL, "late", files=files,
                                                    create_model=True)
    assert created and b"".join(services.blobs.open(digest)) == data


def test_the_delete_rechecks_references_itself(services):
    """A stale candidate list cannot remove a blob referenced since it was listed."""
    version = register(services, "fraud", b"weights")
    digest = version.files[0].digest
    with services.db.write() as conn:
        assert hq.lock_blobs_for_delete(conn, [digest]) == [digest]
        assert hq.delete_orphan_blobs(conn, [digest], created_before=None) == []
    assert blob_row(services, digest) is not None


def test_gc_skips_a_blob_a_registration_is_checking(services):
    """PostgreSQL: a registration holds FOR KEY SHARE on the blobs it names until commit;
    the collector's FOR UPDATE SKIP LOCKED passes over them instead of deleting."""
    if not services.db.is_postgres:
        pytest.skip("SQLite serialises writers: a registration and a collection never overlap")
    digest = put_blob(services, b"being registered right now")
    age_blob(services, digest, 2 * DAY)
    with services.db.engine.connect() as reg, reg.begin() as tx:
        assert rq.known_blobs(reg, [digest], lock=True) == {digest: len(b"being registered right now")}
        result = services.hygiene.collect_garbage(LOCAL)
        assert (result.blobs, result.skipped) == (0, 1)
        tx.rollback()  # the registration failed for another reason
    assert blob_row(services, digest) is not None
    assert services.hygiene.collect_garbage(LOCAL).blobs == 1  # next run takes it


def test_a_registration_waits_for_a_collection_holding_the_blob(services):
    """PostgreSQL: while the collector holds a blob (FOR UPDATE), a registration's
    check cannot lock it (it would wait, then find the row gone and answer 409)."""
    if not services.db.is_postgres:
        pytest.skip("SQLite serialises writers")
    digest = put_blob(services, b"contended")
    with services.db.engine.connect() as gc, gc.begin():
        assert hq.lock_blobs_for_delete(gc, [digest]) == [digest]
        with services.db.engine.connect() as reg, reg.begin():
            reg.exec_driver_sql("SET LOCAL lock_timeout = '100ms'")
            with pytest.raises(sa.exc.OperationalError) as exc:
                rq.known_blobs(reg, [digest], lock=True)
            assert "lock" in str(exc.value).lower()
        # And the reverse: the collector never waits for a registration.
        with services.db.engine.connect() as other, other.begin():
            assert hq.lock_blobs_for_delete(other, [digest]) == []


def test_registration_locks_the_blobs_it_checks(services):
    """The registration path asks for the lock (PostgreSQL renders it; SQLite needs none)."""
    if not services.db.is_postgres:
        pytest.skip("SQLite serialises writers")
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    sa.event.listen(services.db.engine, "before_cursor_execute", record)
    try:
        register(services, "fraud", b"weights")
    finally:
        sa.event.remove(services.db.engine, "before_cursor_execute", record)
    assert any("FROM blobs" in s and "FOR KEY SHARE" in s for s in seen), seen


def test_bad_arguments_and_permissions(services):
    with pytest.raises(Invalid):
        services.hygiene.collect_garbage(LOCAL, grace_seconds=-1)
    with pytest.raises(Invalid):
        services.hygiene.collect_garbage(LOCAL, grace_seconds=True)  # type: ignore[arg-type]
    services.identity.create_user(LOCAL, "admin", admin=True)
    services.identity.create_user(LOCAL, "approver")
    services.identity.grant_role(LOCAL, "approver", "approver")
    approver = services.identity.actor_for_user("approver")
    with pytest.raises(Forbidden):
        services.hygiene.collect_garbage(approver)
    with pytest.raises(Forbidden):
        services.hygiene.verify_blobs(approver)
    services.hygiene.report(approver)  # audit:read is enough to look
    admin = services.identity.actor_for_user("admin")
    assert services.hygiene.collect_garbage(admin, dry_run=True).blobs == 0


def test_repair_of_a_blob_re_recorded_while_its_bytes_were_deleted(services):
    """The one interleaving the row-first order leaves open: an upload of the same bytes
    finds them still stored, then records a new row after the collector deleted the old
    one, and the collector deletes the bytes. It cannot be timed in a test, so the state
    it leaves is built directly and the repair step is run on it."""
    orphan = put_blob(services, b"re-uploaded during collection")
    wanted = register(services, "fraud", b"registered meanwhile").files[0].digest
    for digest in (orphan, wanted):
        services.blob_store.delete(digest)  # the collector deleted the bytes
    assert services.hygiene._repair(LOCAL, [orphan, wanted]) == sorted([orphan, wanted])
    assert blob_row(services, orphan) is None  # the uploader will be asked for it again
    assert blob_row(services, wanted).verified_at is None  # referenced: flagged, reported
    [event] = events(services, "hygiene.gc.repair")
    assert event.after == {"removed": [orphan], "flagged_unverified": [wanted]}
    report = services.hygiene.report(LOCAL)
    assert [(i.model, i.version) for i in report.unverified_versions.items] == [("fraud", 1)]
    assert services.hygiene.verify_blobs(LOCAL).missing[0].digest == wanted
    # Nothing to repair when the bytes are there.
    assert services.hygiene._repair(LOCAL, [put_blob(services, b"fine")]) == []
