"""The generated reference docs match the code (regenerate: ``python -m regista.tools.gendocs``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regista.config import Settings
from regista.tools import gendocs

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def rendered() -> dict[Path, str]:
    return gendocs.render_all(DOCS)


@pytest.mark.parametrize("name", ["openapi.json", "api.md", "cli.md", "configuration.md"])
def test_generated_doc_is_current(rendered: dict[Path, str], name: str) -> None:
    path = DOCS / name
    assert path.is_file(), f"{path} is missing: run `python -m regista.tools.gendocs`"
    assert path.read_text(encoding="utf-8") == rendered[path], (
        f"{path} is out of date: run `python -m regista.tools.gendocs`"
    )


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        assert f"`REGISTA_{name.upper()}`" in text, f"REGISTA_{name.upper()} is not in docs/configuration.md"
        assert field.description, f"Settings.{name} has no description"


def test_every_command_and_endpoint_is_documented(rendered: dict[Path, str]) -> None:
    cli = rendered[DOCS / "cli.md"]
    for command in ("regista serve", "regista register", "regista pull", "regista models create",
                    "regista versions show", "regista alias set", "regista search versions"):
        assert f"`{command}`" in cli
    api = rendered[DOCS / "api.md"]
    for path in json.loads(rendered[DOCS / "openapi.json"])["paths"]:
        assert f"`{path}`" in api


def test_check_mode_reports_stale_files(tmp_path: Path) -> None:
    lines: list[str] = []
    assert gendocs.main(["--docs", str(tmp_path)], echo=lines.append) == 0
    assert gendocs.main(["--check", "--docs", str(tmp_path)], echo=lines.append) == 0
    (tmp_path / "cli.md").write_text("stale\n")
    lines.clear()
    assert gendocs.main(["--check", "--docs", str(tmp_path)], echo=lines.append) == 1
    assert lines == [f"stale: {tmp_path / 'cli.md'} (run `python -m regista.tools.gendocs`)"]
