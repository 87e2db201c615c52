"""The filter language: lexer, parser, errors with positions, and compiled SQL run on
SQLite and PostgreSQL against a small, realistic catalogue."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from regista.errors import FilterSyntaxError
from regista.service.filters import (
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_TERMS,
    And,
    Comparison,
    Entity,
    InList,
    IsNull,
    Literal_,
    Not,
    Or,
    compile_filter,
    compile_model_filter,
    compile_version_filter,
    field_names,
    parse_filter,
    parse_order_by,
)
from regista.store.sql.tables import (
    aliases,
    model_tags,
    models,
    version_metrics,
    version_tags,
    versions,
)
from tests.service.databases import open_database

DOCS = Path(__file__).resolve().parents[2] / "docs" / "search.md"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ENTITIES: tuple[Entity, ...] = ("versions", "models")
DIALECTS = (sqlite.dialect(), postgresql.psycopg.dialect())  # type: ignore[no-untyped-call]


# --------------------------------------------------------------------------- parser


def parse(text: str) -> Any:
    return parse_filter(text)


def error_of(text: str, entity: str = "versions") -> FilterSyntaxError:
    with pytest.raises(FilterSyntaxError) as info:
        compile_filter(text, entity=entity)  # type: ignore[arg-type]
    return info.value


def test_empty_filter_is_no_filter() -> None:
    assert parse_filter("") is None
    assert parse_filter("  \t\n ") is None
    assert compile_version_filter(None) is None
    assert compile_model_filter("   ") is None


def test_comparison_ast_with_positions() -> None:
    tree = parse('stage = "production"')
    assert isinstance(tree, Comparison)
    assert tree.field.text == "stage" and tree.field.position == 0
    assert tree.op == "=" and tree.op_position == 6
    assert tree.value == Literal_("production", '"production"', 8)


def test_and_binds_tighter_than_or() -> None:
    tree = parse("version = 1 OR version = 2 AND stage = 'x'")
    assert isinstance(tree, Or)
    assert isinstance(tree.terms[0], Comparison)
    assert isinstance(tree.terms[1], And) and len(tree.terms[1].terms) == 2


def test_parentheses_and_not() -> None:
    tree = parse("NOT (version = 1 OR version = 2) AND stage = 'x'")
    assert isinstance(tree, And)
    first = tree.terms[0]
    assert isinstance(first, Not) and first.position == 0
    assert isinstance(first.term, Or)


def test_keywords_are_case_insensitive() -> None:
    tree = parse("version In (1) aNd stage iS nOt NuLl oR NOT framework lIkE 'a' AND "
                 "version not in (2) and archived = TRUE and x = False")
    assert isinstance(tree, Or)
    left, right = tree.terms
    assert isinstance(left, And)
    assert isinstance(left.terms[0], InList) and not left.terms[0].negated
    assert isinstance(left.terms[1], IsNull) and left.terms[1].negated
    assert isinstance(right, And)
    assert isinstance(right.terms[0], Not)
    assert isinstance(right.terms[1], InList) and right.terms[1].negated
    assert right.terms[2].value.value is True  # type: ignore[union-attr]
    assert right.terms[3].value.value is False  # type: ignore[union-attr]


def test_not_like_is_one_operator() -> None:
    tree = parse('name NOT LIKE "a%" AND name not ilike "b%"')
    assert isinstance(tree, And)
    assert [t.op for t in tree.terms] == ["NOT LIKE", "NOT ILIKE"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("source", "value"),
    [
        (r'"plain"', "plain"),
        (r"'single'", "single"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'it\'s'", "it's"),
        (r'"back\\slash"', "back\\slash"),
        (r'"tab\tnew\nline\r"', "tab\tnew\nline\r"),
        (r'"caf\u00e9"', "café"),
        (r'"50\%"', "50\\%"),  # kept for LIKE patterns
        (r'"a\_b"', "a\\_b"),
        ('"unicode ✓ ok"', "unicode ✓ ok"),
        (r'"it\'s"', "it's"),
        ("'\"'", '"'),
        ('""', ""),
    ],
)
def test_string_literals(source: str, value: str) -> None:
    tree = parse(f"stage = {source}")
    assert isinstance(tree, Comparison)
    assert tree.value.value == value
    assert tree.value.text == source


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("1.5", 1.5),
        ("-2.5e-3", -2.5e-3),
        ("1E3", 1000.0),
        (".5", 0.5),
        ("-.5", -0.5),
        ("3.", 3.0),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
    ],
)
def test_number_literals(source: str, value: int | float) -> None:
    tree = parse(f"metrics.auc > {source}")
    assert isinstance(tree, Comparison)
    assert tree.value.value == value
    assert type(tree.value.value) is type(value)


def test_numbers_need_no_spaces() -> None:
    tree = parse("metrics.auc>-0.5 AND version<=3")
    assert isinstance(tree, And)
    assert [t.value.value for t in tree.terms] == [-0.5, 3]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("source", "texts"),
    [
        ("tags.env", [("tags", False), ("env", False)]),
        ("tags.a-b/c:d.e_f", [("tags", False), ("a-b/c:d", False), ("e_f", False)]),
        ('tags."my key"', [("tags", False), ("my key", True)]),
        ("tags.'k.v'", [("tags", False), ("k.v", True)]),
        ('metadata.a."b c".d', [("metadata", False), ("a", False), ("b c", True),
                                ("d", False)]),
    ],
)
def test_field_segments(source: str, texts: list[tuple[str, bool]]) -> None:
    tree = parse(f'{source} = "x"')
    assert isinstance(tree, Comparison)
    assert [(s.text, s.quoted) for s in tree.field.segments] == texts
    assert tree.field.text == source


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("name =", 6, "expected a value"),
        ('name = "x', 7, "unterminated string"),
        ("stage = 'abc", 8, "unterminated string"),
        ("stage = x", 8, "strings need quotes"),
        ("()", 1, "empty parentheses"),
        ("stage IN ()", 10, "empty parentheses"),
        ("a = 1", 0, "unknown field 'a'"),
        ('stage = "a" AND bogus = 1', 16, "unknown field 'bogus'"),
        ('version LIKE "1"', 8, "LIKE cannot be used on version"),
        ('metrics.auc > "x"', 14, "metrics.auc is a number field"),
        ('metrics.auc LIKE "x"', 12, "LIKE cannot be used"),
        ('metrics.auc ILIKE "x"', 12, "ILIKE cannot be used"),
        ('created_at > "2026-01-01"', 13, "needs a timezone"),
        ('created_at > "2026-01-01T00:00:00"', 13, "needs a timezone"),
        ('created_at > "yesterday"', 13, "not an ISO-8601 timestamp"),
        ('created_at >= "2026-13-01T00:00:00Z"', 14, "not an ISO-8601 timestamp"),
        ("created_at > 5", 13, "ISO-8601 timestamp in quotes"),
        ('created_at > "0001-01-01T00:00:00+01:00"', 13, "out of range"),
        ('created_at LIKE "2026%"', 11, "LIKE cannot be used"),
        ('(stage = "a"', 12, "expected ')'"),
        ('stage = "a")', 11, "unbalanced ')'"),
        ('stage = "a" stage', 12, "expected AND, OR"),
        ('tags. = "x"', 5, "missing tag key"),
        ('metrics. > 1', 8, "missing metric name"),
        ('metadata. = "x"', 9, "missing path"),
        ('tags."" = "x"', 5, "empty tag key"),
        ("name = 1.2.3", 7, "malformed number"),
        ("version = 12abc", 10, "malformed number"),
        ('stage = "a" AND', 15, "expected a field name"),
        ('stage == "a"', 7, "expected a value"),
        (r'stage = "a\q"', 10, "unknown escape"),
        (r'stage = "a\u12"', 10, "four hexadecimal digits"),
        (r'stage = "a\u0000"', 10, "NUL"),
        ('stage = "a\x00"', 10, "NUL"),
        ("stage = \x00", 8, "unexpected character"),
        ("version = 99999999999999999999", 10, "out of range"),
        ("metrics.auc > 1e999", 14, "out of range"),
        ('stage # "a"', 6, "unexpected character '#'"),
        ("NOT", 3, "expected a field name"),
        ('stage IS "x"', 9, "expected NULL"),
        ('stage IS NOT "x"', 13, "expected NULL after IS NOT"),
        ('stage NOT = "x"', 10, "expected IN, LIKE or ILIKE after NOT"),
        ('stage IN "x"', 9, "expected '(' after IN"),
        ('stage IN ("x" "y")', 14, "expected ',' or ')'"),
        ('stage IN ("x",)', 14, "expected a value"),
        ('version IN (1, "a")', 15, "version is an integer field"),
        ("version = 1.5", 10, "is a number"),
        ("version = true", 10, "is a boolean"),
        ('metadata.parameters.x IN (1, "a")', 29, "IN list mixes"),
        ("metadata.flag > true", 14, "true/false can only be compared"),
        ("metadata.x LIKE 5", 16, "LIKE needs a string value"),
        (r'stage LIKE "abc\\"', 11, "ends with an escape character"),
        ('tags."a"b = "x"', 8, "after a quoted key"),
        ('tags.a."b" = "x"', 7, "quote the whole tag key"),
        (r'metadata."a\"b" = 1', 9, "may not contain"),
        ('metadata.a..b = 1', 11, "empty path component"),
        ("metadata.list.9999999999 = 1", 14, "array index out of range"),
        ('tags.' + "k" * 256 + ' = "x"', 5, "longer than 255"),
        ("archived = true", 0, "unknown field 'archived' for versions"),
        ('model.tags = "x"', 0, "unknown field"),
        ('"stage" = "a"', 0, "expected a field name"),
        ('name = "a" OR OR', 14, "expected a field name"),
        ('stage = "a" )', 12, "unbalanced"),
        ("stage = -", 8, "unexpected character '-'"),
        ('stage = "x" AND (version = 1 OR (stage = "y")', 45, "expected ')'"),
        ("stage = ,", 8, "expected a value"),
        ("version", 7, "expected an operator"),
        ("version 1", 8, "expected an operator"),
        (")", 0, "expected a field name"),
    ],
)
def test_error_positions(text: str, position: int, fragment: str) -> None:
    err = error_of(text)
    assert err.position == position, err.message
    assert fragment in err.message
    assert err.details == {"position": position, "filter": text}
    assert err.status == 400 and err.code == "filter_syntax"


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("metrics.auc > 1", 0, "unknown field 'metrics.auc' for models"),
        ('model.owner_team = "x"', 0, "unknown field"),
        ("archived = 1", 11, "archived is a boolean field"),
        ("archived > true", 9, "> cannot be used on archived"),
        ('archived LIKE "t"', 9, "LIKE cannot be used"),
        ('tags. = "x"', 5, "missing tag key"),
        ("version = 1", 0, "unknown field 'version' for models"),
    ],
)
def test_model_error_positions(text: str, position: int, fragment: str) -> None:
    err = error_of(text, "models")
    assert err.position == position, err.message
    assert fragment in err.message


def test_longest_filter_accepted_and_one_more_refused() -> None:
    prefix, suffix = 'stage = "', '"'
    ok = prefix + "a" * (MAX_FILTER_LENGTH - len(prefix) - len(suffix)) + suffix
    assert len(ok) == MAX_FILTER_LENGTH
    assert compile_version_filter(ok) is not None
    too_long = ok + " "
    err = error_of(too_long)
    assert err.position == MAX_FILTER_LENGTH
    assert "longer than 4096" in err.message
    assert len(err.details["filter"]) <= MAX_FILTER_LENGTH


def test_nesting_depth_limit() -> None:
    def nested(depth: int) -> str:
        return "(" * depth + 'stage = "a"' + ")" * depth

    assert compile_version_filter(nested(MAX_DEPTH)) is not None
    err = error_of(nested(MAX_DEPTH + 1))
    assert err.position == MAX_DEPTH and "nested more than 32" in err.message


def test_not_depth_limit() -> None:
    assert compile_version_filter("NOT " * MAX_DEPTH + 'stage = "a"') is not None
    err = error_of("NOT " * (MAX_DEPTH + 1) + 'stage = "a"')
    assert err.position == 4 * MAX_DEPTH


def test_mixed_depth_counts_parentheses_and_not() -> None:
    err = error_of("(NOT " * 17 + 'stage = "a"' + ")" * 17)
    assert "nested" in err.message


def test_term_limit() -> None:
    term = "version = 1"
    assert compile_version_filter(" OR ".join([term] * MAX_TERMS)) is not None
    err = error_of(" OR ".join([term] * (MAX_TERMS + 1)))
    assert err.position == MAX_TERMS * (len(term) + 4)
    assert "more than 200 terms" in err.message


def test_in_list_values_count_as_terms() -> None:
    values = ", ".join(str(i) for i in range(MAX_TERMS + 1))
    text = f"version IN ({values})"
    err = error_of(text)
    assert err.position == text.index(f", {MAX_TERMS})") + 2
    assert compile_version_filter(f"version IN ({', '.join(['1'] * MAX_TERMS)})") is not None


def test_deep_garbage_does_not_recurse_forever() -> None:
    err = error_of("(" * 3000)
    assert err.position == MAX_DEPTH
    err = error_of("NOT " * 1000)
    assert err.position == 4 * MAX_DEPTH


def test_field_names_are_case_insensitive_but_keys_are_not() -> None:
    compiled = compile_version_filter('STAGE = "a" AND Tags.Env = "b"')
    assert compiled is not None
    params = compiled.compile().params
    assert "Env" in params.values()


# --------------------------------------------------------------------------- garbage


def _compile_everywhere(text: str) -> None:
    """Compile for both entities and render for both dialects; only our error may escape."""
    for entity in ENTITIES:
        try:
            expr = compile_filter(text, entity=entity)
        except FilterSyntaxError as exc:
            assert 0 <= exc.position <= len(text)
            assert isinstance(exc.message, str)
            continue
        if expr is not None:
            for dialect in DIALECTS:
                str(expr.compile(dialect=dialect))


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_random_text_only_raises_filter_syntax_error(text: str) -> None:
    _compile_everywhere(text)


PIECES = [
    "name", "version", "stage", "tags.env", 'tags."k y"', "metrics.auc", "metadata.a.b",
    "metadata.l.0", "model.tags.x", "model.owner_team", "alias", "created_at", "archived",
    "framework", "owner_team", "=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "NOT", "IN",
    "IS", "NULL", "AND", "OR", "true", "false", "(", ")", ",", '"x"', "'y'",
    '"2026-01-01T00:00:00Z"', '"2026-01-01"', r'"%a\_"', r'"\\"', "1", "-2.5", "1e3",
    '"', "'", "\\", ".", "", " ", "tags.", "metrics.", "é", "\x00",
]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=25).map(" ".join))
def test_token_soup_only_raises_filter_syntax_error(text: str) -> None:
    _compile_everywhere(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=25).map("".join))
def test_glued_token_soup_only_raises_filter_syntax_error(text: str) -> None:
    _compile_everywhere(text)


# --------------------------------------------------------------------------- order_by


@pytest.mark.parametrize(
    ("entity", "text", "canonical"),
    [
        ("versions", None, "created_at desc"),
        ("versions", "  ", "created_at desc"),
        ("models", None, "name asc"),
        ("versions", "number", "number asc"),
        ("versions", "version DESC", "number desc"),
        ("versions", "Created_At asc", "created_at asc"),
        ("versions", "metrics.auc desc, name", "metrics.auc desc,name asc"),
        ("versions", 'metrics."my metric" asc', 'metrics."my metric" asc'),
        ("versions", "stage, metrics.val/loss DESC, created_at",
         "stage asc,metrics.val/loss desc,created_at asc"),
        ("models", "updated_at desc, created_at", "updated_at desc,created_at asc"),
    ],
)
def test_order_by(entity: str, text: str | None, canonical: str) -> None:
    spec = parse_order_by(text, entity=entity)  # type: ignore[arg-type]
    assert spec.canonical() == canonical


@pytest.mark.parametrize(
    ("entity", "text", "position", "fragment"),
    [
        ("versions", "id", 0, "cannot sort versions by 'id'"),
        ("versions", "created_at sideways", 11, "expected ASC, DESC"),
        ("versions", "created_at, number, created_at desc", 20, "listed twice"),
        ("versions", "number,", 7, "expected a sort key"),
        ("versions", ", number", 0, "expected a sort key"),
        ("models", "metrics.auc", 0, "cannot sort models"),
        ("models", "stage", 0, "cannot sort models"),
        ("versions", "metrics.", 8, "missing metric name"),
        ("versions", "name asc desc", 9, "expected ASC, DESC"),
        ("versions", "name; DROP TABLE versions", 4, "order_by: unexpected character ';'"),
        ("versions", 'metrics."auc', 8, "order_by: unterminated string"),
    ],
)
def test_order_by_errors(entity: str, text: str, position: int, fragment: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_order_by(text, entity=entity)  # type: ignore[arg-type]
    assert info.value.position == position, info.value.message
    assert fragment in info.value.message


def test_order_by_key_limit() -> None:
    keys = ", ".join(f"metrics.m{i}" for i in range(9))
    with pytest.raises(FilterSyntaxError, match="more than 8 sort keys"):
        parse_order_by(keys, entity="versions")


# --------------------------------------------------------------------------- databases


def primary_key(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def add_model(conn: sa.Connection, name: str, *, created_at: datetime = T0,
              owner_team: str | None = None, risk_tier: str | None = None,
              archived: bool = False, tags: dict[str, str] | None = None,
              created_by: str = "alice", description: str = "") -> int:
    normalized = re.sub(r"[-_.]+", "-", name).lower()
    result = conn.execute(models.insert().values(
        name=name, normalized_name=normalized, description=description,
        owner_team=owner_team, risk_tier=risk_tier, archived=archived, version_counter=0,
        created_at=created_at, created_by=created_by, updated_at=created_at))
    model_id = primary_key(result)
    for key, value in (tags or {}).items():
        conn.execute(model_tags.insert().values(model_id=model_id, key=key, value=value))
    return model_id


def add_version(conn: sa.Connection, model_id: int, number: int, *, created_at: datetime,
                stage: str = "registered", framework: str | None = None,
                metrics: dict[str, float] | None = None, tags: dict[str, str] | None = None,
                provenance: dict[str, Any] | None = None, created_by: str = "alice",
                description: str = "") -> int:
    result = conn.execute(versions.insert().values(
        model_id=model_id, number=number, digest=f"{model_id:032x}{number:032x}",
        description=description, stage=stage, stage_changed_at=created_at,
        provenance=provenance or {}, framework=framework, file_count=1, total_size=10,
        created_at=created_at, created_by=created_by, updated_at=created_at))
    version_id = primary_key(result)
    for key, value in (tags or {}).items():
        conn.execute(version_tags.insert().values(version_id=version_id, key=key, value=value))
    for name, metric in (metrics or {}).items():
        conn.execute(version_metrics.insert().values(version_id=version_id, name=name,
                                                     value=metric))
    return version_id


def add_alias(conn: sa.Connection, model_id: int, name: str, version_id: int) -> None:
    conn.execute(aliases.insert().values(model_id=model_id, name=name, version_id=version_id,
                                         updated_at=T0, updated_by="alice"))


@dataclass
class Catalogue:
    engine: sa.Engine
    version_ids: dict[str, int] = field(default_factory=dict)
    model_ids: dict[str, int] = field(default_factory=dict)

    def versions(self, text: str) -> set[str]:
        where = compile_version_filter(text)
        stmt = sa.select(versions.c.id)
        if where is not None:
            stmt = stmt.where(where)
        labels = {v: k for k, v in self.version_ids.items()}
        with self.engine.connect() as conn:
            return {labels[i] for i in conn.execute(stmt).scalars()}

    def models(self, text: str) -> set[str]:
        where = compile_model_filter(text)
        stmt = sa.select(models.c.id)
        if where is not None:
            stmt = stmt.where(where)
        labels = {v: k for k, v in self.model_ids.items()}
        with self.engine.connect() as conn:
            return {labels[i] for i in conn.execute(stmt).scalars()}

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                    for t in (models, versions, version_tags, version_metrics, aliases)}


def seed_catalogue(engine: sa.Engine) -> Catalogue:
    """Three models, seven versions; see the expectations in the tests below."""
    cat = Catalogue(engine)
    hour = timedelta(hours=1)
    with engine.begin() as conn:
        mf = add_model(conn, "Fraud_Scorer", owner_team="risk", risk_tier="high",
                       tags={"domain": "payments", "pii": "yes"}, description="Card fraud")
        mc = add_model(conn, "churn.model", owner_team="growth", created_by="bob",
                       created_at=T0 + 24 * hour, tags={"domain": "crm"}, description="Churn")
        mr = add_model(conn, "Ranker", risk_tier="low", archived=True, created_by="carol",
                       created_at=T0 + 48 * hour, description="Search ranking")
        cat.model_ids = {"MF": mf, "MC": mc, "MR": mr}
        v = cat.version_ids
        v["F1"] = add_version(
            conn, mf, 1, created_at=T0, stage="archived", framework="sklearn",
            metrics={"auc": 0.81, "f1": 0.7}, tags={"env": "dev"}, description="baseline",
            provenance={"training_data": {"uri": "s3://data/fraud/2025", "version": "1"},
                        "parameters": {"lr": 0.01, "depth": 6, "balanced": True},
                        "framework": "sklearn"})
        v["F2"] = add_version(
            conn, mf, 2, created_at=T0 + hour, stage="production", framework="torch",
            metrics={"auc": 0.91, "f1": 0.8}, tags={"env": "prod", "team owner": "x"},
            created_by="bob", description="100% better",
            provenance={"training_data": {"uri": "s3://data/fraud/2026"},
                        "parameters": {"lr": 0.001, "depth": 8, "balanced": False},
                        "training_code": {"dirty": False}})
        v["F3"] = add_version(
            conn, mf, 3, created_at=T0 + 2 * hour, stage="staging", framework="torch",
            metrics={"auc": 0.95}, tags={"env": "staging"}, description="candidate_v3",
            provenance={"parameters": {"lr": "auto"}})
        v["C1"] = add_version(
            conn, mc, 1, created_at=T0 + 3 * hour, stage="production", framework="xgboost",
            metrics={"auc": 0.75}, tags={"env": "prod"}, created_by="bob",
            description="first churn",
            provenance={"training_data": {"uri": "gs://crm/churn"}, "parameters": {"lr": 0.1}})
        v["C2"] = add_version(
            conn, mc, 2, created_at=T0 + 4 * hour, framework="xgboost",
            metrics={"auc": 0.88, "val/loss": 0.3}, tags={"env": "dev", "k8s:ns": "ml"},
            created_by="bob", description="Second Churn",
            provenance={"parameters": {"lr": 0.05}})
        v["F4"] = add_version(conn, mf, 4, created_at=T0 + 5 * hour)
        v["R1"] = add_version(
            conn, mr, 1, created_at=T0 + 6 * hour, stage="archived", metrics={"ndcg": 0.6},
            created_by="carol", description="ranking",
            provenance={"extras": {"a.b": 1, "list": [10, 20]}})
        add_alias(conn, mf, "champion", v["F2"])
        add_alias(conn, mf, "challenger", v["F3"])
        add_alias(conn, mc, "champion", v["C1"])
    return cat


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalogue(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalogue]:
    with open_database(request.param, tmp_path_factory.mktemp("filters"), prefix="regista_filters") as engine:
        yield seed_catalogue(engine)


ALL = {"F1", "F2", "F3", "F4", "C1", "C2", "R1"}
FRAUD = {"F1", "F2", "F3", "F4"}

VERSION_CASES: list[tuple[str, set[str]]] = [
    # model name: normalised for =, !=, IN; as typed (case-sensitive) for LIKE
    ('name = "fraud-scorer"', FRAUD),
    ('name = "FRAUD.SCORER"', FRAUD),
    ('model = "churn_model"', {"C1", "C2"}),
    ('model.name = "Churn--Model"', {"C1", "C2"}),
    ('name != "fraud_scorer"', {"C1", "C2", "R1"}),
    ('name IN ("ranker", "Churn-Model")', {"C1", "C2", "R1"}),
    ('name NOT IN ("ranker")', FRAUD | {"C1", "C2"}),
    ('name LIKE "Fraud%"', FRAUD),
    ('name LIKE "fraud%"', set()),
    ('name ILIKE "fraud%"', FRAUD),
    ('name LIKE "churn_model"', {"C1", "C2"}),
    (r'name LIKE "churn\_model"', set()),
    ('name NOT LIKE "%r"', {"C1", "C2"}),
    ('name > "m"', {"R1"}),
    # version numbers
    ("version = 2", {"F2", "C2"}),
    ("number >= 3", {"F3", "F4"}),
    ("version IN (1, 4)", {"F1", "C1", "R1", "F4"}),
    ("version != 1", {"F2", "F3", "F4", "C2"}),
    # plain columns
    ('stage = "production"', {"F2", "C1"}),
    ('STAGE = "production"', {"F2", "C1"}),
    ('stage != "production"', ALL - {"F2", "C1"}),
    ('stage in ("staging", "registered")', {"F3", "F4", "C2"}),
    ('creator = "bob"', {"F2", "C1", "C2"}),
    ('created_by = "alice"', {"F1", "F3", "F4"}),
    ('created_at >= "2026-01-01T03:00:00Z"', {"C1", "C2", "F4", "R1"}),
    ('created_at < "2026-01-01T02:00:00+01:00"', {"F1"}),
    ('created_at = "2026-01-01T01:00:00.000000+00:00"', {"F2"}),
    ('created_at IN ("2026-01-01T00:00:00Z", "2026-01-01T07:00:00+01:00")', {"F1", "R1"}),
    (r'description LIKE "100\% %"', {"F2"}),
    (r'description LIKE "%\_v3"', {"F3"}),
    ('description LIKE "%churn"', {"C1"}),
    ('description ILIKE "%CHURN"', {"C1", "C2"}),
    ('description NOT ILIKE "%churn"', ALL - {"C1", "C2"}),
    ('description = ""', {"F4"}),
    # nullable column: comparisons need a value, NOT is the complement
    ('framework = "torch"', {"F2", "F3"}),
    ('framework != "torch"', {"F1", "C1", "C2"}),
    ('NOT framework = "torch"', {"F1", "F4", "C1", "C2", "R1"}),
    ("framework IS NULL", {"F4", "R1"}),
    ("framework IS NOT NULL", {"F1", "F2", "F3", "C1", "C2"}),
    ('framework NOT IN ("torch", "xgboost")', {"F1"}),
    ('framework NOT LIKE "t%"', {"F1", "C1", "C2"}),
    ('NOT framework LIKE "t%"', {"F1", "F4", "C1", "C2", "R1"}),
    # aliases
    ('alias = "champion"', {"F2", "C1"}),
    ('alias IN ("challenger")', {"F3"}),
    ("alias IS NOT NULL", {"F2", "F3", "C1"}),
    ("alias IS NULL", {"F1", "F4", "C2", "R1"}),
    ('NOT alias = "champion"', {"F1", "F3", "F4", "C2", "R1"}),
    ('alias != "champion"', {"F3"}),
    # tags
    ('tags.env = "prod"', {"F2", "C1"}),
    ('tags.env != "prod"', {"F1", "F3", "C2"}),
    ('NOT tags.env = "prod"', {"F1", "F3", "F4", "C2", "R1"}),
    ("tags.env IS NULL", {"F4", "R1"}),
    ("tags.env IS NOT NULL", {"F1", "F2", "F3", "C1", "C2"}),
    ("NOT tags.env IS NOT NULL", {"F4", "R1"}),
    ('tags."team owner" = "x"', {"F2"}),
    ("tags.'team owner' IS NOT NULL", {"F2"}),
    ('tags.k8s:ns = "ml"', {"C2"}),
    ('tags.env LIKE "%o%"', {"F2", "C1"}),
    ('tags.env IN ("dev", "staging")', {"F1", "F3", "C2"}),
    ('tags.env NOT IN ("dev")', {"F2", "F3", "C1"}),
    ('tags.ENV = "prod"', set()),
    # metrics
    ("metrics.auc > 0.9", {"F2", "F3"}),
    ("metrics.auc >= 0.75 AND metrics.auc < 0.85", {"F1", "C1"}),
    ("metrics.auc IS NULL", {"F4", "R1"}),
    ("NOT metrics.auc > 0.9", {"F1", "F4", "C1", "C2", "R1"}),
    ("metrics.val/loss < 1", {"C2"}),
    ('metrics."val/loss" <= 0.3', {"C2"}),
    ("metrics.auc = 1", set()),
    ("metrics.auc IN (0.91, 0.75)", {"F2", "C1"}),
    ("metrics.f1 != 0.7", {"F2"}),
    ("metrics.ndcg > -1e3", {"R1"}),
    # metadata (provenance JSON), typed by the literal
    ('metadata.training_data.uri LIKE "s3://%"', {"F1", "F2"}),
    ('provenance.training_data.uri = "gs://crm/churn"', {"C1"}),
    ("metadata.parameters.lr < 0.02", {"F1", "F2"}),
    ('metadata.parameters.lr = "auto"', {"F3"}),
    ('metadata.parameters.lr > "a"', {"F3"}),
    ('metadata.parameters.lr ILIKE "AU%"', {"F3"}),
    ("metadata.parameters.lr < 1 AND metadata.parameters.lr > 0.0999", {"C1"}),
    ("metadata.parameters.balanced = true", {"F1"}),
    ("metadata.parameters.balanced != true", {"F2"}),
    ("metadata.parameters.balanced IN (false)", {"F2"}),
    ("metadata.parameters.depth IN (6, 8)", {"F1", "F2"}),
    ("metadata.parameters.depth NOT IN (6)", {"F2"}),
    ("metadata.parameters.lr IS NULL", {"F4", "R1"}),
    ("metadata.parameters.lr IS NOT NULL", {"F1", "F2", "F3", "C1", "C2"}),
    ("NOT metadata.parameters.lr > 0.02", {"F1", "F2", "F3", "F4", "R1"}),
    ('metadata.extras."a.b" = 1', {"R1"}),
    ("metadata.extras.list.1 = 20", {"R1"}),
    ("metadata.extras.list.0 >= 10", {"R1"}),
    ("metadata.training_code.dirty = false", {"F2"}),
    ('metadata.parameters.depth = "6"', set()),
    ("metadata.training_data.version = 1", set()),
    ('metadata.training_data.version = "1"', {"F1"}),
    ('metadata.training_data = "x"', set()),
    ("metadata.parameters IS NOT NULL", {"F1", "F2", "F3", "C1", "C2"}),
    # the model's fields
    ('model.tags.domain = "payments"', FRAUD),
    ('model.tags."domain" != "payments"', {"C1", "C2"}),
    ("model.tags.domain IS NULL", {"R1"}),
    ('model.owner_team = "risk"', FRAUD),
    ("model.owner_team IS NULL", {"R1"}),
    ('model.team != "risk"', {"C1", "C2"}),
    ('model.risk_tier IN ("high", "low")', FRAUD | {"R1"}),
    ('NOT model.risk_tier = "high"', {"C1", "C2", "R1"}),
    # boolean structure
    ('(stage = "production" OR stage = "staging") AND model.tags.domain = "payments"',
     {"F2", "F3"}),
    ('NOT (tags.env = "prod" OR metrics.auc < 0.8)', {"F1", "F3", "F4", "C2", "R1"}),
    ('stage = "production" and NOT version in (1)', {"F2"}),
    ('stage = "archived" OR stage = "staging" AND framework = "torch"', {"F1", "F3", "R1"}),
    ('NOT NOT stage = "production"', {"F2", "C1"}),
    ('NOT (NOT (tags.env = "prod") AND NOT (alias = "challenger"))', {"F2", "F3", "C1"}),
]


@pytest.mark.parametrize(("text", "expected"), VERSION_CASES, ids=[c[0] for c in VERSION_CASES])
def test_version_filter(catalogue: Catalogue, text: str, expected: set[str]) -> None:
    assert catalogue.versions(text) == expected


def test_statement_cache_never_reuses_values(catalogue: Catalogue) -> None:
    """Same-shaped filters (JSON paths, LIKE patterns) compile to one cached statement;
    each run must still use its own path and pattern."""
    pairs = [
        ("metadata.extras.list.0 = 10", {"R1"}),
        ("metadata.extras.list.1 = 10", set()),
        ('metadata.training_data.uri = "gs://crm/churn"', {"C1"}),
        ('metadata.training_data.version = "gs://crm/churn"', set()),
        ('name LIKE "Fraud%"', FRAUD),
        ('name LIKE "fraud%"', set()),
        ('tags.env LIKE "pro_"', {"F2", "C1"}),
        ('tags.env LIKE "de_"', {"F1", "C2"}),
    ]
    for _ in range(3):
        for text, expected in pairs:
            assert catalogue.versions(text) == expected, text


def test_digest_filter(catalogue: Catalogue) -> None:
    digest = f"{catalogue.model_ids['MF']:032x}{2:032x}"
    assert catalogue.versions(f'digest = "{digest}"') == {"F2"}


MODEL_CASES: list[tuple[str, set[str]]] = [
    ('name = "fraud-scorer"', {"MF"}),
    ('name = "Churn_Model"', {"MC"}),
    ('name LIKE "R%"', {"MR"}),
    ('name ILIKE "%O%"', {"MF", "MC"}),
    ('name LIKE "%O%"', set()),
    ('owner_team = "risk"', {"MF"}),
    ("team IS NULL", {"MR"}),
    ('risk_tier != "high"', {"MR"}),
    ('NOT risk_tier = "high"', {"MC", "MR"}),
    ("archived = true", {"MR"}),
    ("archived = false", {"MF", "MC"}),
    ("archived != true", {"MF", "MC"}),
    ('tags.domain = "crm"', {"MC"}),
    ("tags.domain IS NULL", {"MR"}),
    ("tags.pii IS NOT NULL", {"MF"}),
    ('stage = "production"', {"MF", "MC"}),
    ('stage = "staging"', {"MF"}),
    ('NOT stage = "production"', {"MR"}),
    ('stage IN ("archived")', {"MF", "MR"}),
    ("stage IS NULL", set()),
    ('alias = "champion"', {"MF", "MC"}),
    ('alias = "challenger"', {"MF"}),
    ("alias IS NULL", {"MR"}),
    ('created_by = "bob"', {"MC"}),
    ('creator IN ("alice", "carol")', {"MF", "MR"}),
    ('created_at > "2026-01-01T12:00:00Z"', {"MC", "MR"}),
    ('updated_at >= "2026-01-01T00:00:00Z"', {"MF", "MC", "MR"}),
    ('description LIKE "%rank%"', {"MR"}),
    ('owner_team = "risk" or archived = true', {"MF", "MR"}),
]


@pytest.mark.parametrize(("text", "expected"), MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_model_filter(catalogue: Catalogue, text: str, expected: set[str]) -> None:
    assert catalogue.models(text) == expected


INJECTIONS = [
    """name = "x'; DROP TABLE models; --" """,
    r'''name = "x\"; DROP TABLE versions; --"''',
    """tags.env = "prod' OR '1'='1" """,
    """tags."env' OR 1=1 --" = "x" """,
    """metrics."auc') OR 1=1 --" > 0""",
    """metadata."a') OR 1=1 --" = "x" """,
    """metadata.parameters."lr'); DROP TABLE versions; --" > 0""",
    """description LIKE "%'; DELETE FROM versions; --%" """,
    """alias = "champion' OR 'a'='a" """,
    """model.tags."domain' OR ''='" = "' OR ''='" """,
    """created_by IN ("x') OR 1=1; --", "'; TRUNCATE versions; --")""",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_is_just_a_value(catalogue: Catalogue, text: str) -> None:
    before = catalogue.counts()
    assert catalogue.versions(text) == set()
    assert catalogue.versions(f"NOT ({text})") == ALL
    assert catalogue.counts() == before == {"models": 3, "versions": 7, "version_tags": 7,
                                            "version_metrics": 9, "aliases": 3}


@pytest.mark.parametrize("text", INJECTIONS)
def test_injected_text_never_reaches_the_sql(text: str) -> None:
    expr = compile_version_filter(text)
    assert expr is not None
    for dialect in DIALECTS:
        sql = str(expr.compile(dialect=dialect))
        for word in ("DROP", "DELETE", "TRUNCATE", "OR 1=1", "'1'='1", "--"):
            assert word not in sql


def test_model_injection(catalogue: Catalogue) -> None:
    assert catalogue.models("""name = "x' OR '1'='1" OR tags."a' OR 1=1" = "b" """) == set()
    assert catalogue.counts()["models"] == 3


# --------------------------------------------------------------------------- properties

STRING_FIELDS = ["name", "stage", "creator", "description", "framework", "alias", "tags.env",
                 "model.owner_team", "model.tags.domain", "metadata.training_data.uri",
                 "metadata.parameters.lr"]
NUMBER_FIELDS = ["metrics.auc", "metrics.f1", "metadata.parameters.lr",
                 "metadata.parameters.depth", "metadata.extras.list.0"]
STRING_VALUES = ['"prod"', '"%o%"', '"F_%"', '"torch"', '""', '"fraud-scorer"', '"champion"',
                 '"s3://%"', '"auto"', '"risk"']
string_leaf = st.builds(
    "{} {} {}".format, st.sampled_from(STRING_FIELDS),
    st.sampled_from(["=", "!=", "<", ">=", "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"]),
    st.sampled_from(STRING_VALUES))
number_leaf = st.builds(
    "{} {} {}".format, st.sampled_from(NUMBER_FIELDS),
    st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
    st.one_of(st.integers(-2, 12).map(str),
              st.floats(-1, 2, allow_nan=False).map(lambda f: f"{f:.3f}")))
integer_leaf = st.builds(
    "version {} {}".format, st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
    st.integers(-1, 5))
in_leaf = st.builds(
    "{} {} ({})".format, st.sampled_from(STRING_FIELDS), st.sampled_from(["IN", "NOT IN"]),
    st.lists(st.sampled_from(STRING_VALUES), min_size=1, max_size=3).map(", ".join))
null_leaf = st.builds("{} IS {}NULL".format,
                      st.sampled_from([*STRING_FIELDS, *NUMBER_FIELDS, "version"]),
                      st.sampled_from(["", "NOT "]))
time_leaf = st.builds(
    '{} {} "{}"'.format, st.just("created_at"), st.sampled_from(["<", ">=", "="]),
    st.integers(-1, 8).map(lambda h: (T0 + timedelta(hours=h)).isoformat()))
bool_leaf = st.builds("metadata.parameters.balanced {} {}".format, st.sampled_from(["=", "!="]),
                      st.sampled_from(["true", "false"]))
filters = st.recursive(
    st.one_of(string_leaf, number_leaf, integer_leaf, in_leaf, null_leaf, time_leaf, bool_leaf),
    lambda inner: st.one_of(
        st.builds("({} {} {})".format, inner, st.sampled_from(["AND", "OR"]), inner),
        st.builds("NOT ({})".format, inner)),
    max_leaves=6)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=filters)
def test_not_is_the_exact_complement(catalogue: Catalogue, text: str) -> None:
    """Two-valued logic: every version matches exactly one of ``f`` and ``NOT (f)``."""
    matched = catalogue.versions(text)
    unmatched = catalogue.versions(f"NOT ({text})")
    assert matched.isdisjoint(unmatched)
    assert matched | unmatched == ALL


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(left=filters, right=filters)
def test_and_or_are_intersection_and_union(catalogue: Catalogue, left: str, right: str) -> None:
    a, b = catalogue.versions(left), catalogue.versions(right)
    assert catalogue.versions(f"({left}) AND ({right})") == a & b
    assert catalogue.versions(f"({left}) OR ({right})") == a | b


# --------------------------------------------------------------------------- docs


def test_every_field_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for entity in ENTITIES:
        for name in field_names(entity):
            assert f"`{name}`" in text, f"{entity} field {name} missing from docs/search.md"
