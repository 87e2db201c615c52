"""The Python client and the CLI for identity, against a live server (bootstrap included)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from regista.cli.main import app as cli
from regista.client import Client
from regista.errors import Forbidden, NotFound, Unauthenticated

Run = Callable[..., Result]


@pytest.fixture
def run(live_server: Any) -> Run:
    runner = CliRunner()

    def invoke(*args: str, token: str | None = None, code: int = 0, stdin: str | None = None) -> Result:
        env = {"REGISTA_TOKEN": token}
        result = runner.invoke(cli, ["--url", live_server.url, *args], env=env, input=stdin)
        assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
        return result

    return invoke


def test_client_identity(live_server: Any) -> None:
    with Client(live_server.url, token="") as anonymous:
        assert anonymous.whoami().local_mode is True
        created = anonymous.create_user("ada", admin=True, issue_token=True)
        assert created.user.name == "ada" and created.token is not None
        secret = created.token.secret
        assert secret not in repr(created.token)  # the secret is kept out of reprs
        with pytest.raises(Unauthenticated):
            anonymous.whoami()
    with Client(live_server.url, token=secret) as admin:
        me = admin.whoami()
        assert me.name == "ada" and not me.local_mode
        assert [(g.role, g.scope_type) for g in me.roles] == [("admin", "registry")]
        admin.create_user("bob", email="bob@example.com")
        admin.create_team("vision")
        assert admin.add_team_member("vision", "bob").members == ["bob"]
        assert [t.name for t in admin.list_teams()] == ["vision"]
        binding = admin.grant_role("vision", "viewer")
        assert binding.scope_type == "registry"
        bot = admin.create_service_account("ci")
        assert bot.kind == "service"
        bot_token = admin.create_token("ci", principal="ci", scopes=["viewer"])
        assert bot_token.token.scopes == ["viewer"]
        assert {u.name for u in admin.list_users()} == {"ada", "bob"}
        assert admin.roles()["viewer"] == ["model:read"]
        bob_token = admin.create_token("for-bob", principal="bob").secret
    with Client(live_server.url, token=bob_token) as bob:
        assert bob.whoami().roles[0].via == "vision"
        assert bob.list_teams()[0].name == "vision"
        with pytest.raises(Forbidden):
            bob.create_team("mine")
        own = bob.create_token("laptop", expires_in_days=7)
        assert [t.name for t in bob.list_tokens()] == ["for-bob", "laptop"]
        bob.revoke_token(own.secret)
    with Client(live_server.url, token=own.secret) as revoked, pytest.raises(Unauthenticated):
        revoked.whoami()
    with Client(live_server.url, token=secret) as admin:
        admin.revoke_role("vision", "viewer")
        with pytest.raises(NotFound):
            admin.revoke_role("vision", "viewer")
        assert admin.disable_user("bob").disabled is True
        assert {t.principal for t in admin.list_tokens(all_principals=True)} == {"ada", "bob", "ci"}


def test_cli_bootstrap_and_identity_commands(run: Run) -> None:
    # A fresh server is in local mode: the first admin is created without credentials.
    assert "single-user mode" in run("whoami").stdout
    out = run("users", "create", "root", "--admin", "--token").stdout
    assert "created user root (admin)" in out
    token = out.strip().splitlines()[-1]
    assert token.startswith("rgst_")
    # Local mode is over.
    err = run("whoami", code=1).stderr
    assert "unauthenticated" in err and "rgst_" in err
    me = json.loads(run("whoami", "--json", token=token).stdout)
    assert me["name"] == "root" and me["roles"][0]["role"] == "admin"

    run("users", "create", "sue", "--set-password", token=token,
        stdin="a long enough password\na long enough password\n")
    assert "sue" in run("users", "list", token=token).stdout
    run("teams", "create", "risk", token=token)
    assert "sue" in run("teams", "add-member", "risk", "sue", token=token).stdout
    assert "risk" in run("teams", "list", token=token).stdout
    run("service-accounts", "create", "deployer", token=token)
    assert "deployer" in run("service-accounts", "list", token=token).stdout

    run("models", "create", "fraud", token=token)
    out = run("roles", "grant", "sue", "maintainer", "--model", "fraud", token=token).stdout
    assert "sue is maintainer at model fraud" in out
    listed = json.loads(run("roles", "list", "--principal", "sue", "--json", token=token).stdout)
    assert [(b["role"], b["scope"]) for b in listed] == [("maintainer", "fraud")]

    issued = json.loads(run("tokens", "create", "--for", "deployer", "--scope", "contributor",
                            "--model", "fraud", "--expires-in-days", "30", "--json",
                            token=token).stdout)
    assert issued["secret"].startswith("rgst_") and issued["models"] == ["fraud"]
    listed = json.loads(run("tokens", "list", "--all", "--json", token=token).stdout)
    assert issued["token_id"] in {t["token_id"] for t in listed}
    assert "secret" not in json.dumps(listed)
    assert "rgst_" in run("tokens", "list", token=token).stdout
    assert "revoked" in run("tokens", "revoke", issued["prefix"], token=token).stdout
    run("whoami", token=issued["secret"], code=1)

    assert "no longer maintainer" in run("roles", "revoke", "sue", "maintainer", "--model", "fraud",
                                         token=token).stdout
    assert "no members" in run("teams", "remove-member", "risk", "sue", token=token).stdout
    assert "disabled user sue" in run("users", "disable", "sue", token=token).stdout
    err = run("roles", "revoke", "root", "admin", token=token, code=1).stderr
    assert "without an enabled admin" in err
    err = run("roles", "grant", "root", "wizard", token=token, code=1).stderr
    assert "unknown role" in err
