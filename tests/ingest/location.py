"""Shared helpers for the location source tests: the golden fixtures and a way to run one source."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import ModuleType

import polars as pl

from ingest.files import InputFile
from ingest.records import TABLES, Rejected

FIXTURES = Path(__file__).parent / "fixtures" / "location"
TAKEOUT_2023 = FIXTURES / "takeout-2023" / "Location History"
TAKEOUT_2014 = FIXTURES / "takeout-2014" / "Standortverlauf"  # a German Takeout: localised folder names
RECORDS_NEW = TAKEOUT_2023 / "Records.json"  # "timestamp" (ISO), Google's pretty-printed layout
RECORDS_OLD = TAKEOUT_2014 / "Records.json"  # "timestampMs"
SEMANTIC_ISO = TAKEOUT_2023 / "Semantic Location History" / "2023" / "2023_JANUARY.json"
SEMANTIC_MS_BOM = TAKEOUT_2014 / "Semantischer Standortverlauf" / "2013" / "2013_MÄRZ.json"
ANDROID = FIXTURES / "device" / "Timeline.json"
IOS = FIXTURES / "device" / "location-history.json"
GPX_11 = FIXTURES / "gpx" / "morning-run-1.1.gpx"
GPX_10 = FIXTURES / "gpx" / "hike-1.0.gpx"


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def parse(module: ModuleType, f: InputFile | Path) -> tuple[dict[str, pl.DataFrame], list[Rejected], dict[str, int]]:
    """Rows per table, every reject and the skipped counts (the generator's return value) of one file."""
    f = f if isinstance(f, InputFile) else InputFile(f)
    frames: dict[str, list[pl.DataFrame]] = {}
    rejected: list[Rejected] = []
    gen = module.batches(f)
    while True:
        try:
            batch = next(gen)
        except StopIteration as stop:
            skipped = stop.value
            break
        assert batch.rows.schema == TABLES[batch.table]
        assert batch.rows["format"].to_list() == [module.FORMAT] * batch.rows.height
        frames.setdefault(batch.table, []).append(batch.rows)
        rejected.extend(batch.rejected)
    assert all(r.format == module.FORMAT and r.file == f.name and "\n" not in r.reason and r.reason for r in rejected)
    return {t: pl.concat(fs) for t, fs in frames.items()}, rejected, skipped


def reasons(rejected: list[Rejected]) -> dict[int, str]:
    out: dict[int, str] = {}
    for r in rejected:
        out[r.position] = r.reason if r.position not in out else out[r.position] + " | " + r.reason
    return out
