"""The two plan shapes of a version search: walking the sort order's index (each row
checked with EXISTS) and seeking from the most selective term (then sorting). Every
shape must return the same rows in the same order, page after page, on SQLite and
PostgreSQL; SQLite picks one by counting (the plans are checked here)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings

from regista.service.filters import compile_version_filter, plan_version_filter
from regista.service.search import search_versions
from regista.store.sql.tables import aliases, models, version_metrics, version_tags, versions
from tests.service.databases import open_database
from tests.service.test_filters import (
    VERSION_CASES,
    Catalogue,
    filters,
    seed_catalogue,
)
from tests.service.test_search import (
    MAX_PAGE,
    SECRET,
    T0,
    Row,
    captured_sql,
    expected_order,
    page_through,
)

MODELS = ("alpha", "bravo", "charlie", "delta", "echo")
STAGES = ("registered", "staging", "production", "archived")
ENVS = ("dev", "staging", "prod")
VERSIONS = 300


class Data:
    """300 versions of five models, written in bulk; rows kept for the expectations."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.rows: dict[int, Row] = {}
        self.aliases: dict[int, set[str]] = {}
        self.model_ids = {name: i + 1 for i, name in enumerate(MODELS)}
        model_rows = [
            {"id": i + 1, "name": name, "normalized_name": name, "description": "",
             "archived": False, "version_counter": VERSIONS // len(MODELS),
             "created_at": T0, "created_by": "a", "updated_at": T0}
            for i, name in enumerate(MODELS)]
        version_rows, tag_rows, metric_rows, alias_rows = [], [], [], []
        for i in range(VERSIONS):
            vid, name = i + 1, MODELS[i % len(MODELS)]
            number = i // len(MODELS) + 1
            created = T0 + timedelta(minutes=i // 4)  # ties of four
            tags = {"env": ENVS[i % 3], "run": f"run-{i}", "team": f"t{i % 7}"}
            metrics: dict[str, float] = {}
            if i % 9:
                metrics["auc"] = ((i * 37) % 100) / 100
            if i % 2:
                metrics["f1"] = ((i * 11) % 50) / 50
            version_rows.append({
                "id": vid, "model_id": self.model_ids[name], "number": number,
                "digest": f"{vid:064x}", "description": "", "stage": STAGES[i % 4],
                "stage_changed_at": created, "provenance": {}, "file_count": 1,
                "total_size": 1, "created_at": created, "created_by": "a",
                "updated_at": created})
            tag_rows += [{"version_id": vid, "key": k, "value": v} for k, v in tags.items()]
            metric_rows += [{"version_id": vid, "name": k, "value": v}
                            for k, v in metrics.items()]
            self.rows[vid] = Row(vid, name, number, STAGES[i % 4], created, metrics, tags)
        for model, model_id in self.model_ids.items():
            newest = max(r.id for r in self.rows.values() if r.name == model)
            alias_rows.append({"model_id": model_id, "name": "champion", "version_id": newest,
                               "updated_at": T0, "updated_by": "a"})
            self.aliases[newest] = {"champion"}
        with engine.begin() as conn:
            for table, rows in ((models, model_rows), (versions, version_rows),
                                (version_tags, tag_rows), (version_metrics, metric_rows),
                                (aliases, alias_rows)):
                conn.execute(table.insert(), rows)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def data(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Data]:
    with open_database(request.param, tmp_path_factory.mktemp("plans"),
                       prefix="regista_plans") as engine:
        yield Data(engine)


Predicate = Callable[[Row, set[str]], bool]  # (row, its aliases)


def auc(r: Row) -> float | None:
    return r.metrics.get("auc")


FILTERS: list[tuple[str, Predicate]] = [
    ('tags.env = "prod"', lambda r, a: r.tags["env"] == "prod"),  # a third: walk
    ('tags.run = "run-17"', lambda r, a: r.tags["run"] == "run-17"),  # one: seek
    ('tags.run IN ("run-3", "run-200")', lambda r, a: r.tags["run"] in ("run-3", "run-200")),
    ('tags.run = "run-5" OR tags.run = "run-6" OR metrics.auc > 0.97',
     lambda r, a: r.tags["run"] in ("run-5", "run-6") or (auc(r) or 0) > 0.97),
    ("metrics.auc > 0.9", lambda r, a: (auc(r) or 0) > 0.9),
    ('metrics.auc >= 0.5 AND tags.env = "dev"',
     lambda r, a: (auc(r) or 0) >= 0.5 and r.tags["env"] == "dev"),
    ('name = "bravo"', lambda r, a: r.name == "bravo"),
    ('name = "bravo" AND tags.env = "prod"',
     lambda r, a: r.name == "bravo" and r.tags["env"] == "prod"),
    ('name IN ("alpha", "echo") AND metrics.auc < 0.2',
     lambda r, a: r.name in ("alpha", "echo") and auc(r) is not None and auc(r) < 0.2),  # type: ignore[operator]
    ('alias = "champion"', lambda r, a: "champion" in a),
    ('tags.team = "t3" AND NOT tags.env = "prod"',
     lambda r, a: r.tags["team"] == "t3" and r.tags["env"] != "prod"),
    ('stage = "production" OR tags.run = "run-9"',
     lambda r, a: r.stage == "production" or r.tags["run"] == "run-9"),
    ('tags.env = "prod" AND tags.env = "dev"', lambda r, a: False),
    ('name = "nobody"', lambda r, a: False),
    ('NOT name = "nobody" AND tags.run = "run-30"', lambda r, a: r.tags["run"] == "run-30"),
]
ORDERS = [None, "created_at", "number desc", "name, number desc", "metrics.auc desc",
          "metrics.auc", "stage, created_at desc"]


def expected(data: Data, predicate: Predicate, order_by: str | None,
             model: str | None = None) -> list[int]:
    rows = [r for r in data.rows.values() if predicate(r, data.aliases.get(r.id, set()))
            and (model is None or r.name == model)]
    return expected_order(rows, order_by)


@pytest.mark.parametrize("order_by", ORDERS)
@pytest.mark.parametrize(("text", "predicate"), FILTERS, ids=[f[0] for f in FILTERS])
def test_every_plan_pages_the_same_rows(data: Data, text: str, predicate: Predicate,
                                        order_by: str | None) -> None:
    want = expected(data, predicate, order_by)
    for plan in ("walk", "seek", "auto"):
        got = page_through(data.engine, search_versions, 7, filter=text, order_by=order_by,
                           plan=plan)
        assert got == want, plan


@pytest.mark.parametrize("plan", ["walk", "seek", "auto"])
@pytest.mark.parametrize("page_size", [1, 50])
def test_page_sizes_and_one_models_listing(data: Data, plan: str, page_size: int) -> None:
    runs = ("run-3", "run-8", "run-13")
    cases: list[tuple[str, str | None, Predicate]] = [
        ('tags.env = "prod"', None, lambda r, a: r.tags["env"] == "prod"),
        ("metrics.auc > 0.5", "metrics.auc desc", lambda r, a: (auc(r) or 0) > 0.5),
        ('tags.run IN ("run-3", "run-8", "run-13")', "number desc",
         lambda r, a: r.tags["run"] in runs),
    ]
    for text, order_by, predicate in cases:
        for model in ("delta", None):
            want = expected(data, predicate, order_by, model=model)
            scope = {} if model is None else {"model_id": data.model_ids[model]}
            got = page_through(data.engine, search_versions, page_size, filter=text,
                               order_by=order_by, plan=plan, **scope)
            assert got == want, (text, order_by, model)


def test_a_cursor_works_across_plans(data: Data) -> None:
    """The plan is chosen per page: a cursor from one shape continues in another."""
    text = 'tags.env = "prod"'
    want = expected(data, dict(FILTERS)[text], "metrics.auc desc")
    with data.engine.connect() as conn:
        first, cursor = search_versions(conn, filter=text, order_by="metrics.auc desc",
                                        page_size=30, secret=SECRET, max_page_size=MAX_PAGE,
                                        plan="walk")
        second, _ = search_versions(conn, filter=text, order_by="metrics.auc desc",
                                    page_size=30, secret=SECRET, max_page_size=MAX_PAGE,
                                    plan="seek", cursor=cursor)
    assert first + second == want[:60]


# --------------------------------------------------------------------------- shapes

@pytest.mark.parametrize(("text", "expected_ids"), VERSION_CASES,
                         ids=[c[0] for c in VERSION_CASES])
def test_filter_semantics_in_every_shape(catalogue: Catalogue, text: str,
                                         expected_ids: set[str]) -> None:
    """The catalogue of test_filters, compiled as walk and as seek from each driver."""
    vf = plan_version_filter(text)
    assert vf is not None
    shapes = [vf.walk, *(vf.seek(driver) for driver in vf.drivers)]
    labels = {v: k for k, v in catalogue.version_ids.items()}
    with catalogue.engine.connect() as conn:
        for where in shapes:
            got = {labels[i] for i in conn.execute(sa.select(versions.c.id).where(where))
                   .scalars()}
            assert got == expected_ids


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=filters)
def test_random_filters_match_the_same_versions_in_every_shape(catalogue: Catalogue,
                                                               text: str) -> None:
    # Two drivers at least (an OR of index tests, a range), whatever the random part.
    vf = plan_version_filter(f"({text}) AND (tags.env IN ('dev', 'prod') OR "
                             "metrics.f1 > 0.75) AND metrics.auc >= 0.75")
    reference = compile_version_filter(vf.text if vf else None)
    assert vf is not None and reference is not None and vf.drivers
    with catalogue.engine.connect() as conn:
        want = set(conn.execute(sa.select(versions.c.id).where(reference)).scalars())
        for where in [vf.walk, *(vf.seek(d) for d in vf.drivers)]:
            assert set(conn.execute(sa.select(versions.c.id).where(where)).scalars()) == want


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalogue(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalogue]:
    with open_database(request.param, tmp_path_factory.mktemp("shapes"),
                       prefix="regista_shapes") as engine:
        yield seed_catalogue(engine)


