"""Tiny inline-SVG charts (no scripts, no external requests): a multi-series line chart.

Axes are meant to be read: y ticks at round steps written out in full (12,000, never 1.2e+04), the left margin
sized to the widest tick label, at most MAX_X_TICKS x ticks with dates written as dates (the year shown once,
and again when it changes); the legend is an HTML list under the chart, so long series names wrap instead of
being cut; a chart without data is one line of text, not an empty box. On a phone the chart shrinks to
at most MIN_CHART_PX wide (labels stay about 9 px) and scrolls sideways inside its own box beyond that.
"""

from __future__ import annotations

import math
import re
from datetime import date
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4d7c0f", "#be185d", "#64748b")
W, H, RIGHT, TOP, BOTTOM = 720, 300, 64, 16, 52
FONT_PX = 12  # tick labels
CHAR_PX = 7.2  # a generous width of one digit or letter at FONT_PX in a sans-serif font
MAX_X_TICKS = 7
MAX_Y_TICKS = 6
MIN_CHART_PX = 540  # the narrowest a chart is drawn (reports/html.py's CSS); narrower screens scroll it
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")


def nice_ticks(top: float, *, count: int = MAX_Y_TICKS) -> list[float]:
    """0 and round steps (1, 2, 2.5 or 5 times a power of ten) up to the first tick at or above `top`."""
    if not top > 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / max(1, count - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def tick_label(v: float) -> str:
    """A tick value in full, with thousands separators; decimals only where the step needs them."""
    if v == int(v):
        return f"{int(v):,}"
    return f"{v:,.2f}".rstrip("0").rstrip(".")


def x_labels(xs: list[str]) -> list[str]:
    """Short date labels: ISO days as '27 Oct', months as 'Oct'; the year on the first and where it changes."""
    out, year = [], None
    for x in xs:
        try:
            if _DAY.match(x):
                d = date.fromisoformat(x)
                out.append(f"{d.day} {d:%b}" + (f" {d.year}" if d.year != year else ""))
            elif _MONTH.match(x):
                d = date.fromisoformat(x + "-01")
                out.append(f"{d:%b}" + (f" {d.year}" if d.year != year else ""))
            else:
                out.append(x)
                continue
        except ValueError:
            out.append(x)
            continue
        year = d.year
    return out


def _natural(x: str) -> list[tuple[int, int | str]]:
    """'r2' before 'r10'; ISO dates keep their order."""
    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.findall(r"\d+|\D+", x)]


def _legend(names: list[str]) -> str:
    items = "".join(f'<li><span class="swatch" style="background:{PALETTE[n % len(PALETTE)]}"></span>{escape(name)}</li>'
                    for n, name in enumerate(names))
    return f'<ul class="legend">{items}</ul>'


def line_chart(
    series: dict[str, list[tuple[str, float]]],
    *,
    title: str,
    y_label: str,
    x_label: str = "",
    hline: tuple[float, str] | None = None,
    chart_id: str,
) -> str:
    """Series name -> [(x label, y)]. X labels are categorical (sorted union); an optional horizontal line."""
    xs = sorted({x for pts in series.values() for x, _ in pts}, key=_natural)
    if not xs:
        return f'<p class="note empty" id="{escape(chart_id)}">{escape(title)}: no data yet.</p>'
    ys = [y for pts in series.values() for _, y in pts] + ([hline[0]] if hline else [])
    ticks = nice_ticks(max(ys) if ys else 0.0)
    ymax = ticks[-1]
    labels = [tick_label(v) for v in ticks]
    left = 28 + max(len(s) for s in labels) * CHAR_PX + 8  # the y title, the widest tick label, a gap
    pw, ph = W - left - RIGHT, H - TOP - BOTTOM

    def px(i: int) -> float:
        return left + (pw * i / (len(xs) - 1) if len(xs) > 1 else pw / 2)

    def py(y: float) -> float:
        return TOP + ph - ph * (y / ymax)

    parts = [f'<figure class="chart"><figcaption>{escape(title)}</figcaption><div class="scroll">'
             f'<svg class="chart" id="{escape(chart_id)}" role="img" aria-label="{escape(title)}" '
             f'viewBox="0 0 {W} {H}" width="{W}" height="{H}" xmlns="http://www.w3.org/2000/svg" '
             f'font-family="system-ui,sans-serif">',
             f"<title>{escape(title)}</title>"]
    for v, s in zip(ticks, labels, strict=True):
        parts.append(f'<line x1="{left:.1f}" y1="{py(v):.1f}" x2="{left + pw:.1f}" y2="{py(v):.1f}" stroke="#e5e7eb"/>')
        parts.append(f'<text class="tick" x="{left - 6:.1f}" y="{py(v) + 4:.1f}" text-anchor="end" '
                     f'font-size="{FONT_PX}">{s}</text>')
    parts.append(f'<line x1="{left:.1f}" y1="{TOP + ph}" x2="{left + pw:.1f}" y2="{TOP + ph}" stroke="#555"/>')
    parts.append(f'<line x1="{left:.1f}" y1="{TOP}" x2="{left:.1f}" y2="{TOP + ph}" stroke="#555"/>')
    shown = x_labels(xs)
    step = max(1, math.ceil(len(xs) / MAX_X_TICKS))
    for i in range(0, len(xs), step):
        anchor = "start" if len(xs) > 1 and i == 0 else "middle"
        parts.append(f'<text class="tick" x="{px(i):.1f}" y="{TOP + ph + 18}" text-anchor="{anchor}" '
                     f'font-size="{FONT_PX}">{escape(shown[i])}</text>')
    if x_label:
        parts.append(f'<text x="{left + pw / 2:.1f}" y="{H - 8}" text-anchor="middle" font-size="{FONT_PX}" '
                     f'fill="#555">{escape(x_label)}</text>')
    parts.append(f'<text x="16" y="{TOP + ph / 2:.1f}" transform="rotate(-90 16 {TOP + ph / 2:.1f})" '
                 f'text-anchor="middle" font-size="{FONT_PX}" fill="#555">{escape(y_label)}</text>')
    if hline:
        parts.append(f'<line class="limit" x1="{left:.1f}" y1="{py(hline[0]):.1f}" x2="{left + pw:.1f}" '
                     f'y2="{py(hline[0]):.1f}" stroke="#111" stroke-dasharray="6 4"/>')
        parts.append(f'<text x="{left + pw + 6:.1f}" y="{py(hline[0]) + 4:.1f}" font-size="{FONT_PX}">'
                     f'{escape(hline[1][:8])}</text>')
    index = {x: i for i, x in enumerate(xs)}
    names = sorted(series)
    for n, name in enumerate(names):
        color = PALETTE[n % len(PALETTE)]
        pts = sorted(series[name], key=lambda p: index[p[0]])
        coords = " ".join(f"{px(index[x]):.1f},{py(y):.1f}" for x, y in pts)
        parts.append(f'<polyline class="series" data-series="{escape(name)}" fill="none" stroke="{color}" '
                     f'stroke-width="2" points="{coords}"/>')
        for x, y in pts:
            parts.append(f'<circle cx="{px(index[x]):.1f}" cy="{py(y):.1f}" r="3" fill="{color}">'
                         f"<title>{escape(name)} {escape(x)}: {tick_label(y)}</title></circle>")
    parts.append("</svg></div>")
    parts.append(_legend(names))
    parts.append("</figure>")
    return "".join(parts)
