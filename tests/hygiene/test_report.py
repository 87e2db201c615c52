"""The hygiene report: each kind of debt counted exactly, listed up to the limit."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from regista.errors import Forbidden, Invalid
from tests.hygiene.helpers import DAY, LOCAL, age_upload, put_blob, register, set_verified_at


def _stage(services, ref: str, stage: str) -> None:  # type: ignore[no-untyped-def]
    if stage == "production":  # the default policy wants two approvers: force it, audited
        services.lifecycle.break_glass(LOCAL, ref, stage, "test setup")
    else:
        services.lifecycle.request_transition(LOCAL, ref, stage, "test setup")


def _superseded(services) -> tuple[int, dict[str, int], list[str]]:  # type: ignore[no-untyped-def]
    s = services.hygiene.report(LOCAL).superseded_versions
    return s.count, {m.model: m.count for m in s.by_model}, [f"{i.model}/{i.version}" for i in s.items]


def test_empty_registry_has_no_debt(services):
    r = services.hygiene.report(LOCAL)
    assert (r.orphaned_blobs.count, r.orphaned_blobs.bytes, r.stale_uploads.count) == (0, 0, 0)
    assert (r.superseded_versions.count, r.unverified_versions.count) == (0, 0)
    assert r.verification_failures.checked_at is None and r.verification_failures.items == []
    assert r.superseded_versions.production_stage == "production"


def test_superseded_versions_skip_aliased_deployed_and_archived_ones(services):
    for i in range(1, 6):
        register(services, "fraud", f"fraud {i}".encode(),
                 aliases=("fallback",) if i == 2 else ())
    _stage(services, "fraud/2", "staging")
    _stage(services, "fraud/3", "staging")
    services.deployments.record_deployment(LOCAL, "fraud/3", "staging")
    _stage(services, "fraud/4", "production")
    register(services, "churn", b"churn 1")
    register(services, "churn", b"churn 2")
    _stage(services, "churn/2", "production")
    register(services, "idle", b"never in production")

    # fraud/1: below production, no alias, not serving. fraud/2 has an alias, fraud/3
    # serves in staging, fraud/5 is newer than production. churn/1 is superseded.
    assert _superseded(services) == (2, {"fraud": 1, "churn": 1}, ["churn/1", "fraud/1"])

    services.deployments.end_deployment(LOCAL, "fraud", "staging")
    assert _superseded(services) == (3, {"fraud": 2, "churn": 1}, ["churn/1", "fraud/1", "fraud/3"])

    # Serving again counts from the latest event of (environment, model) only.
    services.deployments.record_deployment(LOCAL, "fraud/3", "staging")
    assert _superseded(services)[0] == 2

    _stage(services, "fraud/1", "archived")
    services.registry.delete_alias(LOCAL, "fraud", "fallback")
    count, by_model, items = _superseded(services)
    assert (count, by_model) == (2, {"fraud": 1, "churn": 1}) and "fraud/2" in items

    # A newer production version: the policy archives the old one (single_in_stage), so it
    # is no debt; the newest production number moves up.
    _stage(services, "fraud/5", "production")
    s = services.hygiene.report(LOCAL).superseded_versions
    assert (s.count, {m.model: m.count for m in s.by_model}) == (2, {"fraud": 1, "churn": 1})
    assert {(i.model, i.version): i.newest_production for i in s.items} == {
        ("churn", 1): 2, ("fraud", 2): 5}


def test_orphans_uploads_and_unverified_are_counted(services):
    register(services, "fraud", b"v1 weights", b"common")
    register(services, "fraud", b"v2 weights", b"common")
    register(services, "churn", b"churn weights")
    orphans = [put_blob(services, b"o" * n) for n in (10, 20, 30)]
    upload = services.blobs.start_upload(LOCAL, hashlib.sha256(b"u" * 99).hexdigest(), 99)
    age_upload(services, upload.id, timedelta(seconds=services.settings.upload_expiry_seconds + 1))
    services.blobs.start_upload(LOCAL, hashlib.sha256(b"fresh").hexdigest(), 5)
    common = hashlib.sha256(b"common").hexdigest()
    set_verified_at(services, common, services.hygiene.clock() - 45 * DAY)
    set_verified_at(services, hashlib.sha256(b"churn weights").hexdigest(), None)

    r = services.hygiene.report(LOCAL, limit=2)

    o = r.orphaned_blobs
    assert (o.count, o.bytes, len(o.items)) == (3, 60, 2)
    assert {i.digest for i in o.items} <= set(orphans)
    u = r.stale_uploads
    assert (u.count, u.bytes, [i.id for i in u.items]) == (1, 99, [upload.id])
    v = r.unverified_versions
    assert (v.count, v.blobs) == (3, 2)
    assert [(m.model, m.count) for m in v.by_model] == [("fraud", 2), ("churn", 1)]
    assert len(v.items) == 2
    # With a wider window the 45-day-old verification is still recent enough.
    wide = services.hygiene.report(LOCAL, verify_window=timedelta(days=60)).unverified_versions
    assert (wide.count, wide.blobs, [(m.model, m.count) for m in wide.by_model]) == (
        1, 1, [("churn", 1)])


def test_limits_and_permissions(services):
    with pytest.raises(Invalid):
        services.hygiene.report(LOCAL, limit=0)
    with pytest.raises(Invalid):
        services.hygiene.report(LOCAL, limit=101)
    services.identity.create_user(LOCAL, "viewer")
    services.identity.grant_role(LOCAL, "viewer", "viewer")
    with pytest.raises(Forbidden):
        services.hygiene.report(services.identity.actor_for_user("viewer"))
    # model:read on one model is not enough either: the report spans every model.
    register(services, "fraud", b"x")
    services.identity.create_user(LOCAL, "maint")
    services.identity.grant_role(LOCAL, "maint", "maintainer", model="fraud")
    with pytest.raises(Forbidden):
        services.hygiene.report(services.identity.actor_for_user("maint"))
