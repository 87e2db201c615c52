"""Searching models and versions, one keyset-paginated page at a time.

The filter and ``order_by`` languages live in :mod:`regista.service.filters`; this
module runs them. A page is ``ORDER BY <sort keys>, id LIMIT page_size + 1``; the next
page starts strictly after the last row's sort values and id, written as an OR/AND chain
(no row values, so SQLite and PostgreSQL run the same SQL). Keyset paging never skips or
repeats a row that existed when paging started, however many rows are inserted between
pages (an OFFSET would).

A version search either walks the index of its sort order, checking each row, or seeks
from the index of its most selective term and sorts the matches; SQLite needs to be told
which (:func:`_choose_driver`), PostgreSQL chooses by itself. docs/search.md, "How queries
are planned", explains the choice.

A cursor is ``base64url(json) "." base64url(hmac)``: the JSON holds the listing it
belongs to (entity, canonical order, a digest of the filter and scope), the last sort
values and the last id; the HMAC-SHA256 (truncated to 16 bytes) under the caller's secret
makes it tamper-evident. Any cursor that does not verify, or belongs to another listing,
raises :class:`~regista.errors.InvalidCursor`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.sql.elements import ColumnElement

from regista.errors import BadRequest, InvalidCursor
from regista.service.filters import (
    Driver,
    Entity,
    OrderSpec,
    VersionFilter,
    compile_filter,
    parse_order_by,
    plan_version_filter,
)
from regista.store.sql.tables import models, version_metrics, versions

__all__ = [
    "MAX_CURSOR_LENGTH",
    "PlanChoice",
    "count_models",
    "count_versions",
    "search_models",
    "search_versions",
]

MAX_CURSOR_LENGTH = 4096
"""Longest cursor accepted, in characters."""
_SIGNATURE_BYTES = 16
_SIGNING_CONTEXT = b"regista.search.cursor.v1\x00"
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

ValueKind = Literal["timestamp", "integer", "string", "number"]


@dataclass(frozen=True, slots=True)
class _SortColumn:
    expr: ColumnElement[Any]
    descending: bool
    nullable: bool  # only metrics: NULLs (no such metric) sort last in both directions
    kind: ValueKind


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one listing selects from and sorts by; the last column is the unique id."""

    source: sa.FromClause
    columns: tuple[_SortColumn, ...]
    where: tuple[ColumnElement[bool], ...] = ()


# --------------------------------------------------------------------------- plans

# How a leading metrics.<name> sort key is planned: "outer" joins the metric (NULL when
# absent) and sorts everything at once; "inner" keeps only versions having the metric,
# so the (name, value) index drives the order; "absent" keeps only the others (the
# NULLs, sorted last) and drops the key. Paging runs "inner" then "absent".
MetricPhase = Literal["outer", "inner", "absent"]


def _version_plan(spec: OrderSpec, phase: MetricPhase = "outer") -> _Plan:
    source: sa.FromClause = versions
    columns: list[_SortColumn] = []
    where: list[ColumnElement[bool]] = []
    joined_models = False
    for i, key in enumerate(spec.keys):
        if key.field == "created_at":
            columns.append(_SortColumn(versions.c.created_at, key.descending, False,
                                       "timestamp"))
        elif key.field == "number":
            columns.append(_SortColumn(versions.c.number, key.descending, False, "integer"))
        elif key.field == "stage":
            columns.append(_SortColumn(versions.c.stage, key.descending, False, "string"))
        elif key.field == "name":
            if not joined_models:
                # One model per version: the join cannot multiply rows.
                source = source.join(models, models.c.id == versions.c.model_id)
                joined_models = True
            columns.append(_SortColumn(models.c.normalized_name, key.descending, False,
                                       "string"))
        elif key.field == "metrics":
            assert key.metric is not None
            metric = version_metrics.alias(f"sort_metric_{i}")
            # (version_id, name) is the primary key: at most one row per version.
            on = sa.and_(metric.c.version_id == versions.c.id, metric.c.name == key.metric)
            if i == 0 and phase == "absent":
                where.append(~sa.exists().where(on))
            elif i == 0 and phase == "inner":
                source = source.join(metric, on)
                columns.append(_SortColumn(metric.c.value, key.descending, False, "number"))
            else:
                source = source.outerjoin(metric, on)
                columns.append(_SortColumn(metric.c.value, key.descending, True, "number"))
        else:  # pragma: no cover - parse_order_by only yields the keys above
            raise AssertionError(key.field)
    columns.append(_SortColumn(versions.c.id, spec.keys[-1].descending, False, "integer"))
    return _Plan(source, tuple(columns), tuple(where))


