"""docs/security.md's permission-by-role table is the role table in the code."""

from __future__ import annotations

from pathlib import Path

from regista.service.authz import permissions_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def test_security_doc_matches_role_table():
    header = "| Permission | viewer | contributor | approver | maintainer | admin |"
    lines = DOC.read_text().splitlines()
    start = lines.index(header)
    documented = {}
    for line in lines[start + 2:]:
        if not line.startswith("| `"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        roles = [r for r, mark in zip(header.strip("|").split("|")[1:], cells[1:], strict=True)
                 if mark == "✓"]
        documented[cells[0].strip("`")] = sorted(r.strip() for r in roles)
    in_code = {str(p): sorted(str(r) for r in roles) for p, roles in permissions_table()}
    assert documented == in_code
