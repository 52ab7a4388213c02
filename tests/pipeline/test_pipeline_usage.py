"""End-to-end ingest through the real pipeline into a real encrypted vault (usage exports)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ingest.pipeline import IngestError, run
from lifevault.cli import main
from tests.conftest import FAST_KDF, PASSPHRASE
from vault import audit
from vault import load as vload
from vault.store import Vault

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_730_000_000_000  # 2024-10-27


def usage_csv(path: Path, rows: list[tuple[int, int, str, str]], *, header: bool = True) -> Path:
    lines = ["timestamp_ms,event_type,package,class"] if header else []
    lines += [f"{t},{e},{p},{c}" for t, e, p, c in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def a_morning(t0: int = T0) -> list[tuple[int, int, str, str]]:
    m = 60_000
    return [
        (t0, 15, "", ""),  # screen on
        (t0 + 1 * m, 1, "com.slack", "com.slack.Main"),
        (t0 + 11 * m, 2, "com.slack", "com.slack.Main"),
        (t0 + 12 * m, 1, "com.google.android.youtube", "Watch"),
        (t0 + 42 * m, 16, "", ""),  # screen off closes YouTube
        (t0 + 60 * m, 1, "com.spotify.music", "Player"),
        (t0 + 65 * m, 1, "com.slack", "com.slack.Main"),  # foreground switch closes Spotify
        (t0 + 70 * m, 23, "com.slack", "com.slack.Main"),
    ]


def test_a_usage_export_loads_derives_sessions_and_records_the_load(vault, tmp_path):
    report = run(vault, [usage_csv(tmp_path / "usage_events.csv", a_morning())])
    assert (report.loaded, report.duplicates, report.quarantined) == (8, 0, 0)
    sessions = vault.query("SELECT app_name, category, date_diff('minute', start_ts, end_ts) FROM app_sessions ORDER BY start_ts")
    assert sessions == [("Slack", "Communication", 10), ("YouTube", "Video", 30), ("Spotify", "Music", 5),
                        ("Slack", "Communication", 5)]
    (day,) = vault.query("SELECT screen_minutes, screen_by_category FROM daily_summaries")
    assert day[0] == 50 and json.loads(day[1]) == {"Communication": 15.0, "Music": 5.0, "Video": 30.0}
    (load,) = vload.loads(vault)
    assert load["load_id"] == report.load_id and load["loaded"] == 8 and load["status"] == "completed"
    (event,) = list(audit.events(vault, kind="ingest.load_completed"))
    assert event.body["load_id"] == report.load_id and event.body["loaded"] == 8
    assert "com.slack" not in json.dumps(event.body)  # counts and ids only


def test_reimporting_the_same_export_adds_no_rows(vault, tmp_path):
    f = usage_csv(tmp_path / "usage_events.csv", a_morning())
    run(vault, [f])
    again = run(vault, [f])
    assert (again.loaded, again.duplicates) == (0, 8)
    assert vault.scalar("SELECT count(*) FROM usage_events") == 8
    assert vault.scalar("SELECT count(*) FROM app_sessions") == 4


def test_overlapping_exports_merge_without_duplicates(vault, tmp_path):
    day = 86_400_000
    first = usage_csv(tmp_path / "a.csv", a_morning(T0) + a_morning(T0 + day))
    second = usage_csv(tmp_path / "b.csv", a_morning(T0 + day) + a_morning(T0 + 2 * day))
    r = run(vault, [first, second])
    assert (r.loaded, r.duplicates) == (24, 8)
    assert vault.scalar("SELECT count(*) FROM daily_summaries") == 3


def test_bad_records_are_quarantined_with_file_position_and_reason_and_nothing_else_is_lost(vault, tmp_path):
    rows = a_morning() + [(T0 + 99, 999, "com.x", "X"), (17, 1, "com.slack", "Main")]
    r = run(vault, [usage_csv(tmp_path / "usage_events.csv", rows)])
    assert (r.loaded, r.quarantined) == (8, 2)
    q = vload.quarantined(vault, r.load_id)
    assert [(x["file"], x["position"]) for x in q] == [("usage_events.csv", 8), ("usage_events.csv", 9)]
    assert all(x["reason"] and "\n" not in x["reason"] for x in q)
    again = run(vault, [tmp_path / "usage_events.csv"])  # re-ingest does not duplicate quarantine rows
    assert again.quarantined == 2 and vault.scalar("SELECT count(*) FROM quarantine") == 2


def test_cli_json_report_and_strict_mode_exit_code(monkeypatch, tmp_path, capsys):
    home = tmp_path / "home"
    Vault.create(home, PASSPHRASE, kdf=FAST_KDF)[0].close()
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    good = usage_csv(tmp_path / "good.csv", a_morning())
    assert main(["ingest", str(good), "--home", str(home), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {k: out[k] for k in ("loaded", "duplicates", "quarantined")} == {"loaded": 8, "duplicates": 0, "quarantined": 0}
    assert isinstance(out["load_id"], str)
    bad = usage_csv(tmp_path / "bad.csv", [(T0, 999, "com.x", "X")])
    code = main(["ingest", str(bad), "--home", str(home), "--strict", "--json"])
    captured = capsys.readouterr()
    assert code == 4 and json.loads(captured.out)["quarantined"] == 1
    assert "quarantined (strict mode)" in captured.err and "Traceback" not in captured.err
    assert main(["quarantine", json.loads(captured.out)["load_id"], "--home", str(home), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["records"]) == 1


def test_a_path_that_is_not_an_export_gets_a_clear_error(vault, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(IngestError, match="no known export"):
        run(vault, [tmp_path / "notes.txt"])
    with pytest.raises(IngestError, match="does not exist"):
        run(vault, [tmp_path / "missing.csv"])


def test_a_job_killed_halfway_and_run_again_ends_with_the_rows_of_a_clean_run(tmp_path):
    n = 600_000
    csv = tmp_path / "big.csv"
    with csv.open("w") as f:
        f.write("timestamp_ms,event_type,package,class\n")
        for i in range(n):
            f.write(f"{T0 + i * 1000},{1 if i % 2 == 0 else 2},com.app{i % 50},C\n")
    home = tmp_path / "home"
    Vault.create(home, PASSPHRASE, kdf=FAST_KDF)[0].close()
    code = textwrap.dedent(f"""
        from ingest.pipeline import run
        from vault.store import Vault
        v = Vault.open({str(home)!r}, {PASSPHRASE!r})
        run(v, [__import__("pathlib").Path({str(csv)!r})], progress=lambda name, k: print("batch", k, flush=True))
        print("finished", flush=True)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    # the first batch committed (DuckDB may draw its progress bar on stdout first when a query is slow)
    assert p.stdout is not None and any(line.startswith("batch") for line in p.stdout)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=60)
    with Vault.open(home, PASSPHRASE) as v:
        partial = v.scalar("SELECT count(*) FROM usage_events")
        assert 0 < partial < n
        resumed = run(v, [csv])
        assert resumed.files[0].resumed_batches >= 1
        got = v.frame("SELECT row_id, ts, package, event_type FROM usage_events ORDER BY row_id")
    clean_home = tmp_path / "clean"
    with Vault.create(clean_home, PASSPHRASE, kdf=FAST_KDF)[0] as clean:
        run(clean, [csv])
        want = clean.frame("SELECT ts, package, event_type FROM usage_events ORDER BY ts, package, event_type")
    assert got.height == n
    assert got.drop("row_id").sort(["ts", "package", "event_type"]).equals(want)


def test_a_cursor_left_by_another_lifevault_version_is_not_trusted(vault, tmp_path, monkeypatch):
    """Cursors count batches; another version may cut batches differently, so it reads the file again."""
    from ingest import pipeline

    f = usage_csv(tmp_path / "usage_events.csv", a_morning())
    first = run(vault, [f])
    vault.execute("UPDATE ingest_cursors SET complete = false")  # as if interrupted after its last batch
    monkeypatch.setattr(pipeline, "_version", lambda: "9.9.9")
    again = run(vault, [f])
    assert again.files[0].resumed_batches == 0 and again.loaded == 0
    assert again.duplicates == first.loaded  # read again from the start: every row seen, none added twice
