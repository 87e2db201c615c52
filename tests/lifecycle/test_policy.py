"""Policy as code: validation with line numbers, versioned and audited applies, the
embedded default, environment sync, caching across processes."""

from __future__ import annotations

from datetime import timedelta
from importlib import resources

import pytest
import sqlalchemy as sa

from regista.domain.policy import document_digest, load_policy
from regista.errors import Forbidden, Invalid, MissingMetadata
from regista.service.container import build_services
from regista.service.policy import PolicyService, default_document
from regista.store.sql.tables import environments, policies
from tests.lifecycle.conftest import LOCAL, ONE_APPROVAL, audit_rows, register


def test_the_default_policy_ships_in_the_package_and_is_in_effect(services):
    text = resources.files("regista").joinpath("policy", "default.yaml").read_text("utf-8")
    policy = load_policy(text)
    assert policy.stages == ("registered", "staging", "production", "archived")
    allowed = {(t.from_, t.to) for t in policy.document.transitions}
    assert allowed == {("registered", "staging"), ("staging", "production"),
                       ("production", "staging"), ("registered", "archived"),
                       ("staging", "archived"), ("production", "archived")}
    prod = policy.transition("staging", "production")
    assert prod is not None and prod.approvals.count == 2 and prod.archive_superseded
    assert policy.stage("production").single_in_stage  # type: ignore[union-attr]
    assert set(policy.required_metadata("production")) >= {"intended_use", "owner_team",
                                                           "model_card", "eval_report"}

    current = services.policy.current()
    assert current.version == 0 and current.applied_at is None
    assert current.digest == document_digest(text)
    hooks = services.registry.hooks
    assert hooks.protected_aliases() == frozenset({"champion", "production"})
    assert hooks.review_interval("high") == timedelta(days=90)
    assert hooks.review_interval(None) is None
    assert hooks.required_metadata("registered") == []
    shown, history = services.policy.show(LOCAL)
    assert shown.version == 0 and history == []


INVALID = [
    pytest.param("stages: [registered, staging]\nfoo: 1\n", 2, "foo", "unknown field 'foo'",
                 id="unknown-section"),
    pytest.param("stages:\n  - registered\n  - staging\ntransitions:\n  - from: registered\n"
                 "    to: prod\n", 6, "transitions[0].to", "unknown stage 'prod'",
                 id="unknown-stage"),
    pytest.param("stages: [registered, staging]\ntransitions:\n  - from: registered\n"
                 "    to: staging\n    approvals:\n      count: '2'\n", 6,
                 "transitions[0].approvals.count", "valid integer", id="count-as-text"),
    pytest.param("stages: [registered, staging]\ntransitions:\n  - from: registered\n"
                 "    to: staging\n    approvals: {count: 11}\n", 5,
                 "transitions[0].approvals.count", "less than or equal to 10", id="count-range"),
    pytest.param("stages: [registered, staging]\ntransitions:\n  - from: registered\n"
                 "    to: staging\n    approvals: {role: boss}\n", 5,
                 "transitions[0].approvals.role", "unknown role 'boss'", id="role"),
    pytest.param("stages: [registered, staging]\ntransitions:\n  - from: registered\n"
                 "    to: staging\n    checks:\n      - integrity_verified\n"
                 "      - metrics.auc >= high\n", 7, "transitions[0].checks[1]",
                 "not a metric threshold", id="threshold"),
    pytest.param("stages: [registered, staging]\ntransitions:\n  - from: registered\n"
                 "    to: staging\n    checks: [lint]\n", 5, "transitions[0].checks[0]",
                 "unknown check 'lint'", id="unknown-check"),
    pytest.param("stages: [registered, staging]\nstages: [registered]\n", 2, "stages",
                 "duplicate key 'stages'", id="duplicate-key"),
    pytest.param("stages: [registered, staging\n", 2, "", "not valid YAML", id="yaml-syntax"),
    pytest.param("stages: [staging, registered]\n", 1, "stages[0].name",
                 "first stage must be 'registered'", id="first-stage"),
    pytest.param("stages: [registered, staging]\nrequired_metadata:\n  registered:\n"
                 "    type: object\n    required: [training_code]\n  staging:\n"
                 "    type: object\n    required: [intended_use]\n", 6,
                 "required_metadata.staging", "must require everything 'registered' requires",
                 id="superset"),
    pytest.param("stages: [registered, staging]\nrequired_metadata:\n  registered:\n"
                 "    type: object\n    required: [owner_team]\n", 5,
                 "required_metadata.registered.required",
                 "'owner_team' cannot be required at registration", id="registration-fields"),
    pytest.param("stages: [registered, staging]\nrequired_metadata:\n  staging:\n"
                 "    type: object\n    properties:\n      intended_use: {type: strin}\n", 6,
                 "required_metadata.staging.properties.intended_use.type",
                 "not a valid JSON Schema", id="json-schema"),
    pytest.param("stages: [registered, staging]\nenvironments:\n  - name: prod-eu\n"
                 "    min_stage: production\n", 4, "environments[0].min_stage",
                 "unknown stage 'production'", id="environment-stage"),
    pytest.param("stages: [registered, staging]\nreview_intervals:\n  low: 0\n", 3,
                 "review_intervals.low", "greater than or equal to 1", id="interval"),
    pytest.param("stages: [registered, staging]\nreview_intervals:\n  extreme: 7\n", 3,
                 "review_intervals.extreme", "'extreme' is not allowed", id="tier"),
    pytest.param("stages: [registered, staging]\nprotected_aliases: [champion, 'bad alias']\n",
                 2, "protected_aliases[1]", "must start with a letter", id="alias"),
    pytest.param("- just\n- a list\n", 1, "", "must be a mapping", id="not-a-mapping"),
    pytest.param("# nothing\n", 1, "", "empty", id="empty"),
]


