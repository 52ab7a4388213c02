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
