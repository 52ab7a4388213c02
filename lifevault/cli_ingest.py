"""Ingest commands: ingest, quarantine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lifevault.cli_common import (
    HomeOpt,
    JsonOpt,
    LazyChoice,
    PassFileOpt,
    choice,
    console,
    emit_json,
    err,
    open_vault,
)

if TYPE_CHECKING:
    from ingest.pipeline import RunReport


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.command("quarantine")(quarantine)


def _format_names() -> list[str]:
    from ingest.detect import formats

    return sorted(formats())


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Export files, folders, or Takeout .zip archives.")],
    kind: Annotated[str | None, typer.Option(help="Only sources of this kind.",
                                             click_type=choice("location", "calendar", "usage"))] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Force a source format.",
                                            click_type=LazyChoice(_format_names))] = None,
    strict: Annotated[bool, typer.Option(help="Exit non-zero (4) when any record was quarantined.")] = False,
    max_member_mib: Annotated[int | None, typer.Option(
        min=1, help="Largest uncompressed .zip member read, in MiB (default 4096).")] = None,
    max_member_ratio: Annotated[float | None, typer.Option(
        min=1, help="Largest compression ratio of a .zip member (default 100).")] = None,
    follow_links: Annotated[bool, typer.Option(
        help="Follow symbolic links to files inside the given folders (never outside them).")] = False,
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Ingest exports into the vault: detect, validate, deduplicate, load, derive.

    Example: lifevault ingest ~/Downloads/takeout-20251101.zip calendar.ics --strict
    """
    from ingest.detect import KINDS, formats, known_formats
    from ingest.files import DEFAULT_LIMITS, Limits
    from ingest.pipeline import StrictFailure, run

    if kind is not None and kind not in KINDS:
        raise typer.BadParameter(f"--kind must be one of {', '.join(KINDS)}")
    if fmt is not None and fmt not in formats():
        raise typer.BadParameter(f"unknown format {fmt!r} (one of {known_formats()})", param_hint="--format")
    limits = Limits(
        member_bytes=max_member_mib << 20 if max_member_mib else DEFAULT_LIMITS.member_bytes,
        member_ratio=max_member_ratio or DEFAULT_LIMITS.member_ratio,
        follow_links=follow_links,
    )
    from lifevault.cli_api import forward_if_served, forward_ingest

    if limits != DEFAULT_LIMITS and forward_if_served(home) is not None:
        raise typer.BadParameter("--max-member-mib, --max-member-ratio and --follow-links are not sent to a running "
                                 "server (it ingests with the default bounds); stop `lifevault serve` to use them")
    # a running `lifevault serve` owns the vault: send it the job
    if forward_ingest(home, paths, kind=kind, fmt=fmt, strict=strict, json_out=json_out):
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with open_vault(home, passphrase_file) as vault:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[rows]:,} records"),
                   TimeElapsedColumn())
        with Progress(*columns, console=console(), transient=True, disable=json_out or not err.is_terminal) as bar:
            task = bar.add_task("scanning", total=None, rows=0)
            done = {"rows": 0}

            def on_rows(name: str, n: int) -> None:
                done["rows"] += n
                bar.update(task, description=name, rows=done["rows"])

            try:
                report = run(vault, paths, kind=kind, fmt=fmt, strict=strict, progress=on_rows, limits=limits)
                failure = None
            except StrictFailure as e:
                report, failure = e.report, e
    _print_report(report)
    if json_out:
        emit_json(report.to_json())
    if failure is not None:
        raise failure


def _print_report(report: RunReport) -> None:
    from rich.table import Table

    table = Table(title=f"load {report.load_id}", show_lines=False)
    for col in ("file", "format", "loaded", "duplicates", "quarantined"):
        table.add_column(col, justify="right" if col in ("loaded", "duplicates", "quarantined") else "left")
    for f in report.files:
        table.add_row(f.file, f.format, f"{f.loaded:,}", f"{f.duplicates:,}", f"{f.quarantined:,}")
    table.add_row("total", "", f"{report.loaded:,}", f"{report.duplicates:,}", f"{report.quarantined:,}", style="bold")
    err.print(table)
    derived = ", ".join(f"{k} {v:,}" for k, v in report.derived.items())
    err.print(f"{report.seconds:.2f} s; derived: {derived}")
    if report.skipped:
        err.print(f"{len(report.skipped)} file(s) not recognised as an export and skipped")
    for path, why in report.not_read.items():
        err.print(f"not read: {path}: {why}", markup=False, highlight=False, soft_wrap=True)
    if report.quarantined:
        err.print(f"{report.quarantined} record(s) quarantined: `lifevault quarantine {report.load_id}`")
    if report.forgotten:
        err.print(f"{report.forgotten} record(s) you had asked to forget were not brought back")


def quarantine(
    load_id: Annotated[str | None, typer.Argument(help="Only this load (default: all).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many records.")] = 100,
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List quarantined records with their file, position and reason.

    Example: lifevault quarantine 3f2a9c1b7e20
    """
    from rich.table import Table

    from vault import load as vload

    with open_vault(home, passphrase_file) as vault:
        rows = vload.quarantined(vault, load_id, limit=limit)
    if json_out:
        emit_json({"load_id": load_id, "records": rows})
        return
    if not rows:
        err.print("No quarantined records.")
        return
    table = Table()
    for col in ("load", "format", "file", "position", "reason"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["load_id"]), str(r["format"]), str(r["file"]), str(r["position"]), str(r["reason"]))
    err.print(table)
