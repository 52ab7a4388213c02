"""Tiny inline-SVG charts (no scripts, no external requests): a multi-series line chart."""

from __future__ import annotations

from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4d7c0f", "#be185d", "#64748b")
W, H, LEFT, RIGHT, TOP, BOTTOM = 720, 300, 56, 150, 24, 48


def line_chart(
    series: dict[str, list[tuple[str, float]]],
    *,
    title: str,
    y_label: str,
    hline: tuple[float, str] | None = None,
    chart_id: str,
) -> str:
    """Series name -> [(x label, y)]. X labels are categorical (sorted union); an optional horizontal line."""
    xs = sorted({x for pts in series.values() for x, _ in pts})
    ys = [y for pts in series.values() for _, y in pts] + ([hline[0]] if hline else [])
    parts = [f'<svg class="chart" id="{escape(chart_id)}" role="img" aria-label="{escape(title)}" '
             f'viewBox="0 0 {W} {H}" width="{W}" height="{H}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    if not xs:
        parts.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="empty">No data yet</text></svg>')
        return "".join(parts)
    ymax = max(ys) * 1.1 if ys and max(ys) > 0 else 1.0
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(i: int) -> float:
        return LEFT + (pw * i / (len(xs) - 1) if len(xs) > 1 else pw / 2)

    def py(y: float) -> float:
        return TOP + ph - ph * (y / ymax)

    parts.append(f'<line x1="{LEFT}" y1="{TOP + ph}" x2="{LEFT + pw}" y2="{TOP + ph}" stroke="#555"/>')
    parts.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + ph}" stroke="#555"/>')
    for k in range(5):
        v = ymax * k / 4
        parts.append(f'<text x="{LEFT - 6}" y="{py(v) + 4:.1f}" text-anchor="end" font-size="11">{v:.3g}</text>')
    step = max(1, len(xs) // 8)
    for i in range(0, len(xs), step):
        parts.append(f'<text x="{px(i):.1f}" y="{TOP + ph + 16}" text-anchor="middle" font-size="11">{escape(xs[i])}</text>')
    parts.append(f'<text x="14" y="{TOP + ph / 2}" transform="rotate(-90 14 {TOP + ph / 2})" text-anchor="middle" '
                 f'font-size="12">{escape(y_label)}</text>')
    if hline:
        parts.append(f'<line class="limit" x1="{LEFT}" y1="{py(hline[0]):.1f}" x2="{LEFT + pw}" y2="{py(hline[0]):.1f}" '
                     f'stroke="#111" stroke-dasharray="6 4"/>')
        parts.append(f'<text x="{LEFT + pw + 6}" y="{py(hline[0]) + 4:.1f}" font-size="11">{escape(hline[1])}</text>')
    index = {x: i for i, x in enumerate(xs)}
    for n, (name, pts) in enumerate(sorted(series.items())):
        color = PALETTE[n % len(PALETTE)]
        coords = " ".join(f"{px(index[x]):.1f},{py(y):.1f}" for x, y in sorted(pts, key=lambda p: index[p[0]]))
        parts.append(f'<polyline class="series" data-series="{escape(name)}" fill="none" stroke="{color}" '
                     f'stroke-width="2" points="{coords}"/>')
        for x, y in pts:
            parts.append(f'<circle cx="{px(index[x]):.1f}" cy="{py(y):.1f}" r="3" fill="{color}">'
                         f"<title>{escape(name)} {escape(x)}: {y:g}</title></circle>")
        parts.append(f'<rect x="{LEFT + pw + 8}" y="{TOP + 16 * n + 20}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{LEFT + pw + 22}" y="{TOP + 16 * n + 29}" font-size="11">{escape(name[:20])}</text>')
    parts.append("</svg>")
    return "".join(parts)