def _model_plan(spec: OrderSpec) -> _Plan:
    by_field: dict[str, tuple[ColumnElement[Any], ValueKind]] = {
        "name": (models.c.normalized_name, "string"),
        "created_at": (models.c.created_at, "timestamp"),
        "updated_at": (models.c.updated_at, "timestamp"),
    }
    columns = [_SortColumn(by_field[k.field][0], k.descending, False, by_field[k.field][1])
               for k in spec.keys]
    columns.append(_SortColumn(models.c.id, spec.keys[-1].descending, False, "integer"))
    return _Plan(models, tuple(columns))


def _order_clauses(plan: _Plan) -> list[ColumnElement[Any]]:
    clauses: list[ColumnElement[Any]] = []
    for col in plan.columns:
        clause = col.expr.desc() if col.descending else col.expr.asc()
        clauses.append(clause.nulls_last() if col.nullable else clause)
    return clauses


def _after(plan: _Plan, values: list[Any]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the plan's order (NULLs last in both directions).

    ``(k1 after v1) OR (k1 = v1 AND k2 after v2) OR ...``, the id (never NULL) last.
    """
    branches: list[ColumnElement[bool]] = []
    equal: list[ColumnElement[bool]] = []
    for col, value in zip(plan.columns, values, strict=True):
        if value is None:
            # Nothing sorts after a NULL within this key; ties continue on the next key.
            equal.append(col.expr.is_(None))
            continue
        beyond: ColumnElement[bool] = col.expr < value if col.descending else col.expr > value
        if col.nullable:
            beyond = sa.or_(beyond, col.expr.is_(None))
        branches.append(sa.and_(*equal, beyond))
        equal.append(col.expr == value)
    condition = sa.or_(*branches)
    first, first_value = plan.columns[0], values[0]
    if not first.nullable:
        # Redundant but sargable: lets the index on the first key start at the cursor.
        bound = first.expr <= first_value if first.descending else first.expr >= first_value
        condition = sa.and_(bound, condition)
    return condition


# --------------------------------------------------------------------------- cursors


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text or not _B64_CHARS.issuperset(text):
        raise InvalidCursor("invalid cursor")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCursor("invalid cursor") from None
    if _b64encode(data) != text:  # only the canonical spelling of the bytes
        raise InvalidCursor("invalid cursor")
    return data


def _signature(secret: bytes, payload: str) -> str:
    mac = hmac.new(secret, _SIGNING_CONTEXT + payload.encode("ascii"), hashlib.sha256)
    return _b64encode(mac.digest()[:_SIGNATURE_BYTES])


def _listing_digest(entity: Entity, filter_text: str | None, scope: int | None) -> str:
    """Ties a cursor to the filter and scope it was issued for."""
    text = (filter_text or "").strip()
    blob = json.dumps([entity, text, scope], separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _encode_value(value: Any, kind: ValueKind) -> Any:
    if value is None:
        return None
    if kind == "timestamp":
        assert isinstance(value, datetime)
        return value.isoformat()
    if kind == "number":
        return float(value)
    return value


def _decode_value(raw: Any, col: _SortColumn) -> Any:
    """A sort value from a cursor, checked against the key's kind."""
    if raw is None and col.nullable:
        return None
    if col.kind == "timestamp" and isinstance(raw, str):
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise InvalidCursor("invalid cursor") from None
        if value.tzinfo is not None:
            return value
    is_number = isinstance(raw, int | float) and not isinstance(raw, bool)
    if col.kind == "integer" and is_number and isinstance(raw, int):
        return raw
    if col.kind == "number" and is_number:
        return float(raw)
    if col.kind == "string" and isinstance(raw, str):
        return raw
    raise InvalidCursor("invalid cursor")


def _encode_cursor(*, entity: Entity, spec: OrderSpec, listing: str, plan: _Plan,
                   row: tuple[Any, ...], secret: bytes) -> str:
    values = [_encode_value(row[i], col.kind) for i, col in enumerate(plan.columns)]
    payload = {"e": entity, "o": spec.canonical(), "q": listing, "k": values[:-1],
               "i": values[-1]}
    body = _b64encode(json.dumps(payload, separators=(",", ":")).encode("ascii"))
    return f"{body}.{_signature(secret, body)}"


def _decode_cursor(token: str, *, entity: Entity, spec: OrderSpec, listing: str,
                   plan: _Plan, secret: bytes) -> list[Any]:
    """The sort values (id last) a cursor continues after, once verified."""
    if (len(token) > MAX_CURSOR_LENGTH or token.count(".") != 1
            or not _B64_CHARS.issuperset(token.replace(".", ""))):
        raise InvalidCursor("invalid cursor")
    body, signature = token.split(".")
    if not hmac.compare_digest(signature, _signature(secret, body)):
        raise InvalidCursor("invalid cursor: signature does not match")
    try:
        payload = json.loads(_b64decode(body))
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursor("invalid cursor") from None
    if not isinstance(payload, dict) or set(payload) != {"e", "o", "q", "k", "i"}:
        raise InvalidCursor("invalid cursor")
    if payload["e"] != entity:
        raise InvalidCursor(f"this cursor does not belong to a listing of {entity}")
    if payload["o"] != spec.canonical():
        raise InvalidCursor("this cursor was issued for a different order_by",
                            details={"order_by": spec.canonical()})
    if payload["q"] != listing:
        raise InvalidCursor("this cursor was issued for a different filter")
    keys = payload["k"]
    if not isinstance(keys, list) or len(keys) != len(plan.columns) - 1:
        raise InvalidCursor("invalid cursor")
    return [_decode_value(raw, col) for raw, col in zip([*keys, payload["i"]], plan.columns,
                                                         strict=True)]


# --------------------------------------------------------------------------- search


def _check_page_size(page_size: int, max_page_size: int) -> None:
    if isinstance(page_size, bool) or not 1 <= page_size <= max_page_size:
        raise BadRequest(
            f"page_size must be between 1 and {max_page_size}",
            details={"field": "page_size", "min": 1, "max": max_page_size,
                     "value": page_size},
        )


def _fetch(conn: Connection, plan: _Plan, where: list[ColumnElement[bool]],
           after: list[Any] | None, limit: int) -> list[tuple[Any, ...]]:
    """Up to ``limit`` rows of the plan's sort values (id last) after ``after``."""
    stmt = sa.select(*[col.expr.label(f"k{i}") for i, col in enumerate(plan.columns)])
    stmt = stmt.select_from(plan.source).where(*where, *plan.where)
    if after is not None:
        stmt = stmt.where(_after(plan, after))
    stmt = stmt.order_by(*_order_clauses(plan)).limit(limit)
    return [tuple(row) for row in conn.execute(stmt).all()]


# --------------------------------------------------------------------------- plan choice

PlanChoice = Literal["auto", "walk", "seek"]
"""How a version filter is run: ``walk`` the sort order's index and check each row,
``seek`` from the index of the filter's most selective term and sort its matches, or
``auto`` (the default): let the database choose (PostgreSQL, whose planner knows the
distribution of values), or choose by counting (SQLite, see :func:`_choose_driver`)."""


def _walkable(spec: OrderSpec, in_models: bool) -> bool:
    """Whether an index gives the rows in the order's first key (ties sorted on the fly).

    ``created_at``: (created_at, id), or (model_id, created_at, id) within a model;
    ``metrics.<name>``: (name, value, version_id); ``number``: (model_id, number), within
    a model only. ``name`` and ``stage`` have none: matches are always sorted.
    """
    first = spec.keys[0].field
    return first in ("created_at", "metrics") or (first == "number" and in_models)


def _choose_driver(conn: Connection, vf: VersionFilter, spec: OrderSpec, page_size: int,
                   model_id: int | None) -> Driver | None:
    """SQLite: the term to start from, or ``None`` to walk the order's index.

    SQLite's statistics cannot tell ``tags.env = "prod"`` (a third of all versions) from
    ``tags.run = "run-7"`` (one), so each candidate term counts its matches in its own
    index, up to a cap T. Walking the order finds a page after about
    ``(page_size + 1) * N / matches`` rows (N: the versions in reach, all of them or those
    of the models a ``name`` term or the listing selects); seeking costs about ``matches``
    (read them all, then sort). The two meet at ``T = sqrt((page_size + 1) * N)``: below
    it seek from the smallest term, at or above it walk. Two small statements: N
    (``max(id)``, or the models' version counters), then every count at once.
    """
    if not vf.drivers:
        return None
    in_models = bool(vf.models) or model_id is not None
    sizes: list[ColumnElement[Any]] = [
        sa.select(sa.func.coalesce(sa.func.sum(models.c.version_counter), 0))
        .where(condition).scalar_subquery() for condition in vf.models]
    if model_id is not None:
        sizes.append(sa.select(models.c.version_counter).where(models.c.id == model_id)
                     .scalar_subquery())
    if not sizes:
        sizes.append(sa.select(sa.func.coalesce(sa.func.max(versions.c.id), 0))
                     .scalar_subquery())
    reach = min(int(n or 0) for n in conn.execute(sa.select(*sizes)).one())
    if reach <= 0:
        return None
    cap = math.ceil(math.sqrt((page_size + 1) * reach))
    probes = [
        sa.select(sa.func.count()).select_from(ids.limit(cap).subquery()).scalar_subquery()
        for driver in vf.drivers for ids in driver.ids]
    counts = iter(conn.execute(sa.select(*probes)).one())
    matches = [sum(next(counts) for _ in driver.ids) for driver in vf.drivers]
    best = min(range(len(matches)), key=matches.__getitem__)
    if matches[best] < cap:
        return vf.drivers[best]
    if not in_models and not _walkable(spec, in_models=False):
        return vf.drivers[best]  # no index to walk: every match is sorted in both plans
    return None


def _version_where(conn: Connection, vf: VersionFilter | None, spec: OrderSpec,
                   page_size: int, model_id: int | None, choice: PlanChoice
                   ) -> ColumnElement[bool] | None:
    """The filter in the shape of the chosen plan."""
    if vf is None:
        return None
    if choice == "walk" or not vf.drivers:
        return vf.walk
    if choice == "seek":
        return vf.seek(vf.drivers[0])
    if conn.dialect.name != "sqlite":
        return vf.walk  # PostgreSQL plans EXISTS as a semi-join, from either side
    driver = _choose_driver(conn, vf, spec, page_size, model_id)
    return vf.walk if driver is None else vf.seek(driver)


def _search(conn: Connection, entity: Entity, *, filter: str | None, order_by: str | None,
            page_size: int, cursor: str | None, secret: bytes, max_page_size: int,
            model_id: int | None = None, choice: PlanChoice = "auto"
            ) -> tuple[list[int], str | None]:
    if not secret:
        raise ValueError("a non-empty secret is needed to sign cursors")
    _check_page_size(page_size, max_page_size)
    spec = parse_order_by(order_by, entity=entity)
    vf: VersionFilter | None = None
    compiled: ColumnElement[bool] | None = None
    if entity == "versions":
        vf = plan_version_filter(filter)
        plan = _version_plan(spec)
    else:
        compiled = compile_filter(filter, entity=entity)
        plan = _model_plan(spec)
    listing = _listing_digest(entity, filter, model_id)
    after = None
    if cursor:
        after = _decode_cursor(cursor, entity=entity, spec=spec, listing=listing, plan=plan,
                               secret=secret)
    # Everything is checked: only now ask the database anything.
    if entity == "versions":
        compiled = _version_where(conn, vf, spec, page_size, model_id, choice)
    where = [] if compiled is None else [compiled]
    if model_id is not None:
        where.append(versions.c.model_id == model_id)

    if entity == "versions" and spec.keys[0].field == "metrics":
        # Versions having the metric, in index order, then those without it.
        rows: list[tuple[Any, ...]] = []
        if after is None or after[0] is not None:
            rows = _fetch(conn, _version_plan(spec, "inner"), where, after, page_size + 1)
        if len(rows) <= page_size:
            rest_after = after[1:] if after is not None and after[0] is None else None
            rest = _fetch(conn, _version_plan(spec, "absent"), where, rest_after,
                          page_size + 1 - len(rows))
            rows += [(None, *row) for row in rest]
    else:
        rows = _fetch(conn, plan, where, after, page_size + 1)

    ids = [int(row[-1]) for row in rows[:page_size]]
    if len(rows) <= page_size:
        return ids, None
    return ids, _encode_cursor(entity=entity, spec=spec, listing=listing, plan=plan,
                               row=rows[page_size - 1], secret=secret)


def search_versions(
    conn: Connection,
    *,
    filter: str | None = None,
    order_by: str | None = None,
    page_size: int,
    cursor: str | None = None,
    secret: bytes,
    max_page_size: int,
    model_id: int | None = None,
    plan: PlanChoice = "auto",
) -> tuple[list[int], str | None]:
    """One page of version ids matching ``filter``, in ``order_by`` order.

    ``model_id`` restricts the search to one model's versions. ``plan`` forces a plan
    shape (for tests and benchmarks; every shape returns the same rows in the same order).
    Returns the ids (``versions.id``) and the cursor of the next page, or ``None`` on the
    last page.
    Raises :class:`~regista.errors.FilterSyntaxError` (filter or order_by),
    :class:`~regista.errors.InvalidCursor`, or :class:`~regista.errors.BadRequest`
    when ``page_size`` is outside ``1..max_page_size``.
    """
    return _search(conn, "versions", filter=filter, order_by=order_by, page_size=page_size,
                   cursor=cursor, secret=secret, max_page_size=max_page_size,
                   model_id=model_id, choice=plan)


def search_models(
    conn: Connection,
    *,
    filter: str | None = None,
    order_by: str | None = None,
    page_size: int,
    cursor: str | None = None,
    secret: bytes,
    max_page_size: int,
) -> tuple[list[int], str | None]:
    """One page of model ids (``models.id``) matching ``filter``; see :func:`search_versions`.

    Archived models are included unless the filter says ``archived = false``.
    """
    return _search(conn, "models", filter=filter, order_by=order_by, page_size=page_size,
                   cursor=cursor, secret=secret, max_page_size=max_page_size)


def count_versions(conn: Connection, *, filter: str | None = None,
                   model_id: int | None = None) -> int:
    """How many versions match ``filter`` (within one model if ``model_id`` is given)."""
    stmt = sa.select(sa.func.count()).select_from(versions)
    where = compile_filter(filter, entity="versions")
    if where is not None:
        stmt = stmt.where(where)
    if model_id is not None:
        stmt = stmt.where(versions.c.model_id == model_id)
    return int(conn.execute(stmt).scalar_one())


def count_models(conn: Connection, *, filter: str | None = None) -> int:
    """How many models match ``filter``."""
    stmt = sa.select(sa.func.count()).select_from(models)
    where = compile_filter(filter, entity="models")
    if where is not None:
        stmt = stmt.where(where)
    return int(conn.execute(stmt).scalar_one())
