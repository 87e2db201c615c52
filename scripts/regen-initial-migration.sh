#!/bin/bash
# Regenerate the unreleased initial migration from tables.py.
set -e
cd "$(dirname "$0")/.."
rm -f src/regista/store/sql/migrations/versions/0001_initial_schema.py
rm -rf "${TMPDIR:-/tmp}/regista-regen" && mkdir "${TMPDIR:-/tmp}/regista-regen"
.venv/bin/python - <<'PY'
from alembic import command
from regista.store.sql.engine import Database
from regista.store.sql.migrate import alembic_config
db = Database("sqlite:///"${TMPDIR:-/tmp}/regista-regen"/x.db")
cfg = alembic_config(db)
with db.engine.begin() as conn:
    cfg.attributes["connection"] = conn
    command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
PY
f=src/regista/store/sql/migrations/versions/0001_initial_schema.py
sed -i 's/astext_type=Text()/astext_type=sa.Text()/g; s/^Revises: $/Revises:/; s/^Create Date: .*/Create Date: (regenerated from tables.py until the first release)/' $f
.venv/bin/ruff format -q $f
