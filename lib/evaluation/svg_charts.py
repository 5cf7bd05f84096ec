"""Small inline SVG charts for the evidence report (lib/evaluation/html_report.py).

Pure functions that return an `<svg>` element as a string, to be pasted into an HTML5 page: no
xmlns (inline SVG in HTML does not need one, and the page must name no http(s) address), no
script, no external reference. Every label is escaped with html.escape(quote=True).

Numbers from data are never trusted: None, NaN, +-inf and non-numbers are skipped (a bar is drawn
empty and labelled "n/a"; a line-chart point or marker is left out), huge finite magnitudes are
clamped to +-_LIMIT, and every coordinate goes through `_num`, so no "nan" or "inf" can reach an
attribute.
The viewBox has a fixed width (the page scales it); a bar chart grows one row per bar.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

WIDTH = 640
LINE_HEIGHT = 300
_LIMIT = 1e12  # larger magnitudes are clamped: their differences must stay finite
_COLORS = ("#0969da", "#bc4c00", "#1a7f37", "#8250df")
_MARK = "#cf222e"
_FONT = 'font-family="system-ui, sans-serif" font-size="12"'
_TEXT = _FONT + ' fill="#1f2328"'


def _escape(text: object) -> str:
    return html.escape(str(text), quote=True).replace("\r", "&#13;")


def finite(value: object) -> float | None:
    """`value` as a float clamped to +-_LIMIT, or None when it is missing, NaN, +-inf or not a
    number."""
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(number):
        return None
    return max(-_LIMIT, min(_LIMIT, number))


def _num(value: float) -> str:
    """A coordinate: one decimal, and "0" for anything non-finite (never reached, a last guard)."""
    return f"{value:.1f}" if math.isfinite(value) else "0"


def _tick_label(value: float) -> str:
    return f"{value:.3g}"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _open(height: float, title: str) -> str:
    """The <svg> start tag, its tooltip title and the heading drawn at the top."""
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {_num(height)}" role="img" '
        f'aria-label="{_escape(title)}"><title>{_escape(title)}</title>'
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" {_TEXT} font-weight="600">'
        f"{_escape(_short(title, 90))}</text>"
    )


def bar_chart(
    labels: Sequence[str], values: Sequence[object], *, title: str, max_value: float = 1.0
) -> str:
    """Horizontal bars, one per label, scaled 0 .. max_value (values outside are clamped); a
    missing or non-finite value gets no bar and the label "n/a". Ticks at quarters of the scale."""
    top = 44.0
    row, left, span = 22.0, 210.0, 350.0
    scale = finite(max_value)
    scale = scale if scale is not None and scale > 0 else 1.0
    height = top + max(len(labels), 1) * row + 12
    parts = [_open(height, title)]
    for k in range(5):
        x = left + span * k / 4
        parts.append(
            f'<line x1="{_num(x)}" y1="{_num(top - 4)}" x2="{_num(x)}" y2="{_num(height - 12)}" '
            'stroke="#d0d7de" stroke-width="1"/>'
            f'<text x="{_num(x)}" y="{_num(top - 8)}" text-anchor="middle" {_TEXT}>'
            f"{_tick_label(scale * k / 4)}</text>"
        )
    if not labels:
        parts.append(f'<text x="{_num(left)}" y="{_num(top + 15)}" {_TEXT}>no data</text>')
    for index, label in enumerate(labels):
        value = finite(values[index]) if index < len(values) else None
        y = top + index * row
        name = _escape(_short(str(label), 22))
        parts.append(
            f"<g><title>{_escape(label)}: {'n/a' if value is None else f'{value:.3f}'}</title>"
            f'<text x="{_num(left - 8)}" y="{_num(y + 15)}" text-anchor="end" {_TEXT}>{name}</text>'
        )
        if value is None:
            parts.append(f'<text x="{_num(left + 4)}" y="{_num(y + 15)}" {_TEXT}>n/a</text></g>')
            continue
        width = span * max(0.0, min(1.0, value / scale))
        parts.append(
            f'<rect x="{_num(left)}" y="{_num(y + 3)}" width="{_num(width)}" height="{_num(row - 6)}"'
            f' fill="{_COLORS[0]}"/><text x="{_num(left + width + 4)}" y="{_num(y + 15)}" {_TEXT}>'
            f"{value:.3f}</text></g>"
        )
    return "".join(parts) + "</svg>"


def _range(values: Sequence[float]) -> tuple[float, float]:
    """(low, high) covering the values, widened when they are all equal (or there are none)."""
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    if high - low < 1e-12:
        pad = max(abs(low) * 0.1, 0.5)
        return low - pad, high + pad
    return low, high


def clean_points(points: Sequence[tuple[object, object]]) -> list[tuple[float, float]]:
    """The (x, y) pairs whose coordinates are both finite numbers (clamped), sorted by x."""
    kept = []
    for point in points:
        x, y = finite(point[0]), finite(point[1])
        if x is not None and y is not None:
            kept.append((x, y))
    return sorted(kept)


def _axes(box: tuple[float, float, float, float], xs: tuple, ys: tuple, labels: tuple) -> str:
    """Frame, five ticks per axis (with grid lines) and the two axis labels."""
    left, top, right, bottom = box
    parts = [
        f'<rect x="{_num(left)}" y="{_num(top)}" width="{_num(right - left)}" '
        f'height="{_num(bottom - top)}" fill="none" stroke="#8c959f" stroke-width="1"/>'
    ]
    for k in range(5):
        x = left + (right - left) * k / 4
        y = bottom - (bottom - top) * k / 4
        x_value = xs[0] + (xs[1] - xs[0]) * k / 4
        y_value = ys[0] + (ys[1] - ys[0]) * k / 4
        parts.append(
            f'<line x1="{_num(x)}" y1="{_num(top)}" x2="{_num(x)}" y2="{_num(bottom)}" '
            f'stroke="#eaeef2"/><text x="{_num(x)}" y="{_num(bottom + 16)}" '
            f'text-anchor="middle" {_TEXT}>{_tick_label(x_value)}</text>'
            f'<line x1="{_num(left)}" y1="{_num(y)}" x2="{_num(right)}" y2="{_num(y)}" '
            f'stroke="#eaeef2"/><text x="{_num(left - 6)}" y="{_num(y + 4)}" '
            f'text-anchor="end" {_TEXT}>{_tick_label(y_value)}</text>'
        )
    x_label, y_label = (_escape(_short(str(label), 60)) for label in labels)
    middle = (top + bottom) / 2
    parts.append(
        f'<text x="{_num((left + right) / 2)}" y="{_num(bottom + 36)}" text-anchor="middle" '
        f'{_TEXT}>{x_label}</text><text x="14" y="{_num(middle)}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_num(middle)})" {_TEXT}>{y_label}</text>'
    )
    return "".join(parts)


def line_chart(
    series: Sequence[tuple[str, Sequence[tuple[object, object]]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    marker_x: float | None = None,
) -> str:
    """One line (with a dot per point) for each (name, points) series on shared axes, a legend,
    and a dashed vertical line at `marker_x` when it is finite. Points with a missing or
    non-finite coordinate are skipped; with no point left the axes say "no data"."""
    box = left, top, right, bottom = 70.0, 56.0, WIDTH - 20.0, LINE_HEIGHT - 50.0
    cleaned = [(str(name), clean_points(points)) for name, points in series]
    marker = finite(marker_x)
    xs = _range(
        [x for _, pts in cleaned for x, _ in pts] + ([marker] if marker is not None else [])
    )
    ys = _range([y for _, pts in cleaned for _, y in pts])

    def px(x: float) -> str:
        return _num(left + (right - left) * (x - xs[0]) / (xs[1] - xs[0]))

    def py(y: float) -> str:
        return _num(bottom - (bottom - top) * (y - ys[0]) / (ys[1] - ys[0]))

    parts = [_open(LINE_HEIGHT, title), _axes(box, xs, ys, (x_label, y_label))]
    if not any(pts for _, pts in cleaned):
        parts.append(f'<text x="{_num(left + 10)}" y="{_num(top + 20)}" {_TEXT}>no data</text>')
    if marker is not None:
        x = px(marker)
        anchor = "end" if float(x) > right - 60 else "start" if float(x) < left + 60 else "middle"
        parts.append(
            f'<line x1="{x}" y1="{_num(top)}" x2="{x}" y2="{_num(bottom)}" '
            f'stroke="{_MARK}" stroke-dasharray="4 3"/><text x="{x}" '
            f'y="{_num(top - 4)}" text-anchor="{anchor}" {_FONT} fill="{_MARK}">'
            f"chosen {_tick_label(marker)}</text>"
        )
    for index, (name, pts) in enumerate(cleaned):
        color, key_x = _COLORS[index % len(_COLORS)], left + 170 * index
        if len(pts) > 1:
            coords = " ".join(f"{px(x)},{py(y)}" for x, y in pts)
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
        parts += [f'<circle cx="{px(x)}" cy="{py(y)}" r="2.5" fill="{color}"/>' for x, y in pts]
        parts.append(
            f'<line x1="{_num(key_x)}" y1="30" x2="{_num(key_x + 16)}" y2="30" stroke="{color}" '
            f'stroke-width="2"/><text x="{_num(key_x + 20)}" y="34" {_TEXT}>'
            f"{_escape(_short(name, 24))}</text>"
        )
    return "".join(parts) + "</svg>"
