"""The catalog's candidate mask against its definition, memory by memory: the whole-array form the search uses
selects exactly what the per-memory rules below select, for every combination of time filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from embeddings import retrieve
from embeddings.redaction import Redaction

T0 = datetime(2024, 1, 1, tzinfo=UTC)
# times on a coarse grid as well as anywhere, so that a start, an end and a bound often coincide
minutes = st.one_of(st.integers(0, 60).map(lambda h: h * 6 * 60), st.integers(0, 400 * 24 * 60))
memories = st.lists(st.fixed_dictionaries({
    "start": st.one_of(st.none(), minutes),
    "length": st.one_of(st.none(), st.sampled_from([-60, 0, 1, 6 * 60, 1439, 1440, 1441]),
                        st.integers(-90, 3 * 24 * 60)),  # None: no end; negative: an end before start
    "offset": st.one_of(st.none(), st.integers(-14 * 60, 14 * 60)),
    "ingested": minutes,
}), min_size=1, max_size=40)
filters = st.fixed_dictionaries({
    "since": st.one_of(st.none(), minutes), "until": st.one_of(st.none(), minutes),
    "as_of": st.one_of(st.none(), minutes),
    "weekdays": st.one_of(st.none(), st.frozensets(st.integers(0, 6), min_size=1)),
    "hours": st.one_of(st.none(), st.tuples(st.integers(0, 4).map(lambda h: h * 6 * 60), st.integers(0, 1439)),
                       st.tuples(st.integers(0, 1439), st.integers(0, 1439))),
})


def _at(m: int | None) -> datetime | None:
    return None if m is None else T0 + timedelta(minutes=m)


def _catalog(rows: list[dict]) -> retrieve.Catalog:
    n = len(rows)
    starts = [_at(r["start"]) for r in rows]
    ends = [None if r["start"] is None or r["length"] is None else _at(r["start"] + r["length"]) for r in rows]
    cat = retrieve.Catalog()
    cat.add(pl.DataFrame({
        "memory_id": list(range(1, n + 1)), "kind": ["note"] * n, "sensitivity": ["note"] * n,
        "source": ["agent"] * n, "start_ts": starts, "end_ts": ends, "utc_offset_min": [r["offset"] for r in rows],
        "ingested_at": [_at(r["ingested"]) for r in rows], "tags": [[]] * n, "text": ["a memory"] * n,
        "text_redacted": [None] * n},
        schema_overrides={"tags": pl.List(pl.String), "text_redacted": pl.String, "start_ts": pl.Datetime("us", "UTC"),
                          "end_ts": pl.Datetime("us", "UTC"), "utc_offset_min": pl.Int64}))
    return cat


def _in_window(minute: int, a: int, b: int) -> bool:
    return a <= minute < b if a < b else minute >= a or minute < b


def _selected(r: dict, f: dict) -> bool:
    """The rules, one memory at a time: every time filter but as_of needs a start; the span [start, end) (end
    before start or missing: the start) reaches since and starts before until; its local start falls on one
    of the weekdays; some local minute of it (at least one, at most a day) lies in the daily window."""
    if f["as_of"] is not None and not r["ingested"] <= f["as_of"]:
        return False
    if all(f[k] is None for k in ("since", "until", "weekdays", "hours")):
        return True
    if r["start"] is None:
        return False
    start = r["start"]
    end = start + r["length"] if r["length"] is not None else start
    if f["since"] is not None and not max(end, start) >= f["since"]:
        return False
    if f["until"] is not None and not start < f["until"]:
        return False
    local = start + (r["offset"] or 0)
    if f["weekdays"] is not None and (T0 + timedelta(minutes=local)).weekday() not in f["weekdays"]:
        return False
    if f["hours"] is not None:
        length = min(max(end - start, 1), 1440)
        first = (T0 + timedelta(minutes=local)).hour * 60 + (T0 + timedelta(minutes=local)).minute
        return any(_in_window((first + i) % 1440, *f["hours"]) for i in range(length))
    return True


@settings(max_examples=300, deadline=None)
@given(rows=memories, f=filters)
def test_the_time_mask_selects_exactly_the_memories_the_per_memory_rules_select(rows: list[dict], f: dict):
    cat = _catalog(rows)
    got = cat.mask(retrieve.Filters(since=_at(f["since"]), until=_at(f["until"]), as_of=_at(f["as_of"]),
                                    weekdays=f["weekdays"], hours=f["hours"]), Redaction.OWNER.visible)
    want = [_selected(r, f) for r in rows]
    assert got.tolist() == want


def test_a_span_past_midnight_is_found_by_the_hours_of_the_next_morning():
    rows = [{"start": 23 * 60, "length": 8 * 60, "offset": 0, "ingested": 0},  # 23:00 to 07:00
            {"start": 23 * 60, "length": 30, "offset": 0, "ingested": 0}]  # 23:00 to 23:30
    mask = _catalog(rows).mask(retrieve.Filters(hours=(6 * 60, 9 * 60)), Redaction.OWNER.visible)
    assert mask.tolist() == [True, False]
    assert np.count_nonzero(mask) == 1
