"""Time, in one place, so tests can pin it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

# Set only inside ``simulated_time`` (the demo writes months of history); a ContextVar so
# a simulation in one thread never leaks into requests served by others.
_source: ContextVar[Callable[[], datetime] | None] = ContextVar("regista_clock", default=None)


def utcnow() -> datetime:
    source = _source.get()
    return source() if source is not None else datetime.now(UTC)


@contextmanager
def simulated_time(source: Callable[[], datetime]) -> Iterator[None]:
    """Within the block (and this thread), :func:`utcnow` answers ``source()``."""
    token = _source.set(source)
    try:
        yield
    finally:
        _source.reset(token)


def parse_instant(text: str, *, field: str = "time") -> datetime:
    """Parse an ISO-8601 instant that names its time zone; naive or malformed is refused."""
    from regista.errors import Invalid

    if not isinstance(text, str) or len(text) > 64:
        raise Invalid(f"{field} must be an ISO-8601 time with a time zone",
                      details={"field": field})
    try:
        value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise Invalid(f"{field} {text!r} is not an ISO-8601 time", details={"field": field}) from None
    if value.tzinfo is None:
        raise Invalid(f"{field} {text!r} has no time zone (add Z or +00:00)",
                      details={"field": field})
    return value.astimezone(UTC)
