"""Takeout Records.json: golden values for both timestamp generations, quarantine reasons, streaming."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from ingest.detect import pick
from ingest.files import InputFile, expand
from ingest.sources.location import google_records
from tests.ingest.location import RECORDS_NEW, RECORDS_OLD, TAKEOUT_2023, parse, reasons, utc

COLUMNS = ("at", "utc_offset_min", "lat", "lon", "accuracy_m", "altitude_m", "provider", "position")


def rows_of(path: Path | InputFile) -> list[tuple]:
    rows, _, _ = parse(google_records, path)
    return rows["points"].select(COLUMNS).rows()


def test_iso_timestamps_give_the_golden_points() -> None:
    assert rows_of(RECORDS_NEW) == [
        (utc(2013, 3, 1, 5, 17, 39, 849000), None, 53.3690589, 83.6951347, 22.0, None, "WIFI", 0),
        (utc(2013, 3, 1, 5, 18, 39), None, 53.36912, 83.69521, 5.0, 152.0, "GPS", 1),
        (utc(2013, 3, 1, 6, 0, 0), 120, 53.37, 83.696, 12.0, None, "WIFI", 5),  # "+02:00" kept as the offset
        (utc(2013, 3, 2, 10, 0, 0, 123000), None, -33.8688197, 151.2092955, 8.0, None, "GPS", 6),
    ]


def test_legacy_timestamp_ms_gives_the_same_instant_as_iso() -> None:
    rows = rows_of(RECORDS_OLD)
    assert rows[:2] == [
        (utc(2013, 3, 1, 5, 17, 39, 849000), None, 53.3690589, 83.6951347, 22.0, None, None, 0),
        (utc(2013, 3, 1, 5, 18, 39, 849000), None, 53.36907, 83.69514, 30.0, None, None, 1),
    ]
    assert rows[0][:4] == rows_of(RECORDS_NEW)[0][:4]


def test_bad_records_are_rejected_with_position_and_reason() -> None:
    _, rejected, skipped = parse(google_records, RECORDS_NEW)
    assert reasons(rejected) == {
        2: "latitude outside -90..90",
        3: "timestamp is not a valid date-time",
        4: "longitude outside -180..180",
    }
    assert skipped == {}
    assert '"latitudeE7": 1900000000' in next(r.raw for r in rejected if r.position == 2)
    _, rejected, _ = parse(google_records, RECORDS_OLD)
    assert reasons(rejected) == {
        2: "timestamp outside 2000..2100",  # seconds mistaken for milliseconds land in 1970
        3: "no timestamp or timestampMs",
        4: "not a JSON object",
        5: "latitudeE7/longitudeE7 are not numbers",
    }


def test_a_file_truncated_inside_a_record_keeps_the_records_before_it(tmp_path: Path) -> None:
    text = RECORDS_NEW.read_text()
    cut = tmp_path / "Records.json"
    cut.write_text(text[: text.index('"wifiScan"')])
    rows, rejected, _ = parse(google_records, cut)
    assert rows["points"]["position"].to_list() == [0, 1, 5]
    assert reasons(rejected)[6] == "truncated JSON at end of file"


def test_a_file_truncated_between_records_says_so(tmp_path: Path) -> None:
    text = RECORDS_NEW.read_text()
    cut = tmp_path / "Records.json"
    cut.write_text(text[: text.rindex("}, {") + 3])
    rows, rejected, _ = parse(google_records, cut)
    assert rows["points"]["position"].to_list() == [0, 1, 5]
    assert reasons(rejected)[6] == "file ends inside the locations array (truncated)"


def test_a_malformed_record_mid_file_is_rejected_and_the_next_ones_still_load(tmp_path: Path) -> None:
    text = RECORDS_NEW.read_text().replace('"accuracy": 22,', '"accuracy": 22,,', 1)
    broken = tmp_path / "Records.json"
    broken.write_text(text)
    rows, rejected, _ = parse(google_records, broken)
    assert rows["points"]["position"].to_list() == [1, 5, 6]
    assert reasons(rejected)[0] == "malformed JSON record" and '"accuracy": 22,,' in rejected[0].raw


def test_a_json_file_without_locations_is_one_reject(tmp_path: Path) -> None:
    other = tmp_path / "Records.json"
    other.write_text('{"something": []}')
    assert not google_records.detect(InputFile(other))
    rows, rejected, _ = parse(google_records, other)
    assert rows["points"].height == 0 and [(r.position, r.reason) for r in rejected] == [
        (-1, 'not a Records.json: no "locations" array')]


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_tiny_read_chunks_and_batches_give_the_same_result(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    want_rows, want_rej, _ = parse(google_records, RECORDS_NEW)
    old_rows, old_rej, _ = parse(google_records, RECORDS_OLD)
    monkeypatch.setattr(google_records, "CHUNK_BYTES", chunk)
    monkeypatch.setattr(google_records, "MARGIN_BYTES", 3)
    monkeypatch.setattr(google_records, "BATCH_ROWS", 2)
    monkeypatch.setattr(google_records, "FLUSH_OBJECTS", 1)
    for path, rows, rej in ((RECORDS_NEW, want_rows, want_rej), (RECORDS_OLD, old_rows, old_rej)):
        got_rows, got_rej, _ = parse(google_records, path)
        assert got_rows["points"].equals(rows["points"])
        assert reasons(got_rej) == reasons(rej)
        heights = [b.rows.height for b in google_records.batches(InputFile(path))]
        assert all(h == 2 for h in heights[:-1]) and heights[-1] <= 2  # fixed batch boundaries: resumable


def test_a_bom_and_crlf_line_ends_are_read(tmp_path: Path) -> None:
    f = tmp_path / "Records.json"
    f.write_bytes(b"\xef\xbb\xbf" + RECORDS_NEW.read_bytes().replace(b"\n", b"\r\n"))
    assert google_records.detect(InputFile(f))
    assert rows_of(f) == rows_of(RECORDS_NEW)


def test_records_inside_a_takeout_zip_are_read_in_place(tmp_path: Path) -> None:
    archive = tmp_path / "takeout-20230201T101010Z-001.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(TAKEOUT_2023.rglob("*.json")):
            z.write(p, f"Takeout/Location History/{p.relative_to(TAKEOUT_2023)}")
    members = list(expand([archive]))
    (records,) = [m for m in members if m.name == "Records.json"]
    assert pick(records) is google_records and records.member == "Takeout/Location History/Records.json"
    assert rows_of(records) == rows_of(RECORDS_NEW)
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name]  # nothing extracted


def test_detection_picks_records_json_and_nothing_else_claims_it() -> None:
    for path in (RECORDS_NEW, RECORDS_OLD):
        assert pick(InputFile(path)) is google_records


@pytest.fixture(params=["native", "numpy"])
def fast_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each fast path: the C module built at install (never skipped: a missing build fails), and the numpy + polars
    path a machine without a compiler gets."""
    if request.param == "native":
        assert google_records._native is not None, "ingest._records is not built: `make test` builds it"
    else:
        monkeypatch.setattr(google_records, "_native", None)
    return request.param