def test_drivers_are_top_level_positive_index_tests() -> None:
    def drivers(text: str) -> list[int]:
        vf = plan_version_filter(text)
        assert vf is not None
        return [len(d.ids) for d in vf.drivers]

    assert drivers('tags.env = "prod"') == [1]
    assert drivers('tags.env = "prod" AND metrics.auc > 0.9 AND alias = "x"') == [1, 1, 1]
    assert drivers('(tags.run = "a" OR tags.run = "b") AND stage = "x"') == [2]
    assert drivers('tags.run IN ("a", "b")') == [1]
    for text in ('NOT tags.env = "prod"', 'tags.env != "prod"', 'tags.env LIKE "p%"',
                 "tags.env IS NOT NULL", 'tags.run = "a" OR stage = "x"',
                 'model.tags.domain = "x"', 'name = "a"', 'stage = "production"'):
        assert drivers(text) == [], text
    vf = plan_version_filter('name = "a" AND name IN ("a", "b") AND NOT name = "c"')
    assert vf is not None and len(vf.models) == 2


# --------------------------------------------------------------------------- SQLite plans

def last_plan(data: Data, **kwargs: Any) -> tuple[int, str]:
    """How many statements one search runs, and SQLite's plan of the last (the search)."""
    with captured_sql(data.engine) as statements, data.engine.connect() as conn:
        search_versions(conn, page_size=7, secret=SECRET, max_page_size=MAX_PAGE, **kwargs)
    sql, params = statements[-1]
    with data.engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
    return len(statements), "\n".join(str(row[-1]) for row in rows)