@pytest.mark.parametrize(("text", "line", "field", "fragment"), INVALID)
def test_validation_errors_name_the_line_and_field(text, line, field, fragment):
    with pytest.raises(Invalid) as e:
        load_policy(text)
    errors = e.value.details["errors"]
    assert all(set(err) == {"line", "field", "message"} for err in errors)
    assert any(err["line"] == line and err["field"] == field and fragment in err["message"]
               for err in errors), errors
    assert e.value.message.startswith("policy is not valid: line ")


def test_every_error_of_a_document_is_reported():
    text = ("stages:\n  - registered\n  - name: Staging\n  - name: prod\n    extra: 1\n"
            "transitions:\n  - {from: registered, to: nowhere, checks: [nope]}\n")
    with pytest.raises(Invalid) as e:
        load_policy(text)
    got = {(err["line"], err["field"]) for err in e.value.details["errors"]}
    assert {(3, "stages[1].name"), (5, "stages[2].extra"),
            (7, "transitions[0].checks[0]")} <= got


def test_billion_laughs_is_refused_quickly():
    lol = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lol += f"{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    with pytest.raises(Invalid, match="expands to more than"):
        load_policy(lol)


def test_apply_is_versioned_audited_and_idempotent(services):
    first = services.policy.apply(LOCAL, ONE_APPROVAL)
    assert first.changed and first.version == 1
    same = services.policy.apply(LOCAL, ONE_APPROVAL.replace("\n", "\r\n") + "\n\n")
    assert not same.changed and same.version == 1
    changed_text = ONE_APPROVAL.replace("{count: 1, role: approver}", "{count: 2, role: approver}")
    second = services.policy.apply(LOCAL, changed_text)
    assert second.changed and second.version == 2

    events = audit_rows(services, action="policy.apply")
    assert len(events) == 2
    assert events[0].before == {"version": 0, "digest": document_digest(default_document())}
    assert events[0].after["digest"] == first.digest and events[0].after["version"] == 1
    assert events[1].before == {"version": 1, "digest": first.digest}
    assert events[1].after["digest"] == second.digest and events[1].target == "policy/2"

    current, history = services.policy.show(LOCAL)
    assert current.version == 2 and current.applied_by == "local"
    assert current.policy.transition("staging", "production").approvals.count == 2  # type: ignore[union-attr]
    assert [h.version for h in history] == [2, 1]
    assert services.policy.get_version(LOCAL, 1).document == ONE_APPROVAL
    assert services.policy.get_version(LOCAL, 0).document == default_document()


def test_applying_the_embedded_default_pins_it(services):
    applied = services.policy.apply(LOCAL, default_document())
    assert applied.changed and applied.version == 1
    assert not services.policy.apply(LOCAL, default_document()).changed


def test_an_invalid_policy_changes_nothing(services):
    with pytest.raises(Invalid) as e:
        services.policy.apply(LOCAL, "stages: [registered]\n")
    assert e.value.details["errors"][0]["line"] == 1
    with pytest.raises(Invalid, match="empty"):
        services.policy.apply(LOCAL, "  \n")
    with services.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(policies)).scalar() == 0
    assert audit_rows(services, action="policy.apply") == []


def test_applying_needs_the_policy_permission(services, people):
    with pytest.raises(Forbidden):
        services.policy.apply(people.alice, ONE_APPROVAL)
    with pytest.raises(Forbidden):
        services.policy.apply(people.dave, ONE_APPROVAL)
    assert services.policy.apply(people.root, ONE_APPROVAL).applied_by == "root"


def _envs(services):
    with services.db.read() as conn:
        return {r.name: r.min_stage for r in conn.execute(sa.select(environments))}


