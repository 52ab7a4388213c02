"""The time-phrase parser never raises: far dates, impossible days and huge numbers are left as words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embeddings import temporal

NOW = datetime(2025, 3, 6, 15, 0, tzinfo=timezone(timedelta(hours=1)))
MONTH_NAMES = sorted(temporal.MONTHS)

years = st.one_of(st.integers(0, 99_999), st.sampled_from([0, 1, 1899, 1900, 2199, 2200, 9998, 9999]))
days = st.integers(0, 99)
numbers = st.one_of(st.integers(0, 10**30), st.sampled_from([0, 999_999_999, 2**63]))
zones = st.integers(-14 * 60 + 1, 14 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
PHRASES = [
    "what did I do in {y}", "in {y}", "during {y}", "on {d} {m} {y}", "on the {d}th of {m}, {y}", "{m} {d}, {y}",
    "in {m} {y}", "{m} {y}", "over {m}", "on {m} {d}", "last {n} days", "past {n} weeks", "previous {n} months",
    "between {d} and {d}", "after {d}:{d}pm", "when did I last go out in {m} {y}", "where was I on {d} {m}",
]


@given(template=st.sampled_from(PHRASES), y=years, d=days, m=st.sampled_from(MONTH_NAMES), n=numbers,
       zero_padded=st.booleans(), tz=zones, now_year=st.sampled_from([1, 1900, 2025, 9999]))
@settings(max_examples=400, deadline=None, database=None)
def test_no_phrase_with_any_year_day_or_number_makes_the_parser_raise(template, y, d, m, n, zero_padded, tz, now_year):  # type: ignore[no-untyped-def]
    year = f"{y:04d}" if zero_padded else str(y)
    now = NOW.replace(year=now_year, tzinfo=tz)
    text, flt = temporal.parse(template.format(y=year, d=d, m=m, n=n), now)
    assert isinstance(text, str)
    for v in (flt.since, flt.until):
        assert v is None or v.tzinfo == UTC


@given(text=st.text(max_size=200), tz=zones)
@settings(max_examples=300, deadline=None, database=None)
def test_no_text_at_all_makes_the_parser_raise(text: str, tz: timezone) -> None:
    temporal.parse(text, NOW.replace(tzinfo=tz))


@pytest.mark.parametrize("phrase", ["what did I do in 9999", "on 31 Dec 9999", "in December 9999", "in 0001",
                                    "on 1 Jan 0001", "in 2200", "in 1899", "last 99999999999 days"])
def test_a_phrase_out_of_range_is_left_as_words_and_sets_no_filter(phrase: str) -> None:
    text, flt = temporal.parse(phrase, NOW)
    assert flt.since is None and flt.until is None and flt.understood == ()
    assert text == phrase.strip()


@pytest.mark.parametrize(("phrase", "year"), [("in 1900", 1900), ("in 2199", 2199), ("on 31 Dec 2199", 2199),
                                              ("in January 1900", 1900)])
def test_a_phrase_at_the_edge_of_the_years_is_understood(phrase: str, year: int) -> None:
    _, flt = temporal.parse(phrase, NOW)
    assert flt.since is not None and flt.since.astimezone(NOW.tzinfo).year == year
