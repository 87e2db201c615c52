#!/bin/bash
# Regenerate the unreleased initial migration (0001) from store/sql/tables.py.
# Only valid until the first release; after that every schema change is a new revision.
set -e
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -f src/regista/store/sql/migrations/versions/0001_initial_schema.py
REGEN_DB="sqlite:///$work/x.db" .venv/bin/python - <<'PY'
import os
from alembic import command
from regista.store.sql.engine import Database
from regista.store.sql.migrate import alembic_config
db = Database(os.environ["REGEN_DB"])
cfg = alembic_config(db)
with db.engine.begin() as conn:
    cfg.attributes["connection"] = conn
    command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
PY
f=src/regista/store/sql/migrations/versions/0001_initial_schema.py
sed -i 's/astext_type=Text()/astext_type=sa.Text()/g; s/^Revises: $/Revises:/; s/^Create Date: .*/Create Date: (regenerated from tables.py until the first release)/' "$f"
.venv/bin/ruff format -q "$f"
