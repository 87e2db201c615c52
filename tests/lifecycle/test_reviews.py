"""Review dates: from the risk tier's interval; overdue models listed; reviews recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest

from regista.errors import Forbidden, NotFound
from regista.service.clock import utcnow
from tests.lifecycle.conftest import LOCAL, ONE_APPROVAL, audit_rows


def test_next_review_overdue_and_mark_reviewed(services, people):
    lc = services.lifecycle
    before = utcnow()
    high = services.registry.create_model(LOCAL, "high-risk", risk_tier="high")
    low = services.registry.create_model(LOCAL, "low-risk", risk_tier="low")
    untiered = services.registry.create_model(LOCAL, "untiered")
    assert high.next_review_at is not None
    assert high.next_review_at - high.created_at == timedelta(days=90)
    assert low.next_review_at - low.created_at == timedelta(days=365)  # type: ignore[operator]
    assert untiered.next_review_at is None

    assert lc.overdue(people.vic) == []
    in_100_days = before + timedelta(days=100)
    assert [m.name for m in lc.overdue(people.vic, in_100_days)] == ["high-risk"]
    in_2_years = before + timedelta(days=730)
    assert [m.name for m in lc.overdue(people.vic, in_2_years)] == ["high-risk", "low-risk"]

    with pytest.raises(Forbidden):
        lc.mark_reviewed(people.alice, "high-risk")  # a contributor does not sign off reviews
    with pytest.raises(NotFound):
        lc.mark_reviewed(people.bob, "nope")
    just_after_due = high.next_review_at + timedelta(microseconds=1)
    assert [m.name for m in lc.overdue(people.vic, just_after_due)] == ["high-risk"]
    reviewed = lc.mark_reviewed(people.bob, "high-risk")
    assert reviewed.next_review_at is not None
    assert reviewed.next_review_at - utcnow() > timedelta(days=89)
    assert [m.name for m in lc.overdue(people.vic, just_after_due)] == []  # due again later
    [event] = audit_rows(services, action="model.review")
    assert event.actor == "bob" and event.model == "high-risk"
    assert event.before["next_review_at"] is not None and event.after["risk_tier"] == "high"

    # The interval comes from the current policy.
    services.policy.apply(LOCAL, ONE_APPROVAL + "review_intervals: {high: 7}\n")
    again = lc.mark_reviewed(people.bob, "high-risk")
    assert again.next_review_at is not None
    assert timedelta(days=6) < again.next_review_at - utcnow() <= timedelta(days=7)
    assert lc.mark_reviewed(people.bob, "untiered").next_review_at is None

    # Archived models are not listed.
    services.registry.archive_model(LOCAL, "low-risk")
    assert [m.name for m in lc.overdue(people.vic, in_2_years)] == ["high-risk"]
