"""docs/security.md's role table is the role table of the code."""

from __future__ import annotations

from pathlib import Path

from regista.service.access import Permission
from regista.service.authz import ROLE_PERMISSIONS, Role

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def test_roles_table_matches_the_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("<!-- roles-table:start -->", 1)[1].split("<!-- roles-table:end -->", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in table.strip().splitlines()]
    header, body = rows[0], rows[2:]
    assert header[1:] == [r.value for r in Role]
    documented = {row[0].strip("`"): {Role(h) for h, c in zip(header[1:], row[1:], strict=True) if c}
                  for row in body}
    assert set(documented) == {p.value for p in Permission}, "every permission is documented"
    for permission in Permission:
        granted = {r for r in Role if permission in ROLE_PERMISSIONS[r]}
        assert documented[permission.value] == granted, permission
