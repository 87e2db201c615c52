"""Blob verification: corruption and loss are found, named with their versions, and reported."""

from __future__ import annotations

import pytest

from regista.errors import Invalid
from tests.hygiene.helpers import (
    DAY,
    LOCAL,
    age_blob,
    blob_path,
    blob_row,
    corrupt,
    events,
    put_blob,
    register,
    set_verified_at,
)


def test_verify_stamps_good_blobs_and_finds_corrupt_and_missing_ones(services):
    v1 = register(services, "fraud", b"weights one", b"shared config")
    v2 = register(services, "fraud", b"weights two", b"shared config")
    other = register(services, "churn", b"churn weights")
    good, shared = v1.files[0].digest, v1.files[1].digest
    lost = other.files[0].digest
    for d in (good, shared, lost, v2.files[0].digest):
        set_verified_at(services, d, None)
    corrupt(services, shared)
    blob_path(services, lost).unlink()

    result = services.hygiene.verify_blobs(LOCAL)

    assert (result.checked, result.ok) == (4, 2) and result.errors == 0 and result.failed
    [c] = result.corrupt
    assert (c.digest, c.problem) == (shared, "corrupt")
    assert sorted((r["model"], r["version"], r["path"]) for r in c.versions) == [
        ("fraud", 1, "file1.bin"), ("fraud", 2, "file1.bin")]
    [m] = result.missing
    assert (m.digest, m.problem, [r["version"] for r in m.versions]) == (lost, "missing", [1])
    assert blob_row(services, good).verified_at is not None
    assert blob_row(services, shared).verified_at is None
    assert blob_row(services, lost).verified_at is None

    [event] = events(services, "hygiene.verify")
    assert event.seq == result.audit_seq
    assert (event.after["checked"], event.after["ok"], event.after["corrupt"],
            event.after["missing"]) == (4, 2, 1, 1)
    assert {f["digest"]: f["problem"] for f in event.after["failures"]} == {
        shared: "corrupt", lost: "missing"}

    report = services.hygiene.report(LOCAL)
    failures = report.verification_failures
    assert failures.audit_seq == result.audit_seq
    assert {f.digest for f in failures.items} == {shared, lost}
    # Both broken blobs count as unverified files of their versions.
    assert report.unverified_versions.count == 3  # fraud/1, fraud/2, churn/1
    assert services.audit.verify(LOCAL).ok


def test_failures_carry_forward_until_the_blob_is_good_again(services):
    data = {register(services, f"m{i}", f"weights {i}".encode()).files[0].digest: f"weights {i}".encode()
            for i in range(2)}
    first, second = sorted(data)
    for d in data:
        corrupt(services, d)
    assert sorted(f.digest for f in services.hygiene.verify_blobs(LOCAL).corrupt) == [first, second]

    # A bounded run re-checks only the first (never-verified first, then by digest); the
    # second is carried forward, so the latest event still lists both.
    partial = services.hygiene.verify_blobs(LOCAL, limit=1)
    assert partial.checked == 1 and [f.digest for f in partial.corrupt] == [first]
    assert sorted(f["digest"] for f in events(services, "hygiene.verify")[-1].after["failures"]) == [
        first, second]
    assert sorted(f.digest for f in services.hygiene.report(LOCAL).verification_failures.items) == [
        first, second]

    # Restore the first blob's bytes: the next bounded run clears it, and only it.
    corrupt(services, first, data[first])
    healed = services.hygiene.verify_blobs(LOCAL, limit=1)
    assert healed.ok == 1 and not healed.failed
    assert [f.digest for f in services.hygiene.report(LOCAL).verification_failures.items] == [second]
    assert blob_row(services, first).verified_at is not None

    corrupt(services, second, data[second])
    assert not services.hygiene.verify_blobs(LOCAL).failed
    assert services.hygiene.report(LOCAL).verification_failures.items == []


def test_a_collected_blob_is_no_failure(services):
    """A failure list names blobs that still exist: collecting a broken orphan clears it."""
    orphan = put_blob(services, b"orphan that rotted")
    corrupt(services, orphan)
    assert [f.digest for f in services.hygiene.verify_blobs(LOCAL).corrupt] == [orphan]
    assert len(services.hygiene.report(LOCAL).verification_failures.items) == 1
    age_blob(services, orphan, 2 * DAY)
    assert services.hygiene.collect_garbage(LOCAL).blobs == 1
    assert services.hygiene.report(LOCAL).verification_failures.items == []


def test_verify_bounds(services):
    for i in range(3):
        register(services, "m", f"weights {i}".encode())
    assert services.hygiene.verify_blobs(LOCAL, limit=2).checked == 2
    # Everything was verified at registration: nothing is older than a day.
    assert services.hygiene.verify_blobs(LOCAL, older_than=DAY).checked == 0
    with pytest.raises(Invalid):
        services.hygiene.verify_blobs(LOCAL, limit=0)
    with pytest.raises(Invalid):
        services.hygiene.verify_blobs(LOCAL, older_than=-DAY)
