"""End-to-end ingest of location exports through the real pipeline into a real encrypted vault."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterable
from pathlib import Path

from ingest.pipeline import run
from ingest.sources.location import google_records
from lifevault.cli import main
from tests.conftest import FAST_KDF, PASSPHRASE
from tests.ingest.location import FIXTURES, RECORDS_NEW, TAKEOUT_2014, TAKEOUT_2023
from vault import load as vload
from vault.store import Vault

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"location_points": 24, "place_visits": 7, "activity_segments": 4}


def first_batch(lines: Iterable[str]) -> bool:
    """True once the child reports its first committed batch (DuckDB may draw a progress bar on stdout first)."""
    return any(line.startswith("batch") for line in lines)


def counts(vault: Vault) -> dict[str, int]:
    return {t: vault.scalar(f"SELECT count(*) FROM {t}") for t in TABLES}


def test_every_location_fixture_loads_with_its_bad_records_quarantined(vault):
    r = run(vault, [FIXTURES])
    assert {f.format for f in r.files} == {"google_records", "google_semantic", "google_timeline", "gpx"}
    assert len(r.files) == 8 and r.skipped == []
    assert (r.loaded, r.duplicates, r.quarantined) == (35, 1, 18)  # the two Takeouts share one fix
    assert counts(vault) == TABLES
    q = vload.quarantined(vault, r.load_id)
    assert len(q) == 18 and all(x["reason"] and x["raw"] is not None for x in q)
    assert ("Records.json", 2, "latitude outside -90..90") in {(x["file"], x["position"], x["reason"]) for x in q}
    assert ("2023_JANUARY.json", 3, "placeVisit start: not a valid date-time") in {
        (x["file"], x["position"], x["reason"]) for x in q}
    assert vault.scalar("SELECT count(*) FROM location_points WHERE ts IS NULL") == 6  # GPX points without time
    assert r.derived["stays"] > 0
    offsets = vault.query("SELECT DISTINCT utc_offset_min FROM place_visits WHERE format = 'google_timeline' ORDER BY 1")
    assert offsets == [(-300,), (120,)]


def test_reimporting_the_same_exports_adds_no_rows(vault):
    first = run(vault, [FIXTURES])
    again = run(vault, [FIXTURES])
    assert (again.loaded, again.duplicates) == (0, first.loaded + first.duplicates)
    assert counts(vault) == TABLES
    assert vault.scalar("SELECT count(*) FROM quarantine") == 18  # quarantine rows are keyed too


def test_overlapping_takeouts_merge_without_duplicates(vault):
    a = run(vault, [TAKEOUT_2023])
    b = run(vault, [TAKEOUT_2014])
    assert (a.duplicates, b.duplicates) == (0, 1)
    assert vault.scalar("SELECT count(*) FROM location_points WHERE format = 'google_records'") == 5


def test_a_takeout_zip_and_the_same_folder_give_the_same_rows(vault, tmp_path):
    archive = tmp_path / "takeout-001.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(TAKEOUT_2023.rglob("*.json")):
            z.write(p, f"Takeout/Location History/{p.relative_to(TAKEOUT_2023)}")
    from_zip = run(vault, [archive])
    assert (from_zip.loaded, from_zip.quarantined) == (7, 7)
    from_folder = run(vault, [TAKEOUT_2023])
    assert from_folder.loaded == 0 and from_folder.duplicates == 7


def test_cli_strict_location_ingest_exits_4_with_a_json_report(monkeypatch, tmp_path, capsys):
    home = tmp_path / "home"
    Vault.create(home, PASSPHRASE, kdf=FAST_KDF)[0].close()
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    code = main(["ingest", str(RECORDS_NEW), "--kind", "location", "--home", str(home), "--strict", "--json"])
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert code == 4 and (out["loaded"], out["quarantined"]) == (4, 3)
    assert "Traceback" not in captured.err
    assert main(["ingest", str(RECORDS_NEW), "--format", "gpx", "--home", str(home), "--json"]) in (0, 4)
    forced = json.loads(capsys.readouterr().out)
    assert forced["loaded"] == 0 and forced["quarantined"] == 1  # forced to the wrong reader: one clear reject


def test_a_records_job_killed_halfway_resumes_to_the_rows_of_a_clean_run(tmp_path, monkeypatch):
    monkeypatch.setattr(google_records, "BATCH_ROWS", 250)  # the same (small) batches as the killed run
    n = 3000
    records = tmp_path / "Records.json"
    lines = [json.dumps({"latitudeE7": 515000000 + i * 37, "longitudeE7": -1200000 - i * 53, "accuracy": 10,
                         "source": "GPS", "timestamp": f"2024-01-{1 + i // 1440:02d}T{i // 60 % 24:02d}:{i % 60:02d}:00Z"})
             for i in range(n)]
    records.write_text('{"locations": [\n' + ",\n".join(lines) + "\n]}\n")
    home = tmp_path / "home"
    Vault.create(home, PASSPHRASE, kdf=FAST_KDF)[0].close()
    child = textwrap.dedent(f"""
        import pathlib, time
        from ingest.pipeline import run
        from ingest.sources.location import google_records
        from vault.store import Vault
        google_records.BATCH_ROWS = 250
        v = Vault.open({str(home)!r}, {PASSPHRASE!r})
        def progress(name, k):
            print("batch", k, flush=True)
            time.sleep(0.5)
        run(v, [pathlib.Path({str(records)!r})], progress=progress)
        print("finished", flush=True)
    """)
    p = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert p.stdout is not None and p.stderr is not None
    assert first_batch(p.stdout), p.stderr.read()
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=60)
    with Vault.open(home, PASSPHRASE) as v:
        assert 0 < v.scalar("SELECT count(*) FROM location_points") < n
        run(v, [records])
        got = v.frame("SELECT ts, lat, lon FROM location_points ORDER BY ts")
    with Vault.create(tmp_path / "clean", PASSPHRASE, kdf=FAST_KDF)[0] as clean:
        run(clean, [records])
        want = clean.frame("SELECT ts, lat, lon FROM location_points ORDER BY ts")
    assert got.height == n and got.equals(want)


def test_a_cursor_left_by_other_batch_sizes_is_not_used_to_skip_rows(tmp_path, vault, monkeypatch):
    """Batches of 250 committed by one version must not be skipped as batches of 100 by another."""
    from datetime import UTC, datetime

    from ingest.files import InputFile
    from ingest.pipeline import file_key

    n = 600
    records = tmp_path / "Records.json"
    records.write_text('{"locations": [' + ",".join(
        f'{{"latitudeE7": {515000000 + i}, "longitudeE7": -1200000, "timestamp": "2024-01-01T{i // 60 % 24:02d}:{i % 60:02d}:00Z"}}'
        for i in range(n)) + "]}")
    f = InputFile(records)
    assert file_key(f, google_records.FORMAT, 250) != file_key(f, google_records.FORMAT, 100)
    vault.execute("INSERT INTO ingest_cursors VALUES (?, ?, 2, false, 'old', ?)",
                  [file_key(f, google_records.FORMAT, 250), google_records.FORMAT, datetime.now(UTC)])
    monkeypatch.setattr(google_records, "BATCH_ROWS", 100)
    r = run(vault, [records])
    assert r.files[0].resumed_batches == 0 and r.loaded == n
