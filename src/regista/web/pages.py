"""View helpers of the web pages: filters from form fields, comparisons, instants.

Pure functions over domain objects; the routes call services and hand the results here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from regista.domain.models import Version
from regista.errors import Invalid

MODEL_SORTS = {
    "name": "name asc",
    "-name": "name desc",
    "-updated": "updated_at desc",
    "-created": "created_at desc",
    "created": "created_at asc",
}
VERSION_SORTS = {
    "-number": "number desc",
    "number": "number asc",
    "-created": "created_at desc",
}
STAGES = ("registered", "staging", "production", "archived")


def quote_string(value: str) -> str:
    """A string literal of the filter language (single quotes, backslash escapes)."""
    escaped = (value.replace("\\", "\\\\").replace("'", "\\'")
               .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
    return f"'{escaped}'"


def quote_key(key: str) -> str:
    """A tag key as a quoted field segment (``tags."my key"``)."""
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def model_filter(*, q: str | None, stage: str | None, team: str | None,
                 risk_tier: str | None, tag: str | None, archived: str | None) -> str | None:
    """One filter expression from the catalogue's search box and its drop-downs.

    The search box takes the filter language itself (``risk_tier = 'high' AND …``); a
    bare word without an operator searches names and descriptions instead.
    """
    terms: list[str] = []
    text = (q or "").strip()
    if text:
        if _looks_like_filter(text):
            terms.append(f"({text})")
        else:
            pattern = quote_string(f"%{_escape_like(text)}%")
            terms.append(f"(name ILIKE {pattern} OR description ILIKE {pattern})")
    if stage:
        terms.append(f"stage = {quote_string(stage)}")
    if team:
        terms.append(f"team = {quote_string(team)}")
    if risk_tier:
        terms.append(f"risk_tier = {quote_string(risk_tier)}")
    if tag:
        key, sep, value = tag.partition("=")
        key = key.strip()
        if not key:
            raise Invalid("tag filter must look like key=value or key", details={"field": "tag"})
        field = f"tags.{quote_key(key)}"
        terms.append(f"{field} = {quote_string(value.strip())}" if sep else f"{field} IS NOT NULL")
    if archived == "only":
        terms.append("archived = true")
    elif archived != "include":
        terms.append("archived = false")
    return " AND ".join(terms) or None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_OPERATORS = ("=", "<", ">", " like ", " ilike ", " in ", " is ", "!=")


def _looks_like_filter(text: str) -> bool:
    lowered = f" {text.lower()} "
    return any(op in lowered for op in _OPERATORS)


def parse_as_of(value: str | None) -> datetime | None:
    """An instant from the "as of" picker: ``datetime-local`` (read as UTC) or ISO 8601."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if len(text) > 64:
        raise Invalid("as_of is too long", details={"field": "as_of"})
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"as_of {text!r} is not a date and time (use 2026-03-02T10:15 or ISO 8601)",
                      details={"field": "as_of"}) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def datetime_local(value: datetime | None) -> str:
    """The value attribute of a ``datetime-local`` input (UTC, to the second)."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def key_metrics(versions: Iterable[Version], limit: int = 4) -> list[str]:
    """The metric names most versions carry (ties by name), for table columns."""
    counts: Counter[str] = Counter()
    for v in versions:
        counts.update(v.metrics.keys())
    return [name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def flatten(value: Any, prefix: str = "", out: dict[str, Any] | None = None,
            depth: int = 0) -> dict[str, Any]:
    """Nested dictionaries as dotted keys (``training_data.uri``); lists stay values."""
    out = {} if out is None else out
    if isinstance(value, dict) and value and depth < 8:
        for k, v in value.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out, depth + 1)
    else:
        out[prefix] = value
    return out


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        import orjson

        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()[:2000]
    return str(value)


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a comparison: a key and each version's value (None: absent)."""

    key: str
    values: list[Any]
    differs: bool


def compare_rows(versions: Sequence[Version]) -> dict[str, list[Row]]:
    """Side-by-side rows: general facts, provenance, metrics and files."""
    def rows(dicts: list[dict[str, Any]], keys: Iterable[str] | None = None) -> list[Row]:
        all_keys = list(keys) if keys is not None else sorted({k for d in dicts for k in d})
        out = []
        for key in all_keys:
            values = [d.get(key) for d in dicts]
            shown = [_show(v) if v is not None else None for v in values]
            out.append(Row(key, values, len(set(shown)) > 1))
        return out

    general = [
        {"stage": v.stage, "digest": v.digest, "created_at": v.created_at,
         "created_by": v.created_by, "parent": v.parent, "files": v.file_count,
         "total_size": v.total_size, "aliases": ", ".join(v.aliases) or None,
         "description": v.description or None}
        for v in versions
    ]
    provenance = [flatten({k: val for k, val in v.provenance.items() if k != "metrics"})
                  for v in versions]
    metrics = [dict(v.metrics) for v in versions]
    files = [{f.path: f for f in v.files} for v in versions]
    file_rows = []
    for path in sorted({p for d in files for p in d}):
        entries = [d.get(path) for d in files]
        keys = {(e.digest, e.role) if e else None for e in entries}
        file_rows.append(Row(path, entries, len(keys) > 1))
    return {
        "general": rows(general, list(general[0].keys()) if general else []),
        "provenance": [r for r in rows(provenance) if r.key],
        "metrics": rows(metrics),
        "files": file_rows,
    }


def show(value: Any) -> str:
    """A provenance value as text (JSON for lists and objects)."""
    return _show(value)
