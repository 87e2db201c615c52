"""What a serving process keeps resident: no boto3 with a local store, no Alembic after
the migrations (they run in a forked child)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from regista.store.sql import migrate
from regista.store.sql.engine import Database


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"REGISTA_DATA_DIR": str(tmp_path / "data"), "REGISTA_AUTH_MODE": "local",
           "REGISTA_SECRET_KEY": "footprint-test-secret-key-0123456789", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_app_with_a_local_store_does_not_import_boto3(tmp_path: Path) -> None:
    done = run_python("""
        import sys
        from regista.config import Settings
        from regista.server import prepare
        prepare(Settings(), isolated=True)
        from regista.api.app import create_app
        create_app()
        print(sorted(m for m in ("boto3", "botocore", "alembic") if m in sys.modules))
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    db = Database(f"sqlite:///{tmp_path / 'data' / 'regista.db'}")
    try:
        assert migrate.is_current(db)
    finally:
        db.dispose()


def test_s3_names_still_import_on_demand() -> None:
    from regista.store import blobs

    assert blobs.S3BlobStore.__name__ == "S3BlobStore"
    assert blobs.MIN_PART_SIZE == 5 * 1024 * 1024
    with pytest.raises(AttributeError):
        _ = blobs.NoSuchThing  # type: ignore[attr-defined]


def test_a_failed_isolated_migration_stops_the_server(tmp_path: Path) -> None:
    done = run_python("""
        from regista.config import Settings
        from regista.server import prepare
        prepare(Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none"),
                isolated=True)
    """, tmp_path)
    assert done.returncode != 0
    assert "schema migration failed" in done.stderr


def test_a_server_process_freezes_its_start_up_objects_for_the_gc(tmp_path: Path) -> None:
    # Full collections walked every start-up object (80-100 ms, all threads stopped);
    # the serving factory freezes them: what a full collection walks is what came after.
    done = run_python("""
        import gc
        from regista.config import Settings
        from regista.server import create_server_app, prepare
        prepare(Settings(), isolated=True)
        create_server_app()
        print(gc.get_freeze_count(), len(gc.get_objects()))
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    frozen, walked = map(int, done.stdout.split())
    assert frozen > 100_000
    assert walked < frozen / 100


def test_start_up_imports_the_app_while_the_child_migrates(tmp_path: Path) -> None:
    # `regista serve` (one process) overlaps the app's imports with the migration child;
    # the migration still completes before prepare() returns, and a failure of the work
    # done meanwhile still waits for the child and reaches the caller.
    done = run_python("""
        import os, sys
        from regista.config import Settings
        from regista.server import _import_app, prepare
        seen = []
        def meanwhile():
            seen.append(os.getpid())
            _import_app()
        prepare(Settings(), isolated=True, meanwhile=meanwhile)
        print(seen == [os.getpid()], "regista.api.app" in sys.modules, "alembic" in sys.modules)
        def broken():
            raise RuntimeError("import failed")
        try:
            prepare(Settings(), isolated=True, meanwhile=broken)
        except RuntimeError as exc:
            print("raised", exc, __import__("multiprocessing").active_children())
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.strip().splitlines()
    assert first == "True True False"  # ran here, imported the app, and no Alembic here
    assert second == "raised import failed []"
    db = Database(f"sqlite:///{tmp_path / 'data' / 'regista.db'}")
    try:
        assert migrate.is_current(db)
    finally:
        db.dispose()