sqlite_only = pytest.mark.parametrize("data", ["sqlite"], indirect=True)


@sqlite_only
def test_broad_terms_walk_the_order(data: Data) -> None:
    # A third of the versions match: walk created_at, check each row, stop at the page.
    count, plan = last_plan(data, filter='tags.env = "prod"')
    assert count == 3  # versions in reach, matches per term, the search
    assert "ix_versions_created_at_id" in plan and "CORRELATED" in plan
    assert "TEMP B-TREE" not in plan and "LIST SUBQUERY" not in plan
    count, plan = last_plan(data, filter="metrics.auc > 0.5", order_by="metrics.auc desc")
    assert "ix_version_metrics_name_value (name=?)" in plan and "CORRELATED" in plan


@sqlite_only
def test_selective_terms_seek_their_index(data: Data) -> None:
    _, plan = last_plan(data, filter='tags.env = "prod" AND tags.run = "run-17"')
    assert "ix_version_tags_key_value (key=? AND value=?)" in plan and "LIST SUBQUERY" in plan
    _, plan = last_plan(data, filter='tags.run = "run-5" OR tags.run = "run-6"')
    assert plan.count("ix_version_tags_key_value (key=? AND value=?)") == 2


@sqlite_only
def test_a_models_versions_come_in_index_order(data: Data) -> None:
    for kwargs in ({"filter": 'name = "bravo"'}, {"model_id": data.model_ids["bravo"]},
                   {"filter": 'name = "bravo" AND tags.env = "prod"'}):
        _, plan = last_plan(data, **kwargs)  # type: ignore[arg-type]
        assert "ix_versions_model_id_created_at_id (model_id=?)" in plan, kwargs
        assert "TEMP B-TREE" not in plan, kwargs


@pytest.mark.parametrize("data", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_postgres_plans_by_itself(data: Data) -> None:
    """No counting statements: PostgreSQL's statistics know how common a value is."""
    with captured_sql(data.engine) as statements, data.engine.connect() as conn:
        search_versions(conn, filter='tags.run = "run-17"', page_size=7, secret=SECRET,
                        max_page_size=MAX_PAGE)
    assert len(statements) == 1
