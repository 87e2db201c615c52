"""Units of the web layer: session cookies, Markdown, SVG, filters built from form fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from regista.errors import Invalid
from regista.service.filters import compile_filter
from regista.web import pages, svg
from regista.web.render import fmt_metric, human_size, iso, markdown_to_html
from regista.web.session import (
    SESSION_MAX_AGE,
    cookie_header,
    decode_session,
    encode_session,
    is_web_path,
    parse_cookies,
)

SECRET = b"k" * 32


def test_session_round_trip_and_tampering() -> None:
    value, session = encode_session(SECRET, user="ada", now=1_000_000)
    decoded = decode_session(SECRET, value, now=1_000_100)
    assert decoded == session and decoded.user == "ada" and decoded.token is None
    assert decode_session(b"other" * 8, value, now=1_000_100) is None
    body, sig = value.split(".")
    assert decode_session(SECRET, body + "x." + sig, now=1_000_100) is None
    # Every other last character: some change only base64 padding bits (same bytes),
    # and those must be refused too.
    for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_":
        if c != sig[-1]:
            assert decode_session(SECRET, body + "." + sig[:-1] + c, now=1_000_100) is None
    for junk in ("", "abc", "a.b.c", "%%%.%%%", "." * 5000):
        assert decode_session(SECRET, junk) is None


def test_session_expires() -> None:
    value, _ = encode_session(SECRET, token="rgst_x", now=1_000_000)
    assert decode_session(SECRET, value, now=1_000_000 + SESSION_MAX_AGE - 1) is not None
    assert decode_session(SECRET, value, now=1_000_000 + SESSION_MAX_AGE + 1) is None
    assert decode_session(SECRET, value, now=1_000_000 - 3600) is None  # issued in the future


def test_cookie_flags_and_parsing() -> None:
    header = cookie_header("s", "v", secure=True, max_age=60)
    assert header == "s=v; Path=/; SameSite=Lax; HttpOnly; Secure; Max-Age=60"
    assert "Secure" not in cookie_header("s", "v", secure=False, max_age=None)
    assert parse_cookies('a=1; b="2"; a=3; junk') == {"a": "1", "b": "2"}
    assert is_web_path("/") and is_web_path("/models/api") and is_web_path("/apiary")
    assert not is_web_path("/api") and not is_web_path("/api/v1/models")


def test_markdown_never_passes_raw_html_or_script_links() -> None:
    html = markdown_to_html("<script>alert(1)</script>\n\n[x](javascript:alert(1)) "
                            "[y](https://example.com) ![i](data:text/html,evil)\n\n"
                            '<a href="javascript:alert(2)">z</a>')
    assert "<script" not in html and "&lt;script&gt;" in html
    assert 'href="javascript:' not in html and 'href="https://example.com"' in html
    assert "<a href=\"javascript" not in html


def test_svg_escapes_labels_and_handles_edges() -> None:
    evil = '<script>x</script>"'
    chart = svg.metric_chart(evil, [svg.Point(evil, 0.5, "/a?b=1&c=2"), svg.Point("v2", 0.5)])
    assert "<script>" not in chart and "&lt;script&gt;" in chart
    assert 'href="/a?b=1&amp;c=2"' in chart
    assert svg.metric_chart("m", []) == ""
    assert "<svg" in svg.metric_chart("m", [svg.Point("v1", 3.0)])
    now = datetime(2026, 3, 1, tzinfo=UTC)
    lanes = [svg.Lane(evil, [svg.Segment(evil, now - timedelta(days=90), None, "/x"),
                             svg.Segment("old", now - timedelta(days=400), now - timedelta(days=300))])]
    timeline = svg.timeline(lanes, start=now - timedelta(days=120), end=now,
                            marker=now - timedelta(days=10))
    assert "<script>" not in timeline and 'class="marker"' in timeline
    assert "2026-01-01" in timeline  # month ticks
    assert svg.timeline([], start=now, end=now) == ""
    short = svg.timeline(lanes, start=now - timedelta(hours=6), end=now)
    assert "Z</text>" in short  # hour ticks on a short span


def test_ticks_cover_the_values() -> None:
    ticks = svg._nice_ticks(40.2, 46.9)
    assert ticks[0] <= 40.2 and ticks[-1] >= 46.9
    assert svg._nice_ticks(1.0, 1.0)[0] < 1.0 < svg._nice_ticks(1.0, 1.0)[-1]


def test_model_filter_from_form_fields_compiles() -> None:
    expr = pages.model_filter(q="fraud", stage="production", team="risk", risk_tier="high",
                              tag="it's=a \"b\"\\", archived=None)
    assert expr is not None
    compile_filter(expr, entity="models")  # valid filter language, values quoted
    assert "ILIKE" in expr and "archived = false" in expr
    assert pages.model_filter(q="risk_tier = 'low'", stage=None, team=None, risk_tier=None,
                              tag=None, archived="include") == "(risk_tier = 'low')"
    assert "IS NOT NULL" in (pages.model_filter(q=None, stage=None, team=None, risk_tier=None,
                                                tag="k", archived="only") or "")
    with pytest.raises(Invalid):
        pages.model_filter(q=None, stage=None, team=None, risk_tier=None, tag="=v",
                           archived=None)
    # A search word with LIKE wildcards matches them literally.
    assert "\\\\%" in (pages.model_filter(q="100%", stage=None, team=None, risk_tier=None,
                                          tag=None, archived=None) or "")


def test_as_of_parsing() -> None:
    assert pages.parse_as_of("2026-03-02T10:15") == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    assert pages.parse_as_of("2026-03-02T11:15+01:00") == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    assert pages.parse_as_of("2026-03-02T10:15:00Z") == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    assert pages.parse_as_of("") is None
    with pytest.raises(Invalid):
        pages.parse_as_of("yesterday")
    assert pages.datetime_local(datetime(2026, 3, 2, 10, 15, tzinfo=UTC)) == "2026-03-02T10:15:00"


def test_formatting() -> None:
    assert iso(datetime(2026, 3, 2, 11, 15, tzinfo=UTC)) == "2026-03-02T11:15:00Z"
    assert iso(None) == ""
    assert human_size(512) == "512 B" and human_size(1536) == "1.5 KiB"
    assert fmt_metric(0.912345) == "0.9123" and fmt_metric(1234567.0) == "1.235e+06"
    assert fmt_metric(3) == "3" and fmt_metric(None) == ""
