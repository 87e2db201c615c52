"""The web UI in-process (TestClient), on SQLite and PostgreSQL: every page renders from
the services, escapes hostile text, refuses forged forms, and fails as a friendly page."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from regista.api.app import iter_routes
from regista.web.session import CONTENT_SECURITY_POLICY, SESSION_COOKIE
from tests.web.conftest import (
    HOSTILE,
    Portfolio,
    assert_escaped,
    csrf_from,
    sign_in,
    sign_in_token,
)

PAGES = [
    "/", "/models", "/models?stage=production", "/models/fraud-scorer",
    "/models/fraud-scorer/versions/1", "/models/fraud-scorer/versions/2", "/models/churn",
    "/compare?v=fraud-scorer/1&v=fraud-scorer/2&v=churn/1", "/approvals",
    "/approvals?status=applied", "/environments", "/environments/production",
    "/environments/staging", "/audit", "/audit?model=fraud-scorer", "/policy", "/admin",
    "/account", "/login",
]


@pytest.fixture
def web(api: TestClient, portfolio: Portfolio) -> TestClient:
    """The in-process client, signed in as the admin (with a token: faster than a password)."""
    sign_in_token(api, portfolio.tokens["margaret"])
    return api


def test_every_page_renders_and_escapes_hostile_text(web: TestClient) -> None:
    for path in PAGES:
        r = web.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert r.headers["x-frame-options"] == "DENY"
        assert_escaped(r.text)
        assert "Traceback" not in r.text
    # The hostile text was really on the pages, escaped.
    for path in ("/models/fraud-scorer", "/models/fraud-scorer/versions/1", "/approvals?status=applied",
                 "/audit", "/compare?v=fraud-scorer/1&v=fraud-scorer/2"):
        assert "&lt;script&gt;" in web.get(path).text, path


def test_model_card_is_rendered_without_raw_html_or_script_links(web: TestClient) -> None:
    html = web.get("/models/fraud-scorer/versions/1").text
    card = html[html.index('<article class="modelcard">'):html.index("</article>")]
    assert "<h1>Card</h1>" in card
    assert "<table>" in card  # Markdown tables render
    assert '<a href="https://example.com/docs">docs</a>' in card
    assert "&lt;script&gt;alert('card')&lt;/script&gt;" in card or \
        "&lt;script&gt;alert(&#x27;card&#x27;)&lt;/script&gt;" in card
    assert "javascript:" not in card.replace("[click me](javascript:alert(4))", "")


def test_dashboard_shows_the_portfolio(web: TestClient, portfolio: Portfolio) -> None:
    html = web.get("/").text
    assert "fraud-scorer/2" in html  # serving in production
    assert "grace, alan" in html  # who approved it
    assert f"#{portfolio.pending_request}" in html  # pending approval
    assert "a build no registered version carries is serving" in html  # drift
    assert "Reviews overdue" in html
    assert re.search(r"<a href=\"/models/fraud-scorer\">fraud-scorer</a>", html)


def test_version_page_facts(web: TestClient) -> None:
    html = web.get("/models/fraud-scorer/versions/2").text
    for fact in ("Provenance", "abc123", "sklearn", "auc", "eval/report.json", "model_card",
                 "fraud-scorer/1", "Stage history", "transition.approve", "production"):
        assert fact in html, fact
    assert 'href="/api/v1/models/fraud-scorer/versions/2/files/eval/report.json"' in html


def test_file_download_link_works_with_the_session(web: TestClient) -> None:
    r = web.get("/api/v1/models/fraud-scorer/versions/1/files/MODEL_CARD.md")
    assert r.status_code == 200
    assert r.content.startswith(b"# Card")
    # The session cookie authenticates reads only: a JSON write with it is refused.
    r = web.patch("/api/v1/models/fraud-scorer", json={"description": "x"})
    assert r.status_code == 401


def test_compare_highlights_differences(web: TestClient) -> None:
    html = web.get("/compare?v=fraud-scorer/1&v=fraud-scorer/2").text
    rows = re.findall(r'<tr class="diff"><th scope="row">(?:<code>)?([^<]+)', html)
    assert "digest" in rows and "auc" in rows and "parameters.depth" in rows
    assert "framework" not in rows  # same in both
    r = web.get("/compare?v=fraud-scorer/1&v=fraud-scorer/99&v=bad%20ref")
    assert r.status_code == 200
    assert "fraud-scorer/99" in r.text and "not found" in r.text


def test_catalogue_filters_sort_and_search(web: TestClient) -> None:
    def names(query: str) -> list[str]:
        r = web.get("/models" + query)
        assert r.status_code == 200, r.text
        return re.findall(r'<a href="/models/([^"/]+)"><strong>', r.text)

    assert names("") == ["churn", "fraud-scorer"]
    assert names("?sort=-name") == ["fraud-scorer", "churn"]
    assert names("?stage=production") == ["fraud-scorer"]
    assert names("?team=growth") == ["churn"]
    assert names("?risk_tier=high") == ["fraud-scorer"]
    assert names("?q=churn") == ["churn"]
    assert names("?q=" + quote("risk_tier = 'critical'")) == ["churn"]
    assert names("?tag=" + quote(f"domain={HOSTILE}")) == ["fraud-scorer"]
    assert names("?tag=domain") == ["fraud-scorer"]
    bad = web.get("/models?q=" + quote("risk_tier = (("))
    assert bad.status_code == 200 and 'class="notice bad"' in bad.text
    expired = web.get("/models?cursor=not-a-cursor")
    assert expired.status_code == 200 and "expired" in expired.text


def test_catalogue_paginates_by_cursor(web: TestClient, portfolio: Portfolio) -> None:
    for i in range(53):
        portfolio.services.registry.create_model(portfolio.actors["ada"], f"bulk-{i:03d}")
    first = web.get("/models")
    assert first.text.count("<strong>bulk-") == 50  # 50 a page; "bulk-" sorts first
    nxt = re.search(r'href="(/models\?cursor=[^"]+)" rel="next"', first.text)
    assert nxt
    second = web.get(nxt.group(1).replace("&amp;", "&"))
    assert second.text.count("<strong>bulk-") == 3
    assert "<strong>churn</strong>" in second.text and "<strong>fraud-scorer</strong>" in second.text
    assert 'rel="next"' not in second.text


def test_model_page_paginates_versions(web: TestClient, portfolio: Portfolio) -> None:
    from tests.web.conftest import register

    for i in range(28):
        register(portfolio.services, portfolio.actors["ada"], "churn", i + 2, hostile=False)
    page = web.get("/models/churn")
    assert page.text.count('<th scope="row"><a href="/models/churn/versions/') == 25
    more = re.search(r'hx-get="(/models/churn\?cursor=[^"]+)"', page.text)
    assert more
    rows = web.get(more.group(1).replace("&amp;", "&"), headers={"HX-Request": "true"})
    assert rows.status_code == 200
    assert "<html" not in rows.text  # a fragment: the rows only
    assert rows.text.count('<th scope="row">') == 4
    full = web.get(more.group(1).replace("&amp;", "&"))
    assert "<html" in full.text and full.text.count('<th scope="row"><a href') == 4


def test_environment_as_of(web: TestClient, portfolio: Portfolio) -> None:
    between = portfolio.instants["v1_live"] + timedelta(days=1)
    value = between.strftime("%Y-%m-%dT%H:%M:%S")
    html = web.get(f"/environments/production?as_of={value}").text
    serving = html[html.index('<table id="serving">'):]
    serving = serving[:serving.index("</table>")]
    assert "fraud-scorer/1" in serving and "fraud-scorer/2" not in serving
    now_html = web.get("/environments/production").text
    now_serving = now_html[now_html.index('<table id="serving">'):]
    assert "fraud-scorer/2" in now_serving[:now_serving.index("</table>")]
    before = (portfolio.instants["v1_live"] - timedelta(hours=1)).isoformat()
    assert "Nothing served" in web.get(f"/environments/production?as_of={quote(before)}").text
    assert "not a date" in web.get("/environments?as_of=yesterday").text
    assert "future" in web.get("/environments?as_of=2999-01-01T00:00").text


def test_audit_log_filters_and_verification(web: TestClient) -> None:
    html = web.get("/audit?action=transition.approve").text
    actions = set(re.findall(r"<td><code>([a-z.]+)</code></td>", html))
    assert actions == {"transition.approve"}
    assert "has not been verified" in html
    token = csrf_from(html)
    r = web.post("/audit/verify", data={"csrf_token": token}, follow_redirects=True)
    assert r.status_code == 200
    assert "The chain verifies" in r.text
    assert web.get("/audit?version=abc").status_code == 400


def test_approve_as_second_user_and_refuse_the_requester(
    api: TestClient, portfolio: Portfolio
) -> None:
    rid = portfolio.pending_request
    # The requester may not approve their own request.
    sign_in_token(api, portfolio.tokens["ada"])
    page = api.get("/approvals")
    assert f'action="/approvals/{rid}"' not in page.text  # contributors get no form
    r = api.post(f"/approvals/{rid}", data={"decision": "approve", "csrf_token": csrf_from(page.text)})
    assert r.status_code == 403
    # An approver who is not the requester may; the form carries its CSRF token.
    api.cookies.clear()
    sign_in_token(api, portfolio.tokens["grace"])
    page = api.get("/approvals")
    assert f'action="/approvals/{rid}"' in page.text
    token = csrf_from(page.text)
    r = api.post(f"/approvals/{rid}", data={"decision": "reject", "comment": "",
                                            "csrf_token": token})
    assert r.status_code == 422 and "comment" in r.text  # a rejection needs a reason
    r = api.post(f"/approvals/{rid}", data={"decision": "approve", "comment": "fine",
                                            "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    request = portfolio.services.lifecycle.get_request(portfolio.actors["grace"], rid)
    assert [(a.approver, a.decision) for a in request.approvals] == [("grace", "approve")]
    r = api.post(f"/approvals/{rid}", data={"decision": "approve", "csrf_token": token})
    assert r.status_code == 409 and "already" in r.text


def test_self_approval_is_refused_with_a_friendly_message(
    api: TestClient, portfolio: Portfolio
) -> None:
    # The admin may approve, but not a request they made themselves.
    services, margaret = portfolio.services, portfolio.actors["margaret"]
    request = services.lifecycle.request_transition(margaret, "fraud-scorer/2", "staging",
                                                    "step back")
    assert request.status == "pending"
    sign_in(api, "margaret")
    token = csrf_from(api.get("/approvals").text)
    r = api.post(f"/approvals/{request.id}", data={"decision": "approve", "csrf_token": token})
    assert r.status_code == 403
    assert "self-approval" in r.text and "<html" in r.text


def test_forms_without_csrf_token_are_refused(api: TestClient, portfolio: Portfolio) -> None:
    sign_in_token(api, portfolio.tokens["grace"])
    rid = portfolio.pending_request
    for path, data in ((f"/approvals/{rid}", {"decision": "approve"}), ("/logout", {}),
                       ("/audit/verify", {}), ("/account/tokens", {"name": "x", "days": "3"}),
                       ("/login", {"username": "margaret", "password": "x"})):
        r = api.post(path, data=data)
        assert r.status_code == 403, path
        assert "CSRF" in r.text and r.headers["content-type"].startswith("text/html")
    token = csrf_from(api.get("/approvals").text)
    forged = "0" * 64
    assert api.post(f"/approvals/{rid}", data={"decision": "approve",
                                               "csrf_token": forged}).status_code == 403
    # A valid token from another site's form is refused by its Origin.
    r = api.post(f"/approvals/{rid}", data={"decision": "approve", "csrf_token": token},
                 headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    # A token issued to another session does not carry over.
    other = TestClient(api.app, raise_server_exceptions=False)
    sign_in_token(other, portfolio.tokens["alan"])
    nonce = api.cookies.get("regista_csrf") or ""
    session = other.cookies.get(SESSION_COOKIE) or ""
    other.cookies.clear()
    other.cookies.set("regista_csrf", nonce)
    other.cookies.set(SESSION_COOKIE, session)
    assert other.post(f"/approvals/{rid}", data={"decision": "approve",
                                                 "csrf_token": token}).status_code == 403
    assert portfolio.services.lifecycle.get_request(
        portfolio.actors["grace"], rid).approvals == []


def test_sign_in_sets_a_safe_session_cookie(api: TestClient, portfolio: Portfolio) -> None:
    r = api.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2F"
    page = api.get("/login?next=/models/churn")
    token = csrf_from(page.text)
    bad = api.post("/login", data={"username": "margaret", "password": "wrong password!",
                                   "csrf_token": token})
    assert bad.status_code == 401 and "Sign-in failed" in bad.text
    r = api.post("/login", data={"username": "margaret", "password": "correct horse battery staple",
                                 "csrf_token": token, "next": "/models/churn"},
                 follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/models/churn"
    cookie = next(v for k, v in r.headers.multi_items()
                  if k == "set-cookie" and v.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http in this test
    assert "Signed in as" in api.get("/").text
    # No open redirect after sign-in.
    r = api.post("/login", data={"username": "margaret", "password": "correct horse battery staple",
                                 "csrf_token": csrf_from(api.get("/login").text),
                                 "next": "//evil.example/"}, follow_redirects=False)
    assert r.headers["location"] == "/"
    # Signing out clears the session.
    r = api.post("/logout", data={"csrf_token": csrf_from(api.get("/").text)},
                 follow_redirects=False)
    assert r.status_code == 303 and f"{SESSION_COOKIE}=;" in r.headers["set-cookie"]
    assert api.get("/", follow_redirects=False).status_code == 303


def test_session_cookie_is_secure_over_https(app, portfolio: Portfolio) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as client:
        page = client.get("/login")
        r = client.post("/login", data={"token": portfolio.tokens["vic"],
                                        "csrf_token": csrf_from(page.text)},
                        follow_redirects=False)
        assert r.status_code == 303
        assert "Secure" in r.headers["set-cookie"]


def test_forged_expired_or_disabled_sessions_are_refused(api: TestClient, portfolio: Portfolio) -> None:
    sign_in_token(api, portfolio.tokens["vic"])
    value = api.cookies.get(SESSION_COOKIE)
    assert value
    api.cookies.clear()
    api.cookies.set(SESSION_COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert api.get("/", follow_redirects=False).status_code == 303
    # A token session ends when its token is revoked.
    api.cookies.clear()
    sign_in_token(api, portfolio.tokens["vic"])
    assert api.get("/").status_code == 200
    portfolio.services.identity.revoke_token(portfolio.actors["vic"], portfolio.tokens["vic"])
    assert api.get("/", follow_redirects=False).status_code == 303
    # A password session ends when the user is disabled.
    api.cookies.clear()
    sign_in(api, "margaret")
    portfolio.services.identity.create_user(portfolio.actors["margaret"], "temp-admin",
                                            admin=True)
    portfolio.services.identity.set_disabled(portfolio.actors["margaret"], "margaret", True)
    assert api.get("/", follow_redirects=False).status_code == 303


def test_token_sign_in_keeps_the_token_restrictions(api: TestClient, portfolio: Portfolio) -> None:
    issued = portfolio.services.identity.create_token(
        portfolio.actors["margaret"], name="read-only", scopes=["model:read"])
    sign_in_token(api, issued.secret)
    assert api.get("/models").status_code == 200
    assert api.get("/admin").status_code == 403  # the admin's token was restricted


def test_friendly_error_pages(api: TestClient, portfolio: Portfolio) -> None:
    sign_in_token(api, portfolio.tokens["vic"])
    for path, status in (("/models/no-such-model", 404), ("/nowhere", 404),
                         ("/models/fraud-scorer/versions/99", 404), ("/admin", 403),
                         ("/models/fraud-scorer/versions/abc", 400), ("/environments/nope", 404),
                         ("/models/bad%20name", 422)):
        r = api.get(path)
        assert r.status_code == status, (path, r.status_code)
        assert r.headers["content-type"].startswith("text/html"), path
        assert "Traceback" not in r.text and "<main" in r.text
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    # The API keeps its JSON errors.
    r = api.get("/api/v1/models/no-such-model")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_no_page_is_a_500(web: TestClient) -> None:
    odd = ["/models?sort=%00", "/models?cursor=" + "A" * 4000, "/models?tag==", "/models?q=%27",
           "/models/fraud-scorer?cursor=zzz", "/models/fraud-scorer?sort=weird",
           "/compare?v=" + "x" * 300, "/compare?v=a/b/c", "/approvals?status=everything",
           "/environments?as_of=%00", "/environments/production?as_of=2026-13-45T99:99",
           "/audit?since=not-a-time", "/audit?cursor=bogus", "/audit?outcome=maybe",
           "/audit?model=Bad%20Name", "/login?next=javascript:alert(1)", "/static/nope.css",
           "/models/fraud-scorer/versions/0", "/models/" + "a" * 300]
    for path in odd:
        r = web.get(path)
        assert r.status_code < 500, (path, r.text[:300])
        assert "Traceback" not in r.text
        if r.headers["content-type"].startswith("text/html"):
            assert_escaped(r.text)


def test_local_mode_banner_on_every_page(api: TestClient) -> None:
    for path in ("/", "/models", "/compare", "/approvals", "/environments", "/audit", "/policy",
                 "/admin", "/login", "/nowhere"):
        r = api.get(path)
        assert "Local single-user mode" in r.text, path
    assert "Local single-user mode" not in api.get("/static/regista.css").text


def test_every_web_route_declares_a_rule(app) -> None:  # type: ignore[no-untyped-def]
    from regista.web.routes import router

    ours = {r.path for r in router.routes}  # type: ignore[attr-defined]
    web_routes = [(p, m, r) for p, m, r in iter_routes(app) if p in ours]
    assert len(web_routes) >= 15
    for path, methods, found in web_routes:
        assert found is not None, (path, methods)
    public = {p for p, _, r in web_routes if r == "public"}
    assert public == {"/login", "/logout"}


def test_account_tokens(api: TestClient, portfolio: Portfolio) -> None:
    sign_in_token(api, portfolio.tokens["ada"])
    page = api.get("/account")
    r = api.post("/account/tokens", data={"name": "laptop", "days": "7",
                                          "csrf_token": csrf_from(page.text)})
    assert r.status_code == 200
    secret = re.search(r"(rgst_[0-9a-f]{16}_[A-Za-z0-9]{40})", r.text)
    assert secret
    token_id = secret.group(1).split("_")[1]
    r = api.post(f"/account/tokens/{token_id}/revoke",
                 data={"csrf_token": csrf_from(r.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert "revoked" in api.get("/account").text
    bad = api.post("/account/tokens", data={"name": "x", "days": "9999",
                                            "csrf_token": csrf_from(page.text)})
    assert bad.status_code == 422
