"""The report as one self-contained HTML page: plain-language summary first, then charts and tables."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from reports.build import group_volume
from reports.svg import line_chart

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:980px;margin:2rem auto;padding:0 1rem;color:#111}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
.summary{background:#f1f5f9;border-radius:8px;padding:1rem 1.4rem;font-size:1.05rem;line-height:1.6}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.6rem 0}th,td{border-bottom:1px solid #e5e7eb;padding:.3rem .5rem;text-align:left}
th{background:#f8fafc}.ok{color:#166534;font-weight:600}.bad{color:#b91c1c;font-weight:600}.note{color:#555;font-size:.9rem}
"""


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    if not rows:
        return '<p class="note">None.</p>'
    head = "".join(f"<th>{escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def render(report: dict[str, Any]) -> str:
    prv, acc, inv, integ = report["privacy"], report["access"], report["inventory"], report["integrity"]
    eps_series: dict[str, list[tuple[str, float]]] = {}
    for r in prv["releases"]:
        eps_series.setdefault(str(r["epsilon_label"]), []).append((f"r{r['seq']}", float(r["epsilon_after"])))
    access_series: dict[str, list[tuple[str, float]]] = {}
    for a in acc["requests_per_agent_per_day"]:
        access_series.setdefault(a["agent"], []).append((a["day"], float(a["requests"])))
    volume = {fmt: sorted((m, float(n)) for m, n in months.items()) for fmt, months in group_volume(inv["volume_by_month"]).items()}
    b = prv["budget"]
    chains = "".join(
        f'<li>{escape(name)}: <span class="{"ok" if c["ok"] else "bad"}">'
        f'{"intact" if c["ok"] else "BROKEN at record " + str(c["first_broken"])}</span> ({c["records"]} records)</li>'
        for name, c in integ["chains"].items()
    )
    emp = report.get("empirical_audit")
    emp_html = (_table([emp], sorted(emp)) if emp else
                '<p class="note">No empirical privacy audit has been run on this device yet (`lifevault audit dp`).</p>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>lifevault privacy report</title><style>{CSS}</style></head>
<body>
<h1>lifevault privacy report</h1>
<p class="note">Generated {escape(report["generated_at"])}. This page contains counts, dates and settings only — no personal data.</p>
<div class="summary" id="summary">{"".join(f"<p>{escape(s)}</p>" for s in report["summary"])}</div>

<h2>Privacy budget</h2>
<p>Each model update that leaves the device is protected with differential privacy. The privacy unit is
{escape(prv["privacy_unit"])}. Lifetime budget: epsilon {b["epsilon"]:g} at delta {b["delta"]:g};
spent {b["spent"]:.3f}; remaining {b["remaining"]:.3f}; renewal: {escape(b["renewal"])}.</p>
{line_chart(eps_series, title="Epsilon spent over time against the budget", y_label="epsilon", hline=(float(b["epsilon"]), "budget"), chart_id="chart-epsilon")}
<h3>Releases</h3>
{_table(prv["releases"], ["at", "round", "model_id", "mode", "mechanism", "clip_norm", "noise_multiplier", "sampling", "delta", "epsilon_after", "epsilon_after_rdp", "epsilon_label"])}
<h3>Epsilon under each trust assumption</h3>
{_table(prv["epsilon_by_trust_assumption"], ["assumption", "trusting", "epsilon"])}
<h3>Refused at the budget limit</h3>
{_table(prv["refusals"], ["at", "round", "model_id", "epsilon_spent", "epsilon_would_be", "budget_epsilon"])}

<h2>Who read what</h2>
{line_chart(access_series, title="Requests per agent per day", y_label="requests", chart_id="chart-access")}
{_table(acc["tokens"], ["agent", "token_id", "scopes", "purpose", "requests", "rows_returned", "refusals", "endpoints"])}
<h3>Tokens created and revoked</h3>
{_table(acc["tokens_created"] + acc["tokens_revoked"], ["at", "token_id", "agent", "scopes", "purpose"])}

<h2>Data held</h2>
{line_chart(volume, title="Records by source per month", y_label="records", chart_id="chart-volume")}
{_table(inv["tables"], ["table", "rows", "from", "to"])}
<h3>Encryption</h3>
{_table([report["encryption"]], ["cipher", "kdf", "last_rotation", "passphrase_changed_at", "retention"])}

<h2>Deletions</h2>
{_table(report["deletions"], ["at", "kind", "by", "items"])}

<h2>Integrity</h2>
<ul>{chains}</ul>
{_table([{"library": k, "version": v} for k, v in integ["versions"].items()], ["library", "version"])}

<h2>Empirical privacy audit</h2>
{emp_html}
</body></html>
"""
