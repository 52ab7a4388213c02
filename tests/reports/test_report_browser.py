"""The HTML report rendered by a real browser: headless Debian Chromium driven by Playwright.

The page must draw its three charts (non-empty SVG geometry a person can see) and make no network
request at all: every resource it needs is inside the file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from reports.build import build
from reports.html import render
from tests.reports.test_report import seeded

CHROMIUM = os.environ.get("LIFEVAULT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI_REQUIRE_BROWSER"),
    reason="Debian's chromium is not installed (make test installs it where apt-get is available)",
)


def test_browser_draws_three_charts_and_makes_no_request(vault, tmp_path):
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "privacy.html"
    page_file.write_text(render(build(seeded(vault, tmp_path))), encoding="utf-8")
    requests: list[str] = []
    console_errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            # a resource blocked by the page's Content-Security-Policy shows up here, not as a request
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.goto(page_file.as_uri(), wait_until="load")
            charts = page.eval_on_selector_all(
                "svg.chart",
                """els => els.map(s => ({
                    id: s.id,
                    box: s.getBoundingClientRect().width * s.getBoundingClientRect().height,
                    marks: s.querySelectorAll('polyline,path,circle,rect,line').length,
                    points: s.querySelectorAll('circle').length,
                    drawn: [...s.querySelectorAll('polyline,path')].reduce((n, e) => n + e.getTotalLength(), 0),
                }))""",
            )
            summary = page.inner_text("#summary")
            png = page.screenshot(full_page=True)
        finally:
            browser.close()
    assert [c["id"] for c in charts] == ["chart-epsilon", "chart-access", "chart-volume"]
    for c in charts:
        assert c["box"] > 10_000 and c["marks"] > 3, c
    # seeded: two releases (a line with real length), accesses by two agents, usage volume
    assert charts[0]["drawn"] > 50 and charts[0]["points"] == 2
    assert charts[1]["points"] == 2 and charts[2]["points"] >= 1
    assert "privacy-protected model update" in summary
    assert len(png) > 10_000
    # the only request is the page itself: no fonts, images, scripts or beacons
    assert requests == [page_file.as_uri()]
    assert console_errors == []


# Geometry of the page as the browser lays it out: what overflows the viewport horizontally (outside a
# scrolling table box), and which chart texts fall outside their SVG's box (clipped labels).
LAYOUT = """() => {
    const vw = document.documentElement.clientWidth;
    const inScroller = e => e.closest('.scroll') !== null && !e.classList.contains('scroll');
    const overflowing = [...document.body.querySelectorAll('*')]
        .filter(e => !inScroller(e) && !e.closest('svg'))
        .filter(e => e.getBoundingClientRect().right > vw + 0.5 || e.getBoundingClientRect().left < -0.5)
        .map(e => e.tagName + '.' + e.className + ' ' + (e.textContent || '').slice(0, 40));
    const clipped = [];
    for (const svg of document.querySelectorAll('svg.chart')) {
        const box = svg.getBoundingClientRect();
        for (const t of svg.querySelectorAll('text')) {
            const r = t.getBoundingClientRect();
            if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
                clipped.push(svg.id + ': ' + t.textContent);
        }
    }
    const ticks = [...document.querySelectorAll('svg.chart text.tick')].map(t => t.textContent);
    const legends = [...document.querySelectorAll('ul.legend li')].map(li => ({
        text: li.textContent, full: li.scrollWidth <= li.clientWidth + 1}));
    const tickPx = Math.min(...[...document.querySelectorAll('svg.chart text.tick')]
        .map(t => t.getBoundingClientRect().height));
    return {scrollWidth: document.documentElement.scrollWidth, vw, overflowing, clipped, ticks, legends, tickPx};
}"""


def _layouts(page_file: Path, widths: tuple[int, ...], shots: Path) -> dict[int, dict]:
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for width in widths:
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(page_file.as_uri(), wait_until="load")
                out[width] = page.evaluate(LAYOUT)
                png = page.screenshot(full_page=True)
                (shots / f"{page_file.stem}-{width}.png").write_bytes(png)
                out[width]["png"] = len(png)
                page.close()
        finally:
            browser.close()
    return out


def _large_report(vault, tmp_path):
    """The seeded report with a month volume in the tens of thousands and long source names."""
    report = build(seeded(vault, tmp_path))
    months = [f"2025-{m:02d}" for m in range(1, 13)] + ["2026-01", "2026-02"]
    report["inventory"]["volume_by_month"] = [
        {"format": fmt, "month": m, "rows": 11_500 + 37 * i + (900 if fmt.startswith("g") else 0)}
        for fmt in ("google_timeline_semantic_location_history", "android_digital_wellbeing_usage_events")
        for i, m in enumerate(months)]
    return report


def test_report_fits_a_desktop_and_a_phone_with_readable_unclipped_axes(vault, tmp_path):
    page_file = tmp_path / "large.html"
    page_file.write_text(render(_large_report(vault, tmp_path)), encoding="utf-8")
    layouts = _layouts(page_file, (1280, 390), tmp_path)
    for width, lay in layouts.items():
        assert lay["scrollWidth"] <= lay["vw"], (width, lay["overflowing"])
        assert lay["overflowing"] == [], width
        assert lay["clipped"] == [], width  # every tick, axis title and the budget label inside its chart
        assert lay["png"] > 10_000
        assert lay["tickPx"] >= 9, width  # tick labels stay legible: the chart scrolls rather than shrink them
    ticks = layouts[1280]["ticks"]
    assert not [t for t in ticks if "e+" in t or "e-" in t]  # numbers written out, never 1.15e+04
    assert "15,000" in ticks and "5,000" in ticks, ticks
    assert "Jan 2025" in ticks and "Jan 2026" in ticks  # months as dates, the year where it changes
    legends = [li["text"] for li in layouts[390]["legends"]]
    assert "google_timeline_semantic_location_history" in legends  # whole names, wrapped when needed
    assert all(li["full"] for li in layouts[390]["legends"])


def test_an_empty_chart_is_one_line_not_an_empty_box(vault, tmp_path):
    page_file = tmp_path / "empty.html"
    page_file.write_text(render(build(vault)), encoding="utf-8")  # a new vault: no data, no reads, no releases
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(page_file.as_uri(), wait_until="load")
            empties = page.eval_on_selector_all(
                "p.empty", "els => els.map(e => ({id: e.id, h: e.getBoundingClientRect().height, t: e.textContent}))")
            svgs = page.eval_on_selector_all("svg.chart", "els => els.length")
        finally:
            browser.close()
    assert svgs == 0
    assert [e["id"] for e in empties] == ["chart-epsilon", "chart-access", "chart-volume"]
    for e in empties:
        assert e["h"] < 40 and e["t"].endswith("no data yet.")  # one line of text
