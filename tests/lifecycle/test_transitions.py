"""Transitions, approvals, break-glass and invariants, through the service layer
(real users and roles, SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from regista.errors import Conflict, Forbidden, Invalid, NotFound, RegistryError
from regista.store.sql.tables import approvals, stage_events, transition_requests
from tests.lifecycle.conftest import (
    COMPLETE,
    FULL_FILES,
    LOCAL,
    ONE_APPROVAL,
    audit_rows,
    owned_model,
    register,
    stage_of,
)


def _to_staging(services, people, ref):
    r = services.lifecycle.request_transition(people.alice, ref, "staging", "validate it")
    assert r.status == "applied", r
    return r


def test_full_story_of_issue_3(services, people):
    """Request → checks missing → a new version fixes them → two approvers → applied,
    superseding (and archiving) the previous production version."""
    lc = services.lifecycle
    owned_model(services, "fraud-scorer")
    v1 = register(services, people.alice, "fraud-scorer", metadata={"metrics": {"auc": 0.8}})

    # registered → staging needs no approval: applied at once, its integrity check passed.
    r0 = _to_staging(services, people, "fraud-scorer/1")
    assert [c.check for c in r0.checks] == ["integrity_verified"] and r0.checks_passed

    # staging → production: the checks say what is missing.
    r1 = lc.request_transition(people.alice, "fraud-scorer/1", "production", "ready for prod")
    assert r1.status == "pending"
    failing = {c.check: c for c in r1.checks if not c.passed}
    assert set(failing) == {"metadata_complete", "model_card_present", "eval_report_present"}
    assert set(failing["metadata_complete"].missing) == {"intended_use", "model_card",
                                                         "eval_report"}
    assert any("2 more approvals from role approver" in m for m in r1.missing())
    with pytest.raises(Conflict, match="checks fail"):
        lc.approve(people.bob, r1.id, "looks fine")
    assert stage_of(services, "fraud-scorer/1") == "staging"

    # Metadata is frozen: the fix is a new version carrying model card, eval report, intended use.
    v2 = register(services, people.alice, "fraud-scorer", FULL_FILES, metadata=COMPLETE)
    _to_staging(services, people, "fraud-scorer/2")
    r2 = lc.request_transition(people.alice, "fraud-scorer/2", "production", "fixes the gaps")
    assert r2.checks_passed and r2.status == "pending"
    after_bob = lc.approve(people.bob, r2.id, "metrics are good")
    assert after_bob.status == "pending" and after_bob.approval_count == 1
    assert after_bob.missing() == ["1 more approval from role approver"]
    done = lc.approve(people.carol, r2.id, "card reviewed")
    assert done.status == "applied"
    assert [a.approver for a in done.approvals] == ["bob", "carol"]
    assert {a.version_digest for a in done.approvals} == {v2.digest}
    assert stage_of(services, "fraud-scorer/2") == "production"

    # A third version supersedes v2 in production: v2 is archived in the same transaction.
    register(services, people.alice, "fraud-scorer",
             {**FULL_FILES, "model.bin": (b"weights-3", "model")}, metadata=COMPLETE)
    _to_staging(services, people, "fraud-scorer/3")
    r3 = lc.request_transition(people.alice, "fraud-scorer/3", "production", "better model")
    lc.approve(people.carol, r3.id)
    applied = lc.approve(people.erin, r3.id)
    assert applied.status == "applied"
    assert stage_of(services, "fraud-scorer/3") == "production"
    assert stage_of(services, "fraud-scorer/2") == "archived"
    assert stage_of(services, "fraud-scorer/1") == "staging"
    assert lc.get_request(people.vic, r1.id).status == "pending"  # still waiting, untouched

    history = lc.stage_history(people.vic, "fraud-scorer/2")
    assert [(e.from_stage, e.to_stage) for e in history] == [
        (None, "registered"), ("registered", "staging"), ("staging", "production"),
        ("production", "archived")]
    assert history[2].request is not None and history[2].request.id == r2.id
    assert [a.approver for a in history[2].request.approvals] == ["bob", "carol"]
    assert history[3].reason == "superseded by fraud-scorer/3"
    assert history[3].request is not None and history[3].request.id == r3.id

    actions = [r.action for r in audit_rows(services, model="fraud-scorer")]
    assert actions.count("transition.apply") == 5  # three to staging, two to production
    assert "transition.archive_superseded" in actions
    [apply_v3] = [r for r in audit_rows(services, action="transition.apply", version=3)
                  if r.after["stage"] == "production"]
    assert apply_v3.after["archived"] == [2] and apply_v3.after["approvers"] == ["carol", "erin"]
    assert v1.number == 1


def test_unknown_stage_and_disallowed_transition(services, people):
    register(services, people.alice, "m")
    with pytest.raises(Invalid, match="unknown stage 'prod'") as e:
        services.lifecycle.request_transition(people.alice, "m/1", "prod", "x")
    assert e.value.details["rule"] == "unknown_stage"
    with pytest.raises(Conflict, match="does not allow registered → production") as c:
        services.lifecycle.request_transition(people.alice, "m/1", "production", "x")
    assert c.value.details["rule"] == "transition_not_allowed"
    assert c.value.details["allowed"] == ["staging", "archived"]
    with pytest.raises(Conflict, match="already in stage"):
        services.lifecycle.request_transition(people.alice, "m/1", "registered", "x")
    with pytest.raises(Invalid, match="justification must not be empty"):
        services.lifecycle.request_transition(people.alice, "m/1", "staging", "  ")
    with pytest.raises(NotFound):
        services.lifecycle.request_transition(people.alice, "m/9", "staging", "x")
    with pytest.raises(Forbidden):  # a viewer may not request
        services.lifecycle.request_transition(people.vic, "m/1", "staging", "x")


def _pending_production(services, people, model="m", requester=None):
    owned_model(services, model)
    register(services, people.alice, model, FULL_FILES, metadata=COMPLETE)
    _to_staging(services, people, f"{model}/1")
    return services.lifecycle.request_transition(requester or people.alice, f"{model}/1",
                                                 "production", "go")


def test_self_approval_double_approval_and_roles(services, people):
    lc = services.lifecycle
    r = _pending_production(services, people, requester=people.paula)
    # paula contributes and approves, but never her own request.
    with pytest.raises(Forbidden, match="self-approval is forbidden") as e:
        lc.approve(people.paula, r.id)
    assert e.value.details["rule"] == "self_approval"
    with pytest.raises(Forbidden, match="does not hold transition:approve"):
        lc.approve(people.alice, r.id)  # a contributor cannot approve at all
    with pytest.raises(Forbidden, match="does not hold transition:approve"):
        lc.approve(people.dave, r.id)  # a maintainer is not an approver
    with pytest.raises(Forbidden):
        lc.approve(people.vic, r.id)  # a viewer lacks transition:approve altogether
    lc.approve(people.bob, r.id)
    with pytest.raises(Conflict, match="already decided") as d:
        lc.approve(people.bob, r.id)
    assert d.value.details["rule"] == "already_decided"
    # An admin holds every role, but is still not allowed to approve their own request.
    r_admin = _pending_production(services, people, "n", requester=people.root)
    with pytest.raises(Forbidden, match="self-approval"):
        lc.approve(people.root, r_admin.id)
    with pytest.raises(NotFound):
        lc.approve(people.bob, 999_999)
    with services.db.read() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(approvals)).scalar()
    assert n == 1


def test_the_policy_names_the_approver_role(services, people):
    services.policy.apply(LOCAL, ONE_APPROVAL.replace("{count: 1, role: approver}",
                                                      "{count: 1, role: admin}"))
    register(services, people.alice, "m")
    _to_staging(services, people, "m/1")
    r = services.lifecycle.request_transition(people.alice, "m/1", "production", "go")
    assert r.approver_role == "admin"
    with pytest.raises(Forbidden, match="does not hold role 'admin'") as e:
        services.lifecycle.approve(people.bob, r.id)
    assert e.value.details["rule"] == "approver_role"
    assert services.lifecycle.approve(people.root, r.id).status == "applied"


def test_reject_cancel_and_closed_requests(services, people):
    lc = services.lifecycle
    r = _pending_production(services, people)
    with pytest.raises(Invalid, match="comment must not be empty"):
        lc.reject(people.bob, r.id, "")
    rejected = lc.reject(people.bob, r.id, "no eval on recent data")
    assert rejected.status == "rejected" and rejected.decided_at is not None
    with pytest.raises(Conflict, match="it was rejected") as e:
        lc.approve(people.carol, r.id)
    assert e.value.details["status"] == "rejected"

    r2 = lc.request_transition(people.alice, "m/1", "production", "second try")
    with pytest.raises(Forbidden, match="only the requester"):
        lc.cancel(people.frank, r2.id)
    with pytest.raises(Conflict, match="already pending"):
        lc.request_transition(people.frank, "m/1", "production", "me too")
    assert lc.cancel(people.alice, r2.id).status == "cancelled"
    with pytest.raises(Conflict, match="cancelled by its requester"):
        lc.approve(people.bob, r2.id)
    with pytest.raises(Conflict):
        lc.cancel(people.alice, r2.id)


def test_approving_a_superseded_or_applied_request(services, people):
    lc = services.lifecycle
    r = _pending_production(services, people)
    to_archive = lc.request_transition(people.frank, "m/1", "archived", "retire instead")
    assert to_archive.status == "applied"  # staging → archived needs no approval
    assert lc.get_request(people.vic, r.id).status == "superseded"
    with pytest.raises(Conflict, match="superseded") as e:
        lc.approve(people.bob, r.id)
    assert e.value.details["rule"] == "request_not_pending"
    with pytest.raises(Conflict, match="already applied"):
        lc.approve(people.bob, to_archive.id)
    assert [x.action for x in audit_rows(services, action="transition.supersede")] == [
        "transition.supersede"]


def test_single_in_stage_without_archive_superseded(services, people):
    services.policy.apply(LOCAL, ONE_APPROVAL.replace("    archive_superseded: true\n", ""))
    lc = services.lifecycle
    register(services, people.alice, "m")
    register(services, people.alice, "m", {"model.bin": (b"other", "model")})
    for n in (1, 2):
        _to_staging(services, people, f"m/{n}")
    r1 = lc.request_transition(people.alice, "m/1", "production", "first")
    lc.approve(people.bob, r1.id)
    r2 = lc.request_transition(people.alice, "m/2", "production", "second")
    blocker = next(c for c in r2.checks if c.check == "single_in_stage")
    assert not blocker.passed and "m/1 is already in production" in blocker.detail
    with pytest.raises(Conflict, match="checks fail"):
        lc.approve(people.bob, r2.id)
    assert stage_of(services, "m/1") == "production"


def test_break_glass(services, people):
    lc = services.lifecycle
    owned_model(services, "m")
    register(services, people.alice, "m", FULL_FILES, metadata=COMPLETE)
    register(services, people.alice, "m")  # v2: no model card, no metadata
    _to_staging(services, people, "m/1")
    r = lc.request_transition(people.alice, "m/1", "production", "go")
    lc.approve(people.bob, r.id)
    lc.approve(people.carol, r.id)
    pending = lc.request_transition(people.alice, "m/2", "staging", "x")
    assert pending.status == "applied"
    pending = lc.request_transition(people.alice, "m/2", "production", "x")

    with pytest.raises(Forbidden):
        lc.break_glass(people.alice, "m/2", "production", "incident 42")
    with pytest.raises(Forbidden):
        lc.break_glass(people.bob, "m/2", "production", "incident 42")
    with pytest.raises(Invalid, match="reason must not be empty"):
        lc.break_glass(people.root, "m/2", "production", "   ")
    with pytest.raises(Invalid, match="unknown stage"):
        lc.break_glass(people.root, "m/2", "prod", "incident 42")

    v = lc.break_glass(people.root, "m/2", "production", "incident 42: roll forward hotfix")
    assert v.stage == "production"
    assert stage_of(services, "m/1") == "archived"  # one production version, still
    assert lc.get_request(people.vic, pending.id).status == "superseded"
    [event] = audit_rows(services, action="transition.break_glass")
    assert event.outcome == "break_glass" and event.actor == "root" and event.version == 2
    assert event.after["reason"] == "incident 42: roll forward hotfix"
    assert set(event.after["bypassed_checks"]) >= {"metadata_complete", "model_card_present"}
    assert event.after["archived"] == [1]
    [archived] = audit_rows(services, action="transition.archive_superseded", version=1)
    assert archived.outcome == "break_glass"
    with services.db.read() as conn:
        flags = conn.execute(sa.select(stage_events.c.break_glass, stage_events.c.reason)
                             .order_by(stage_events.c.id)).all()
    assert flags[-1] == (True, "incident 42: roll forward hotfix")
    history = lc.stage_history(people.vic, "m/2")
    assert history[-1].break_glass and history[-1].actor == "root"
    with pytest.raises(Conflict, match="already in stage"):
        lc.break_glass(people.root, "m/2", "production", "again")


def test_policy_checks_metric_thresholds(services, people):
    services.policy.apply(LOCAL, ONE_APPROVAL.replace(
        "    approvals: {count: 1, role: approver}\n",
        "    approvals: {count: 1, role: approver}\n"
        "    checks: [model_card_present, 'metrics.auc >= 0.85', 'metrics.latency_ms < 20']\n",
        1))
    register(services, people.alice, "m", FULL_FILES, metadata={"metrics": {"auc": 0.83}})
    _to_staging(services, people, "m/1")
    r = services.lifecycle.request_transition(people.alice, "m/1", "production", "go")
    by_name = {c.check: c for c in r.checks}
    assert by_name["model_card_present"].passed
    assert not by_name["metrics.auc >= 0.85"].passed
    assert by_name["metrics.auc >= 0.85"].detail == "auc = 0.83"
    assert "not recorded" in by_name["metrics.latency_ms < 20"].detail


def test_integrity_check_detects_a_corrupted_blob(services, people, settings):
    register(services, people.alice, "m", {"model.bin": (b"precious", "model")})
    # Corrupt the stored bytes behind the registry's back (the local blob store).
    import hashlib

    digest = hashlib.sha256(b"precious").hexdigest()
    paths = [p for p in (settings.data_dir / "blobs").rglob(digest) if p.is_file()]
    assert paths, "blob file not found in the local store"
    for p in paths:
        p.chmod(0o644)
        p.write_bytes(b"tampered")
    r = services.lifecycle.request_transition(people.alice, "m/1", "staging", "x")
    assert r.status == "pending"
    [check] = r.checks
    assert check.check == "integrity_verified" and not check.passed
    assert check.missing == ["model.bin"]


def test_approvals_are_bound_to_the_version_digest(services, people):
    r = _pending_production(services, people)
    services.lifecycle.approve(people.bob, r.id)
    # Tamper with the request's recorded digest: approvals no longer match the version.
    with services.db.write() as conn:
        conn.execute(sa.update(transition_requests).where(transition_requests.c.id == r.id)
                     .values(version_digest="0" * 64))
    with pytest.raises(Conflict, match="no longer matches"):
        services.lifecycle.approve(people.carol, r.id)
    assert stage_of(services, "m/1") == "staging"


def _run_all(fns):
    errors: list[BaseException] = []
    results: list[object] = []
    barrier = threading.Barrier(len(fns))

    def run(fn):
        barrier.wait()
        try:
            results.append(fn())
        except RegistryError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f,)) for f in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return results, errors


def _production_count(services, model_name="m"):
    page = services.registry.search_versions(LOCAL, model=model_name, page_size=100)
    return [v.number for v in page.items if v.stage == "production"]


def test_invariant_holds_under_concurrent_approvals(services, people):
    """Competing requests approved at the same instant: one production version, the rest
    archived (the policy archives what a promotion supersedes)."""
    services.policy.apply(LOCAL, ONE_APPROVAL)
    lc = services.lifecycle
    approvers = [people.bob, people.carol, people.erin, people.root]
    requests = []
    for n in range(1, 5):
        register(services, people.alice, "m", {"model.bin": (f"w{n}".encode(), "model")})
        _to_staging(services, people, f"m/{n}")
        requests.append(lc.request_transition(people.alice, f"m/{n}", "production", f"v{n}"))
    results, errors = _run_all([
        (lambda a=a, r=r: lc.approve(a, r.id)) for a, r in zip(approvers, requests, strict=True)])
    assert not errors, errors
    assert _production_count(services) and len(_production_count(services)) == 1
    stages = sorted(stage_of(services, f"m/{n}") for n in range(1, 5))
    assert stages == ["archived", "archived", "archived", "production"]
    assert all(r.status == "applied" for r in results)  # type: ignore[attr-defined]


def test_invariant_without_archiving_under_concurrency(services, people):
    services.policy.apply(LOCAL, ONE_APPROVAL.replace("    archive_superseded: true\n", ""))
    lc = services.lifecycle
    requests = []
    for n in (1, 2, 3):
        register(services, people.alice, "m", {"model.bin": (f"w{n}".encode(), "model")})
        _to_staging(services, people, f"m/{n}")
        requests.append(lc.request_transition(people.alice, f"m/{n}", "production", f"v{n}"))
    results, errors = _run_all([
        (lambda a=a, r=r: lc.approve(a, r.id))
        for a, r in zip([people.bob, people.carol, people.erin], requests, strict=True)])
    assert len(results) == 1 and len(errors) == 2
    assert all(isinstance(e, Conflict) for e in errors)
    assert len(_production_count(services)) == 1


def test_many_approvers_racing_on_one_request_apply_it_once(services, people):
    lc = services.lifecycle
    r = _pending_production(services, people)
    results, errors = _run_all([
        (lambda a=a: lc.approve(a, r.id)) for a in (people.bob, people.carol, people.erin,
                                                     people.root)])
    assert len(results) == 2 and len(errors) == 2
    assert all(isinstance(e, Conflict) for e in errors)
    final = lc.get_request(people.vic, r.id)
    assert final.status == "applied" and final.approval_count == len(results)
    assert len(audit_rows(services, action="transition.apply", version=1)) == 2  # staging + prod
    with services.db.read() as conn:
        moves = conn.execute(sa.select(stage_events.c.to_stage)
                             .where(stage_events.c.to_stage == "production")).all()
    assert len(moves) == 1


def test_list_and_get_requests(services, people):
    lc = services.lifecycle
    _pending_production(services, people, "a")
    _pending_production(services, people, "b")
    pending = lc.list_requests(people.vic, status="pending")
    assert [r.model for r in pending.items] == ["b", "a"]
    assert [r.model for r in lc.list_requests(people.vic, model="a").items] == ["a", "a"]
    first = lc.list_requests(people.vic, page_size=1)
    second = lc.list_requests(people.vic, page_size=1, cursor=first.next_cursor)
    assert first.items[0].id > second.items[0].id
    with pytest.raises(Invalid, match="status must be one of"):
        lc.list_requests(people.vic, status="open")
    with pytest.raises(NotFound):
        lc.list_requests(people.vic, model="nope")
