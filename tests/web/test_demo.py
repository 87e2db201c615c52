"""``regista demo``: a realistic portfolio in an empty data directory, browsable at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from regista.config import Settings
from tests.web.conftest import assert_escaped, csrf_from

pytest.importorskip("sklearn", reason="the demo trains models with scikit-learn (the demo extra)")


def test_demo_fills_an_empty_directory_and_every_page_renders(tmp_path: Path) -> None:
    from regista.api.app import create_app
    from regista.demo import DEMO_PASSWORD, build_demo
    from regista.service.container import build_services

    settings = Settings(data_dir=tmp_path / "demo")
    summary = build_demo(settings)
    assert summary.models == 5 and summary.versions >= 12 and summary.deployments >= 15
    assert {u for u, _ in summary.users} == {"margaret", "ada", "grace", "alan"}
    # Models are saved as JSON parameters, never pickled.
    blobs = [p for p in (tmp_path / "demo" / "blobs").rglob("*") if p.is_file()]
    assert blobs and not any(p.read_bytes()[:2] == b"\x80\x04" for p in blobs)

    services = build_services(settings)
    try:
        with TestClient(create_app(services=services), raise_server_exceptions=False) as client:
            page = client.get("/login")
            r = client.post("/login", data={"username": "margaret", "password": DEMO_PASSWORD,
                                            "csrf_token": csrf_from(page.text)},
                            follow_redirects=False)
            assert r.status_code == 303
            html = client.get("/").text
            assert "a build no registered version carries is serving" in html  # drift
            assert "digits-ocr" in html[html.index("Reviews overdue"):]  # overdue review
            assert re.search(r"wine-cultivar/3</a></td>\s*<td>staging → production", html)
            assert "grace, alan" in html  # approvals by two users
            rollback = client.get("/environments/production").text
            assert "ROLLBACK" in rollback
            links = set(re.findall(r'href="(/(?:models|environments)/[^"?#]+)"', html))
            for path in [*sorted(links), "/models", "/approvals", "/audit", "/policy", "/admin",
                         "/compare?v=wine-cultivar/1&v=wine-cultivar/2"]:
                r = client.get(path)
                assert r.status_code == 200, path
                assert_escaped(r.text)
            card = client.get("/models/breast-cancer-screening/versions/3").text
            assert "<h2>Intended use</h2>" in card and "accuracy" in card
    finally:
        services.close()


def test_demo_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    from regista.cli.main import app

    (tmp_path / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["demo", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "not empty" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