def test_environments_are_synced_never_deleted(services):
    services.policy.apply(LOCAL, ONE_APPROVAL + "environments:\n"
                          "  - {name: staging-eu, min_stage: staging}\n"
                          "  - {name: prod-eu, min_stage: production}\n")
    assert _envs(services) == {"staging-eu": "staging", "prod-eu": "production"}
    applied = services.policy.apply(LOCAL, ONE_APPROVAL + "environments:\n"
                                    "  - {name: staging-eu, min_stage: production}\n"
                                    "  - {name: prod-us, min_stage: production}\n")
    assert applied.environments == {
        "created": ["prod-us"],
        "updated": [{"name": "staging-eu", "before": {"min_stage": "staging"},
                     "after": {"min_stage": "production"}}]}
    assert _envs(services) == {"staging-eu": "production", "prod-eu": "production",
                               "prod-us": "production"}
    assert audit_rows(services, action="policy.apply")[-1].after["environments"] == \
        applied.environments


def test_a_policy_cannot_remove_a_stage_versions_are_in(services, people):
    register(services, people.alice, "m")
    services.lifecycle.request_transition(people.alice, "m/1", "staging", "x")
    without_staging = ("stages: [registered, production, archived]\n"
                       "transitions:\n  - {from: registered, to: production}\n")
    with pytest.raises(Invalid, match="removes stages that versions are in: 'staging'"):
        services.policy.apply(LOCAL, without_staging)
    assert services.policy.current().version == 0


def test_registration_and_aliases_follow_the_policy(services, people):
    services.policy.apply(LOCAL, ONE_APPROVAL + "required_metadata:\n  registered:\n"
                          "    type: object\n    required: [training_code]\n"
                          "    properties:\n      training_code:\n        type: object\n"
                          "        required: [commit]\n"
                          "protected_aliases: [gold]\n")
    assert services.registry.hooks.required_metadata("registered") == [
        "training_code", "training_code.commit"]
    with pytest.raises(MissingMetadata) as e:
        register(services, people.alice, "m")
    assert e.value.missing == ["training_code", "training_code.commit"]
    v = register(services, people.alice, "m",
                 metadata={"training_code": {"repository": "r", "commit": "abc"}})
    assert v.number == 1
    assert services.registry.hooks.protected_aliases() == frozenset({"gold"})
    with pytest.raises(Forbidden):
        services.registry.set_alias(people.alice, "m", "gold", 1)
    services.registry.set_alias(people.alice, "m", "champion", 1)  # no longer protected


def test_processes_converge_on_a_new_policy_within_the_recheck_interval(services, settings):
    clock = [100.0]
    other = PolicyService(services.db, services.registry.authz, settings,
                          monotonic=lambda: clock[0])
    assert other.current().version == 0
    services.policy.apply(LOCAL, ONE_APPROVAL)
    assert services.policy.current().version == 1  # the applying process knows at once
    assert other.current().version == 0  # another process: cached for up to a second
    with services.db.read() as conn:
        assert other.current(conn).version == 1  # decisions in a transaction are exact
    other_again = PolicyService(services.db, services.registry.authz, settings,
                                monotonic=lambda: clock[0])
    other_again.current()
    services.policy.apply(LOCAL, ONE_APPROVAL + "protected_aliases: [gold]\n")
    assert other_again.current().version == 1
    clock[0] += other_again.recheck_seconds + 0.01
    assert other_again.current().version == 2
    assert other_again.current().policy.protected_aliases == frozenset({"gold"})


def test_the_policy_file_setting_is_applied_at_start_up(settings, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(ONE_APPROVAL)
    configured = settings.model_copy(update={"policy_file": path})
    first = build_services(configured)
    second = build_services(configured)  # another process starting: no new version
    try:
        assert first.policy.current().version == 1
        assert second.policy.current().version == 1
        [event] = audit_rows(first, action="policy.apply")
        assert event.actor == "system" and event.after["source"] == str(path)
    finally:
        first.close()
        second.close()
    path.write_text("stages: [registered]\n")
    with pytest.raises(Invalid, match="policy is not valid"):
        build_services(configured)


def test_a_stored_policy_that_no_longer_loads_fails_closed_until_replaced(services, people):
    from regista.errors import Unavailable
    from regista.service.clock import utcnow

    with services.db.write() as conn:
        conn.execute(sa.insert(policies).values(version=1, document="stages: [registered]\n",
                                                digest="0" * 64, applied_at=utcnow(),
                                                applied_by="someone"))
    services.policy.recheck_seconds = 0.0  # look at the table on every read
    with pytest.raises(Unavailable, match="version 1"):
        services.policy.current()
    with pytest.raises(Unavailable):
        register(services, people.alice, "m")  # registration asks the policy: fail closed
    repaired = services.policy.apply(LOCAL, ONE_APPROVAL)
    assert repaired.version == 2
    assert audit_rows(services, action="policy.apply")[-1].before == {"version": 1,
                                                                      "digest": "0" * 64}
    assert register(services, people.alice, "m").number == 1
