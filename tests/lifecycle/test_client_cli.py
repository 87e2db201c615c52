"""The Python client and the ``regista`` commands of the lifecycle, against a live server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from regista.cli.main import app as cli
from regista.client import Client
from regista.errors import Conflict, Forbidden, Invalid
from tests.lifecycle.conftest import COMPLETE, FULL_FILES, LOCAL, ONE_APPROVAL, register

WITH_REVIEWS = ONE_APPROVAL + "review_intervals: {critical: 30}\n"


@pytest.fixture
def clients(live_server, people):
    made: dict[str, Client] = {}

    def client(name: str) -> Client:
        if name not in made:
            made[name] = Client(live_server.url, token=people.tokens[name])
        return made[name]

    yield client
    for c in made.values():
        c.close()


def test_client_story(clients, services, people, tmp_path):
    root, alice, bob, carol = (clients(n) for n in ("root", "alice", "bob", "carol"))
    info = alice.get_policy()
    assert info.version == 0 and info.embedded_default and info.history == []

    path = tmp_path / "policy.yaml"
    path.write_text(WITH_REVIEWS)
    with pytest.raises(Forbidden):
        alice.apply_policy(path)
    applied = root.apply_policy(path)
    assert applied.changed and applied.version == 1
    assert not root.apply_policy(WITH_REVIEWS).changed
    with pytest.raises(Invalid) as e:
        root.apply_policy("stages: [registered]\n")
    assert e.value.details["errors"][0]["line"] == 1
    assert [h.version for h in alice.get_policy().history] == [1]
    assert "registered" in alice.get_policy(0).document

    services.registry.create_model(LOCAL, "fraud", owner_team="risk")
    register(services, people.alice, "fraud", FULL_FILES, metadata=COMPLETE)
    services.registry.set_alias(LOCAL, "fraud", "candidate", 1)
    staged = alice.request_transition("fraud@candidate", "staging", "validate")
    assert staged.status == "applied" and staged.ref == "fraud/1"
    req = alice.request_transition("fraud/1", "production", "ship it")
    assert req.status == "pending" and req.missing == ["1 more approval from role approver"]
    with pytest.raises(Conflict):
        alice.request_transition("fraud/1", "production", "again")
    assert [r.id for r in bob.list_transitions(status="pending")] == [req.id]
    rejected = bob.reject_transition(req.id, "eval is stale")
    assert rejected.status == "rejected" and rejected.approvals[0].comment == "eval is stale"
    req2 = alice.request_transition("fraud/1", "production", "fresh eval attached")
    done = carol.approve_transition(req2.id, "ok")
    assert done.status == "applied" and done.approvals[0].approver == "carol"
    assert bob.get_transition(req2.id).status == "applied"
    assert len(list(bob.list_transitions(model="fraud", limit=2))) == 2

    history = bob.stage_history("fraud/1")
    assert [h.to_stage for h in history] == ["registered", "staging", "production"]
    assert history[-1].request is not None and history[-1].request.id == req2.id

    v = root.break_glass("fraud/1", "archived", "decommissioned after incident")
    assert v.stage == "archived"
    assert bob.stage_history("fraud/1")[-1].break_glass

    services.registry.create_model(LOCAL, "old", risk_tier="critical")
    assert [m.name for m in bob.overdue_reviews("2999-01-01T00:00:00Z")] == ["old"]
    assert bob.mark_reviewed("old").next_review_at is not None


@pytest.fixture
def run(live_server, people):
    runner = CliRunner()

    def invoke(who: str, *args: str, code: int = 0):
        result = runner.invoke(cli, ["--url", live_server.url, "--token", people.tokens[who],
                                     *args], env={"REGISTA_TOKEN": None, "REGISTA_URL": None})
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        return result

    return invoke


def test_cli_story(run, services, people, tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(WITH_REVIEWS)
    assert "valid (4 stages" in run("alice", "policy", "validate", str(policy)).stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - registered\n  - staging\ntransitions:\n  - {from: registered, to: x}\n")
    r = run("root", "policy", "validate", str(bad), code=1)
    assert f"{bad}:5: transitions[0].to: unknown stage 'x'" in r.stderr
    r = run("root", "policy", "apply", str(bad), code=1)
    assert f"{bad}:5: transitions[0].to:" in r.stderr
    assert "policy version 1 applied" in run("root", "policy", "apply", str(policy)).stdout
    assert "policy unchanged" in run("root", "policy", "apply", str(policy)).stdout
    shown = run("alice", "policy", "show").stdout
    assert "registered → staging → production (single) → archived" in shown
    assert run("alice", "policy", "show", "--document").stdout == WITH_REVIEWS
    assert json.loads(run("alice", "policy", "show", "--json").stdout)["version"] == 1

    services.registry.create_model(LOCAL, "m", owner_team="t")
    register(services, people.alice, "m", FULL_FILES, metadata=COMPLETE)
    out = run("alice", "transition", "request", "m/1", "staging", "-j", "validate").stdout
    assert "status:" in out and "applied" in out
    req = json.loads(run("alice", "transition", "request", "m/1", "production",
                         "--justification", "ship", "--json").stdout)
    assert req["status"] == "pending"
    r = run("alice", "transition", "approve", str(req["id"]), code=1)
    assert r.stderr.startswith("error: forbidden:")
    listed = run("bob", "transition", "list", "--status", "pending").stdout
    assert "m/1" in listed and "pending" in listed
    out = run("bob", "transition", "approve", str(req["id"]), "-m", "fine").stdout
    assert "applied" in out and "approve by bob" in out
    r = run("carol", "transition", "approve", str(req["id"]), code=1)
    assert "already applied" in r.stderr
    history = run("vic", "history", "m/1").stdout
    assert "staging → production  by bob" in history and "approved by bob" in history
    r = run("alice", "break-glass", "m/1", "archived", "--reason", "oops", code=1)
    assert "forbidden" in r.stderr
    out = run("root", "break-glass", "m/1", "archived", "--reason", "INC-9").stdout
    assert "BREAK-GLASS: m/1 is now in archived" in out
    assert "BREAK-GLASS production → archived  by root: INC-9" in run("vic", "history", "m/1").stdout

    services.registry.create_model(LOCAL, "risky", risk_tier="critical")
    assert "no overdue reviews" in run("vic", "review", "overdue").stdout
    assert "risky" in run("vic", "review", "overdue", "--at", "2999-01-01T00:00:00Z").stdout
    assert "risky reviewed; next review due" in run("bob", "review", "done", "risky").stdout
