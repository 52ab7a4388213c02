"""The report as one self-contained HTML page: plain-language summary first, then charts and tables.

Rendered from reports/templates/report.html.j2 by jinja2 with autoescaping on: every value from the report is
escaped by the engine; only the inline SVG charts (reports/svg.py escapes its own labels) are marked safe.
"""

from __future__ import annotations

import json
from typing import Any

from reports.build import group_volume
from reports.svg import MIN_CHART_PX, line_chart

TEMPLATE = "report.html.j2"
CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:980px;margin:2rem auto;padding:0 1rem;color:#111}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
.summary{background:#f1f5f9;border-radius:8px;padding:1rem 1.4rem;font-size:1.05rem;line-height:1.6}
.scroll{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.6rem 0}th,td{border-bottom:1px solid #e5e7eb;padding:.3rem .5rem;text-align:left;vertical-align:top}
td{overflow-wrap:anywhere;min-width:4.5rem}
th{background:#f8fafc}.ok{color:#166534;font-weight:600}.bad{color:#b91c1c;font-weight:600}.note{color:#555;font-size:.9rem}
figure.chart{margin:1rem 0}figure.chart svg{display:block;width:100%;max-width:720px;min-width:%(min)dpx;height:auto}
figcaption{font-weight:600;font-size:.95rem;margin-bottom:.3rem}
ul.legend{list-style:none;padding:0;margin:.4rem 0;display:flex;flex-wrap:wrap;gap:.2rem 1.2rem;font-size:.85rem}
ul.legend li{display:flex;align-items:center;gap:.4rem;overflow-wrap:anywhere}
.swatch{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;flex:none}
p.empty{margin:.6rem 0}
@media (max-width:600px){body{margin:1rem auto}.summary{padding:.6rem .8rem}}
""".replace("%(min)d", str(MIN_CHART_PX))


def cell(v: Any) -> str:
    """A table cell's text (escaped by the template engine, never here)."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("reports", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=False, lstrip_blocks=False)
    env.filters["cell"] = cell
    return env


def render(report: dict[str, Any]) -> str:
    from markupsafe import Markup

    prv, acc, inv, integ = report["privacy"], report["access"], report["inventory"], report["integrity"]
    eps_series: dict[str, list[tuple[str, float]]] = {}
    for r in prv["releases"]:
        eps_series.setdefault(str(r["epsilon_label"]), []).append((f"r{r['seq']}", float(r["epsilon_after"])))
    access_series: dict[str, list[tuple[str, float]]] = {}
    for a in acc["requests_per_agent_per_day"]:
        access_series.setdefault(a["agent"], []).append((a["day"], float(a["requests"])))
    volume = {fmt: sorted((m, float(n)) for m, n in months.items())
              for fmt, months in group_volume(inv["volume_by_month"]).items()}
    b = prv["budget"]
    charts = {
        "epsilon": line_chart(eps_series, title="Epsilon spent over time against the budget", y_label="epsilon",
                              x_label="release", hline=(float(b["epsilon"]), "budget"), chart_id="chart-epsilon"),
        "access": line_chart(access_series, title="Requests per agent per day", y_label="requests",
                             x_label="day", chart_id="chart-access"),
        "volume": line_chart(volume, title="Records by source per month", y_label="records", x_label="month",
                             chart_id="chart-volume"),
    }
    return str(_environment().get_template(TEMPLATE).render(
        report=report, prv=prv, acc=acc, inv=inv, integ=integ, budget=b, css=Markup(CSS),
        charts={k: Markup(v) for k, v in charts.items()},
        versions=[{"library": k, "version": v} for k, v in integ["versions"].items()],
    ))
