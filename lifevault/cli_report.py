"""`lifevault report`: the privacy report for auditors, as JSON and/or a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lifevault.cli_common import HomeOpt, JsonOpt, PassFileOpt, emit_json, err, open_vault


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML page to this file.")] = None,
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Privacy report: data held, who read what, privacy budget spent, deletions, integrity.

    Example: lifevault report --html privacy.html --json > privacy.json
    """
    from reports.build import build
    from reports.html import render
    from vault.fsio import write_atomic

    with open_vault(home, passphrase_file) as vault:
        data = build(vault)
    for line in data["summary"]:
        err.print(line)
    if html is not None:
        write_atomic(html, render(data).encode(), mode=0o644)
        err.print(f"HTML report written to {html}")
    if json_out:
        emit_json(data)
