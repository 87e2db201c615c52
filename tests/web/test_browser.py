"""End-to-end tests in headless Chromium (Debian's package, driven by Playwright).

The server is the real app on a loopback port (``live_server``), on SQLite only (the
in-process page tests cover PostgreSQL). Every page visited is saved as a screenshot in
``test-output/screenshots/``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from regista.config import Settings
from tests.web.conftest import PASSWORD, Portfolio

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
TIMEOUT_MS = 10_000

if not CHROMIUM.exists() and os.environ.get("CI", "").lower() != "true":
    pytest.skip("browser tests need Debian's chromium at /usr/bin/chromium "
                "(apt-get install chromium); under CI=true they fail instead",
                allow_module_level=True)


@pytest.fixture
def settings(tmp_path: Path, sqlite_template: Path) -> Settings:
    """SQLite only for the browser tests (overrides the parametrised fixture)."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sqlite_template, data / "regista.db")
    return Settings(data_dir=data, secret_key="test-secret")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            timeout=30_000,
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def console() -> list[str]:
    """Console errors of the page (a test that expects one removes it)."""
    return []


@pytest.fixture
def page(browser: Any, live_server: Any, portfolio: Portfolio, console: list[str]) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url, accept_downloads=True,
                                  viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(TIMEOUT_MS)
    p.set_default_navigation_timeout(TIMEOUT_MS)
    p.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: console.append(str(e)))
    yield p
    context.close()
    # No CSP violation, no script error on any page visited.
    assert console == [], console


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in_password(page: Any, user: str) -> None:
    page.goto("/login")
    shot(page, "sign-in")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/$"))


def sign_in_token(page: Any, token: str) -> None:
    page.goto("/login")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "Signed in as" in page.content()


def sign_out(page: Any) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/login$"))


def test_sign_in_and_browse_from_the_dashboard_to_a_version(page: Any) -> None:
    page.goto("/")
    assert "/login" in page.url  # signed out: sent to the sign-in page
    sign_in_password(page, "margaret")
    assert page.get_by_role("heading", name="Model portfolio").is_visible()
    shot(page, "dashboard")
    page.get_by_role("link", name="fraud-scorer", exact=True).first.click()
    page.wait_for_url(re.compile(r".*/models/fraud-scorer$"))
    assert page.locator("svg.chart").count() >= 2  # a chart per metric
    assert page.locator("svg.timeline").count() == 1
    shot(page, "model")
    page.get_by_role("link", name="fraud-scorer/2").first.click()
    page.wait_for_url(re.compile(r".*/models/fraud-scorer/versions/2$"))
    assert page.get_by_role("heading", name=re.compile("fraud-scorer version 2")).is_visible()
    assert page.locator("article.modelcard h1").inner_text() == "Card"
    shot(page, "version")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Models").click()
    page.get_by_label("Risk tier").select_option("critical")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    assert page.locator("table strong").all_inner_texts() == ["churn"]
    shot(page, "catalogue")


def test_compare_two_versions(page: Any) -> None:
    sign_in_password(page, "margaret")
    page.goto("/models/fraud-scorer/versions/2")
    page.get_by_role("link", name="Compare with v1").click()
    page.wait_for_url(re.compile(r".*/compare\?.*"))
    differing = [t.replace("(differs)", "").strip()
                 for t in page.locator("tr.diff th").all_inner_texts()]
    assert "digest" in differing and "auc" in differing
    assert "framework" not in differing
    shot(page, "compare")


def test_approve_as_a_second_user_after_the_requester_is_refused(
    page: Any, portfolio: Portfolio, console: list[str]
) -> None:
    services = portfolio.services
    # Ada may approve (she holds the approver role too), but never her own request.
    services.identity.grant_role(portfolio.actors["margaret"], "ada", "approver")
    rid = portfolio.pending_request
    sign_in_token(page, portfolio.tokens["ada"])
    page.goto("/approvals")
    card = page.locator(f"#request-{rid}")
    card.get_by_label("Comment").fill("looks good to me")
    card.get_by_role("button", name="Approve").click()
    page.wait_for_load_state()
    assert "self-approval is forbidden" in page.content()
    assert console == ["Failed to load resource: the server responded with a status of 403 "
                       "(Forbidden)"]  # the refusal page itself
    console.clear()
    shot(page, "approval-refused")
    sign_out(page)
    sign_in_token(page, portfolio.tokens["grace"])
    page.goto("/approvals")
    shot(page, "approvals")
    card = page.locator(f"#request-{rid}")
    card.get_by_label("Comment").fill("Checked the evaluation report.")
    card.get_by_role("button", name="Approve").click()
    page.wait_for_url(re.compile(r".*/approvals\?done=.*"))
    assert f"approved request {rid}" in page.content()
    request = services.lifecycle.get_request(portfolio.actors["grace"], rid)
    assert [(a.approver, a.comment) for a in request.approvals] == [
        ("grace", "Checked the evaluation report.")]


def test_as_of_picker_shows_what_served_then(page: Any, portfolio: Portfolio) -> None:
    sign_in_password(page, "margaret")
    page.goto("/environments")
    production = page.locator("section", has=page.get_by_role("heading", name=re.compile("^production")))
    assert "fraud-scorer/2" in production.locator("table").inner_text()
    then = portfolio.instants["v1_live"] + timedelta(days=1)
    page.get_by_label("As of (UTC)").fill(then.strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*as_of=.*"))
    table = production.locator("table").inner_text()
    assert "fraud-scorer/1" in table and "fraud-scorer/2" not in table
    assert page.locator("svg.timeline .marker").count() == 1
    shot(page, "environments-as-of")


def test_download_a_file(page: Any, tmp_path: Path) -> None:
    sign_in_password(page, "margaret")
    page.goto("/models/fraud-scorer/versions/1")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download MODEL_CARD.md").click()
    download = info.value
    target = tmp_path / "card.md"
    download.save_as(str(target))
    assert target.read_bytes().startswith(b"# Card")
    assert download.suggested_filename == "MODEL_CARD.md"
    page.goto("/audit")
    shot(page, "audit")
