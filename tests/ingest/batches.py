"""Run one ingest source over one file the way the pipeline does, collecting its rows, rejects and skips."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import ModuleType

import polars as pl

from ingest.files import InputFile
from ingest.records import TABLES, Rejected


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def parse(module: ModuleType, f: InputFile | Path,
          **options: object) -> tuple[dict[str, pl.DataFrame], list[Rejected], dict[str, int]]:
    """Rows per table, every reject and the skipped counts (the generator's return value) of one file;
    `options` go to the source's batches()."""
    f = f if isinstance(f, InputFile) else InputFile(f)
    frames: dict[str, list[pl.DataFrame]] = {}
    rejected: list[Rejected] = []
    gen = module.batches(f, **options)
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