def fast_results(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record whether each attempt of the NDJSON fast path succeeded."""
    results: list[bool] = []
    real = google_records._fast

    def spy(*args: object) -> object:
        got = real(*args)  # type: ignore[arg-type]
        results.append(got is not None)
        return got

    monkeypatch.setattr(google_records, "_fast", spy)
    return results


def test_the_fast_path_reads_plain_records_and_unusual_windows_go_element_by_element(
    monkeypatch: pytest.MonkeyPatch, fast_path: str,
) -> None:
    results = fast_results(monkeypatch)
    parse(google_records, RECORDS_NEW)
    assert results == [True]  # nested activity arrays and bad values do not stop it; validation rejects them
    results.clear()
    parse(google_records, RECORDS_OLD)
    # a bare string element: the slow path says "not a JSON object". The native path reads the elements
    # before it; the numpy path gives up the whole window.
    assert results == ([True, False] if fast_path == "native" else [False])


def test_the_fast_and_the_slow_path_agree_on_a_synthetic_takeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 fast_path: str) -> None:
    from synth import generate

    m = generate(tmp_path, days=20, points_target=20_000)
    (records,) = m.files["google_records"]
    text = records.read_text().replace('"source": "GPS"', '"source": "G\\u0050S"', 1)  # one escape: one slow window
    records.write_text(text)
    monkeypatch.setattr(google_records, "CHUNK_BYTES", 1 << 18)
    monkeypatch.setattr(google_records, "MARGIN_BYTES", 1 << 12)
    results = fast_results(monkeypatch)
    fast_rows, fast_rej, _ = parse(google_records, records)
    assert True in results and False in results
    monkeypatch.setattr(google_records, "FAST", False)
    slow_rows, slow_rej, _ = parse(google_records, records)
    assert fast_rows["points"].equals(slow_rows["points"]) and fast_rows["points"].height == 20_000
    assert reasons(fast_rej) == reasons(slow_rej) and len(fast_rej) == 3


def test_a_window_full_of_bad_records_is_quarantined_quickly(tmp_path: Path) -> None:
    import time

    n = 20_000
    body = ",\n".join(f'{{"latitudeE7": 1900000000, "longitudeE7": {i}, "timestamp": "2020-01-01T00:00:00Z"}}'
                      for i in range(n))
    f = tmp_path / "Records.json"
    f.write_text('{"locations": [\n' + body + "\n]}\n")
    t = time.process_time()
    rows, rejected, _ = parse(google_records, f)
    assert time.process_time() - t < 10
    assert rows["points"].height == 0 and len(rejected) == n
    assert rejected[-1].position == n - 1 and f'"longitudeE7": {n - 1},' in rejected[-1].raw


def _reference(data: bytes) -> tuple[list[tuple], dict[int, str]]:
    """The whole file decoded at once (U+FFFD for bad bytes) and converted by the element-by-element path."""
    import json

    elements = json.loads(data.decode("utf-8-sig", "replace"))["locations"]
    rows, rejected = google_records.points(elements, 0, InputFile(RECORDS_NEW))
    return rows.select(COLUMNS).rows(), reasons(rejected)


def _nasty(tmp_path: Path) -> Path:
    """Pretty-printed records with non-ASCII text, an invalid UTF-8 byte inside a kept field, escapes, a BOM."""
    good = [f'{{"latitudeE7": {515000000 + i}, "longitudeE7": -1270000, "accuracy": 10, "source": "WIFI", '
            f'"timestamp": "2023-01-01T00:{i:02d}:00Z"}}' for i in range(40)]
    good[3] = good[3].replace('"accuracy": 10', '"placeName": "Zürich Hauptbahnhof ✓", "accuracy": 10')
    good[9] = good[9].replace('"source": "WIFI"', '"source": "wi\xfffi"')  # an invalid byte: U+FFFD, upper-cased
    good[17] = good[17].replace('"source": "WIFI"', '"source": "G\\u0050S"')
    good[25] = good[25].replace('"latitudeE7": 515000025', '"latitudeE7": "north"')  # a string: rejected
    body = ",\n".join(g.replace(", ", ",\n    ") for g in good)
    f = tmp_path / "Records.json"
    f.write_bytes(b"\xef\xbb\xbf" + ('{\n  "locations": [' + body + "]\n}\n").encode("utf-8", "surrogateescape")
                  .replace("\xff".encode(), b"\xff"))
    return f


@pytest.mark.parametrize(("chunk", "fast"), [(1, True), (2, True), (7, True), (64, False), (1 << 22, True), (1 << 22, False)])
def test_non_ascii_text_and_bad_bytes_are_read_as_the_decoded_file_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, fast: bool, fast_path: str,
) -> None:
    f = _nasty(tmp_path)
    want_rows, want_reasons = _reference(f.read_bytes())
    assert want_rows[9][6] == "WI\ufffdFI" and want_reasons == {25: "latitudeE7/longitudeE7 are not numbers"}
    monkeypatch.setattr(google_records, "CHUNK_BYTES", chunk)
    monkeypatch.setattr(google_records, "MARGIN_BYTES", min(chunk, 1 << 20))
    monkeypatch.setattr(google_records, "FAST", fast)
    rows, rejected, _ = parse(google_records, f)
    assert rows["points"].select(COLUMNS).rows() == want_rows
    assert reasons(rejected) == want_reasons


def test_unicode_spaces_between_records_are_skipped_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not JSON whitespace, but the text scanner always skipped them between elements."""
    records = [f'{{"latitudeE7": {515000000 + i}, "longitudeE7": -1270000, "timestamp": "2023-01-01T00:{i:02d}:00Z"}}'
               for i in range(12)]
    plain, spaced = tmp_path / "plain.json", tmp_path / "spaced.json"
    plain.write_text('{"locations": [' + ", ".join(records) + "]}")
    spaced.write_text('{"locations": [' + ",\u00a0".join(records) + "\u2003]}", encoding="utf-8")
    for chunk in (5, 1 << 22):
        monkeypatch.setattr(google_records, "CHUNK_BYTES", chunk)
        monkeypatch.setattr(google_records, "MARGIN_BYTES", min(chunk, 3))
        assert rows_of(spaced) == rows_of(plain) and len(rows_of(plain)) == 12


def test_a_malformed_record_with_bad_bytes_is_quarantined_as_text(tmp_path: Path) -> None:
    f = tmp_path / "Records.json"
    f.write_bytes(RECORDS_NEW.read_bytes().replace(b'"accuracy": 22,', b'"accuracy": 22,, "x": "\xff\xfe",', 1))
    rows, rejected, _ = parse(google_records, f)
    assert rows["points"]["position"].to_list() == [1, 5, 6]
    assert reasons(rejected)[0] == "malformed JSON record" and '"x": "\ufffd\ufffd"' in rejected[0].raw


@pytest.mark.parametrize("texts", [
    ["2013-03-01T05:17:39.849Z", "2013-03-01T05:18:39Z", None, "2024-02-29T23:59:59.123456Z"],  # Arrow reads them
    ["2013-03-01T05:17:39.849Z", "2025-02-30T10:00:00Z", "2025-01-01T23:59:60Z"],  # Arrow refuses: polars decides
    ["2013-03-01T05:17:39.849Z", "2013-03-01T07:17:39+02:00", "2013-03-01 05:17:39Z", "2013-03-01T05:17:39.1234567Z"],
])
def test_plain_zulu_timestamps_read_as_polars_strict_format_reads_them(texts: list[str | None]) -> None:
    import polars as pl

    iso = pl.Series("iso", texts, dtype=pl.String)
    want = iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", strict=False, time_zone="UTC").cast(pl.Datetime("us", "UTC"))
    assert google_records._zulu(iso).to_list() == want.to_list()


def test_brackets_and_commas_inside_strings_do_not_cut_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = [f'{{"latitudeE7": {515000000 + i}, "longitudeE7": -1270000, "note": "x}}],[{{,y", '
               f'"timestamp": "2023-01-01T00:{i:02d}:00Z"}}' for i in range(30)]
    f = tmp_path / "Records.json"
    f.write_text('{"locations": [\n' + ",\n".join(records) + "\n]}\n")
    assert '"note": "x}],[{,y"' in f.read_text()
    results = fast_results(monkeypatch)
    assert [r[7] for r in rows_of(f)] == list(range(30))
    assert results == [True]


def _random_records(seed: int, n: int, *, duplicates: bool = True) -> str:
    """Records in every shape the fast paths meet: keys in any order, unknown and nested fields, nulls, missing
    and duplicate keys, numbers as integers, decimals and exponents, both timestamp spellings, compact or
    pretty layout, and some the fast paths must leave to the slow one (strings for numbers, escapes, a bare
    value, non-ASCII text)."""
    import json
    import random

    rnd = random.Random(seed)
    out = []
    for i in range(n):
        rec: dict[str, object] = {}
        lat = rnd.choice([515000000 + i, -338688197, 5.15e8, "515000000", None, "skip", 1900000000])
        lon = rnd.choice([-1270000 - i, 1512092955, -1.27e6, None, "skip"])
        if lat != "skip":
            rec["latitudeE7"] = lat
        if lon != "skip":
            rec["longitudeE7"] = lon
        if rnd.random() < 0.8:
            rec["accuracy"] = rnd.choice([10, 22.5, None, 0, -1, 1e1])
        if rnd.random() < 0.3:
            rec["altitude"] = rnd.choice([152, -3.25, None])
        if rnd.random() < 0.7:
            rec["source"] = rnd.choice(["WIFI", "gps", None, "CELL", "wi\\u0046i", "Zürich"])
        ts = rnd.random()
        if ts < 0.6:
            rec["timestamp"] = rnd.choice([f"2023-01-01T00:{i % 60:02d}:00Z", "2023-01-01T08:00:00.000+02:00",
                                           "2013-02-30T25:61:00.000Z", None])
        if ts > 0.5:
            rec["timestampMs"] = rnd.choice([str(1362115059849 + i), " 1362115059849 ", "12.5", None])
        if rnd.random() < 0.3:
            rec["activity"] = [{"activity": [{"type": "STILL", "confidence": 96}], "timestamp": "2013-03-01T05:18:40Z"}]
        if rnd.random() < 0.2:
            rec.update(flag=rnd.choice([True, False, None]), empty={}, none=[], deviceTag=1184882232)
        keys = list(rec)
        rnd.shuffle(keys)
        text = json.dumps({k: rec[k] for k in keys}, ensure_ascii=False).replace("\\\\u", "\\u")
        if rnd.random() < 0.1 and "accuracy" in rec and duplicates:  # a duplicate key: the last one wins, as in json
            text = text[:-1] + ', "accuracy": 7}'
        if rnd.random() < 0.02:
            text = rnd.choice(['"a bare string"', "17", "null"])
        if rnd.random() < 0.5:
            text = text.replace(", ", ",\n      ").replace("{", "{\n      ", 1)
        out.append(text)
    return '{\n  "locations": [' + ",\n  ".join(out) + "\n  ]\n}\n"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_paths_read_random_records_as_the_slow_path_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               fast_path: str, seed: int) -> None:
    f = tmp_path / "Records.json"
    # (polars' NDJSON reader keeps the first of duplicate keys: the numpy path differs there, the native does not)
    f.write_text(_random_records(seed, 3000, duplicates=fast_path == "native"), encoding="utf-8")
    monkeypatch.setattr(google_records, "FAST", False)
    slow_rows, slow_rej, _ = parse(google_records, f)
    monkeypatch.setattr(google_records, "FAST", True)
    results = fast_results(monkeypatch)
    for chunk in (1 << 10, 1 << 13, 1 << 22):  # elements cut by window ends everywhere
        monkeypatch.setattr(google_records, "CHUNK_BYTES", chunk)
        monkeypatch.setattr(google_records, "MARGIN_BYTES", min(chunk, 1 << 20) // 2)
        rows, rejected, _ = parse(google_records, f)
        assert rows["points"].select(COLUMNS).rows() == slow_rows["points"].select(COLUMNS).rows()
        assert reasons(rejected) == reasons(slow_rej)
    assert slow_rows["points"].height > 400 and len(slow_rej) > 1000 and True in results
