"""Server-side SVG: a metric across versions, and deployment timelines.

The charts are plain inline SVG built from escaped text (no scripts, no inline styles,
so the page's Content-Security-Policy holds); colours come from CSS classes. Each chart
carries a title and a description for screen readers, and every number it shows is
also on the page as text (tables), so nothing depends on seeing the picture.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

from markupsafe import Markup

from regista.web.render import fmt_metric, iso

_PALETTE = 8  # CSS classes series-0 … series-7


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _f(x: float) -> str:
    return f"{x:.1f}"


@dataclass(frozen=True, slots=True)
class Point:
    """One value of a metric: at version ``label`` (linking to ``href``)."""

    label: str
    value: float
    href: str | None = None


def _nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values covering [lo, hi] (about ``count`` intervals)."""
    if hi == lo:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)][:14]


def metric_chart(name: str, points: Sequence[Point], *, width: int = 360,
                 height: int = 180) -> Markup:
    """A line chart of one metric across versions (oldest left)."""
    title = f"{name} across versions"
    if not points:
        return Markup("")
    pad_l, pad_r, pad_t, pad_b = 52, 12, 14, 30
    values = [p.value for p in points]
    ticks = _nice_ticks(min(values), max(values))
    lo, hi = ticks[0], ticks[-1]
    span = (hi - lo) or 1.0
    plot_w = width - pad_l - pad_r
    plot_h = height - pad_t - pad_b
    n = len(points)

    def x(i: int) -> float:
        return pad_l + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y(v: float) -> float:
        return pad_t + plot_h * (1 - (v - lo) / span)

    desc = ", ".join(f"{p.label}: {fmt_metric(p.value)}" for p in points[:50])
    uid = "m" + hashlib.sha256(name.encode()).hexdigest()[:10]
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-labelledby="{uid}-t {uid}-d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{uid}-t">{_e(title)}</title><desc id="{uid}-d">{_e(desc)}</desc>',
    ]
    for t in ticks:
        ty = y(t)
        out.append(f'<line class="grid" x1="{pad_l}" x2="{width - pad_r}" y1="{_f(ty)}" '
                   f'y2="{_f(ty)}"/>')
        out.append(f'<text class="axis" x="{pad_l - 6}" y="{_f(ty + 4)}" '
                   f'text-anchor="end">{_e(fmt_metric(t))}</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{_f(x(i))},{_f(y(p.value))}"
                    for i, p in enumerate(points))
    out.append(f'<path class="line series-0" d="{path}" fill="none"/>')
    label_every = max(1, math.ceil(n / 8))
    for i, p in enumerate(points):
        cx, cy = _f(x(i)), _f(y(p.value))
        dot = (f'<circle class="dot series-0" cx="{cx}" cy="{cy}" r="4">'
               f'<title>{_e(p.label)}: {_e(fmt_metric(p.value))}</title></circle>')
        if p.href:
            dot = f'<a href="{_e(p.href)}">{dot}</a>'
        out.append(dot)
        if i % label_every == 0 or i == n - 1:
            out.append(f'<text class="axis" x="{cx}" y="{height - 10}" '
                       f'text-anchor="middle">{_e(p.label)}</text>')
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text node above is escaped


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of time a version served (``end`` None: still serving)."""

    label: str
    start: datetime
    end: datetime | None
    href: str | None = None
    series: int = 0
    title: str = ""


@dataclass(frozen=True, slots=True)
class Lane:
    """One row of a timeline (an environment, or a model within one)."""

    label: str
    segments: Sequence[Segment]
    href: str | None = None


def _month_ticks(start: datetime, end: datetime, max_ticks: int = 8) -> list[datetime]:
    span = end - start
    if span <= timedelta(days=3):
        step = timedelta(hours=max(1, math.ceil(span.total_seconds() / 3600 / max_ticks)))
        t = start.replace(minute=0, second=0, microsecond=0) + step
        out: list[datetime] = []
        while t < end and len(out) < max_ticks + 2:
            out.append(t)
            t += step
        return out
    if span <= timedelta(days=60):
        step = timedelta(days=max(1, math.ceil(span.days / max_ticks)))
        t = start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        out = []
        while t < end and len(out) < max_ticks + 2:
            out.append(t)
            t += step
        return out
    months = span.days / 30.4
    every = max(1, math.ceil(months / max_ticks))
    y, m = start.year, start.month + 1
    out = []
    while True:
        if m > 12:
            y, m = y + 1, m - 12
        t = datetime(y, m, 1, tzinfo=UTC)
        if t >= end or len(out) > max_ticks + 2:
            return out
        out.append(t)
        m += every


def timeline(lanes: Sequence[Lane], *, start: datetime, end: datetime,
             marker: datetime | None = None, marker_label: str = "as of",
             title: str = "Deployment timeline", width: int = 900) -> Markup:
    """Horizontal lanes of segments between ``start`` and ``end``, with an optional marker."""
    if not lanes or end <= start:
        return Markup("")
    label_w, pad_r, lane_h, top, bottom = 250, 16, 26, 18, 26
    height = top + lane_h * len(lanes) + bottom
    plot_w = width - label_w - pad_r
    total = (end - start).total_seconds()

    def x(t: datetime) -> float:
        t = min(max(t, start), end)
        return label_w + plot_w * (t - start).total_seconds() / total

    served = []
    for lane in lanes:
        for s in lane.segments:
            until = iso(s.end) if s.end else "now"
            served.append(f"{lane.label}: {s.label} from {iso(s.start)} until {until}")
    desc = "; ".join(served[:60]) or "nothing served in this period"
    uid = "tl" + hashlib.sha256(f"{title}|{iso(start)}|{len(lanes)}".encode()).hexdigest()[:10]
    out = [
        f'<svg class="timeline" viewBox="0 0 {width} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" role="img" '
        f'aria-labelledby="{uid}-t {uid}-d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{uid}-t">{_e(title)}</title><desc id="{uid}-d">{_e(desc)}</desc>',
    ]
    for t in _month_ticks(start, end):
        tx = _f(x(t))
        out.append(f'<line class="grid" x1="{tx}" x2="{tx}" y1="{top}" '
                   f'y2="{height - bottom + 4}"/>')
        label = iso(t)[:10] if (end - start) > timedelta(days=3) else iso(t)[11:16] + "Z"
        out.append(f'<text class="axis" x="{tx}" y="{height - 8}" '
                   f'text-anchor="middle">{_e(label)}</text>')
    for row, lane in enumerate(lanes):
        ly = top + row * lane_h
        text = lane.label if len(lane.label) <= 36 else lane.label[:35] + "…"
        name = (f'<text class="lane-label" x="4" y="{ly + 17}">{_e(text)}'
                f'<title>{_e(lane.label)}</title></text>')
        if lane.href:
            name = f'<a href="{_e(lane.href)}">{name}</a>'
        out.append(name)
        out.append(f'<line class="lane" x1="{label_w}" x2="{width - pad_r}" '
                   f'y1="{ly + lane_h - 2}" y2="{ly + lane_h - 2}"/>')
        for s in lane.segments:
            if s.end is not None and s.end <= start:
                continue
            if s.start >= end:
                continue
            x0 = x(s.start)
            x1 = x(s.end or end)
            w = max(x1 - x0, 2.0)
            until = iso(s.end) if s.end else "now"
            tip = s.title or f"{s.label}: {iso(s.start)} to {until}"
            rect = (f'<rect class="seg series-{s.series % _PALETTE}" x="{_f(x0)}" '
                    f'y="{ly + 4}" width="{_f(w)}" height="{lane_h - 10}" rx="3">'
                    f'<title>{_e(tip)}</title></rect>')
            if w > 7 * len(s.label) + 6:
                rect += (f'<text class="seg-label" x="{_f(x0 + 4)}" y="{ly + 17}">'
                         f'{_e(s.label)}</text>')
            if s.href:
                rect = f'<a href="{_e(s.href)}">{rect}</a>'
            out.append(rect)
    if marker is not None and start <= marker <= end:
        mx = _f(x(marker))
        out.append(f'<line class="marker" x1="{mx}" x2="{mx}" y1="{top - 2}" '
                   f'y2="{height - bottom + 4}"/>')
        near_end = x(marker) > width - pad_r - 60
        anchor, dx = ("end", -4) if near_end else ("start", 4)
        out.append(f'<text class="marker-label" x="{mx}" y="12" '
                   f'text-anchor="{anchor}" dx="{dx}">{_e(marker_label)}</text>')
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text node above is escaped
