"""Behaviour of the app-usage sources on small files in the real layouts (SQLite built here, in tmp_path)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import zipfile
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest

from ingest.files import InputFile
from ingest.records import Rejected
from ingest.sources.usage import android_events, knowledgec, takeout_activity, wellbeing_db
from tests.ingest.batches import parse as run
from tests.ingest.batches import utc

FIXTURES = Path(__file__).parent / "fixtures" / "usage"
MY_ACTIVITY = FIXTURES / "My Activity" / "Android" / "MyActivity.json"
MAC_EPOCH = 978_307_200


def events(rows: dict[str, pl.DataFrame]) -> list[tuple]:
    return rows["usage_events"].select("at", "package", "class_name", "event_type", "position").rows()


def reasons(rejected: list[Rejected]) -> dict[int, str]:
    return {r.position: r.reason for r in rejected}


def at_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def test_collector_csv_gives_the_golden_events() -> None:
    rows, rejected, skipped = run(android_events, FIXTURES / "android_events.csv")
    assert events(rows) == [
        (at_ms(1712040000000), "com.whatsapp", "com.whatsapp.HomeActivity", "RESUMED", 0),
        (at_ms(1712040065000), "com.whatsapp", "com.whatsapp.HomeActivity", "PAUSED", 1),
        (at_ms(1712040066000), "com.whatsapp", "com.whatsapp.Home,Activity", "STOPPED", 2),
        (at_ms(1712040070000), None, None, "SCREEN_OFF", 3),  # device event: package "android" dropped
        (at_ms(1712040071000), None, None, "KEYGUARD_SHOWN", 4),
        (at_ms(1712040076000), "org.mozilla.firefox", "org.mozilla.fenix.HomeActivity", "RESUMED", 10),
    ]
    assert rows["usage_events"]["at"][0] == utc(2024, 4, 2, 6, 40)
    assert reasons(rejected) == {
        6: "unknown Android event type 99",
        7: "timestamp_ms is not an integer",
        8: "timestamp_ms outside 2008..2100 (seconds instead of milliseconds?)",
        9: "app event without a package",
    }
    assert [r.raw for r in rejected if r.position == 7] == ["yesterday,1,com.example,"]
    assert skipped == {"Android event type 7 USER_INTERACTION (not kept)": 1}


def test_collector_jsonl_gives_the_golden_events_and_quarantines_bad_lines() -> None:
    rows, rejected, skipped = run(android_events, FIXTURES / "android_events.jsonl")
    assert events(rows) == [
        (at_ms(1712040000000), "com.whatsapp", "com.whatsapp.HomeActivity", "RESUMED", 0),
        (at_ms(1712040065000), "com.whatsapp", "com.whatsapp.HomeActivity", "PAUSED", 1),
        (at_ms(1712040070000), None, None, "SCREEN_OFF", 3),
        (at_ms(1712040090000), None, None, "STARTUP", 8),
    ]
    found = reasons(rejected)
    assert found[5] == "unknown Android event type 42"
    assert found[6].startswith("not JSON")
    assert found[7] == "not a JSON object"
    assert skipped == {"Android event type 12 NOTIFICATION_INTERRUPTION (not kept)": 1}


def test_an_unknown_event_type_code_is_quarantined_with_its_record(tmp_path: Path) -> None:
    p = tmp_path / "events.csv"
    p.write_text("timestamp_ms,event_type,package,class\n1712040000000,1234,com.example,Main\n")
    rows, rejected, _ = run(android_events, p)
    assert rows["usage_events"].height == 0
    assert [(r.position, r.reason, r.raw) for r in rejected] == [
        (0, "unknown Android event type 1234", "1712040000000,1234,com.example,Main")
    ]


def test_a_csv_without_the_documented_header_is_one_rejected_record(tmp_path: Path) -> None:
    p = tmp_path / "events.csv"
    p.write_text("time,type,pkg\n1712040000000,1,com.example\n")
    rows, rejected, _ = run(android_events, p)
    assert rows["usage_events"].height == 0
    assert [r.position for r in rejected] == [-1] and "timestamp_ms,event_type,package,class" in rejected[
        0
    ].reason


def test_collector_columns_may_come_in_any_order_with_extra_columns(tmp_path: Path) -> None:
    p = tmp_path / "events.csv"
    p.write_text(
        "\ufeffpackage,device,class,event_type,timestamp_ms\r\ncom.example,pixel,Main,MOVE_TO_FOREGROUND,"
        "1712040000000\r\n"
    )
    rows, rejected, _ = run(android_events, p)
    assert rejected == []
    assert events(rows) == [(at_ms(1712040000000), "com.example", "Main", "RESUMED", 0)]


def build_wellbeing(path: Path, *, wal: bool = False, quoted: bool = False) -> Path:
    with sqlite3.connect(path) as db:
        if wal:
            db.execute("PRAGMA journal_mode = WAL")
        db.executescript("""
            CREATE TABLE packages (_id INTEGER PRIMARY KEY AUTOINCREMENT, package_name TEXT NOT NULL UNIQUE);
            CREATE TABLE events (_id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp INTEGER NOT NULL,
                type INTEGER NOT NULL, package_id INTEGER NOT NULL, instance_id INTEGER,
                task_root_package_id INTEGER);
            INSERT INTO packages VALUES (1, 'com.spotify.music'), (2, 'android');
            INSERT INTO events VALUES
                (1, 1712040000000, 1, 1, 7, 1),
                (2, 1712040300000, 2, 1, 7, 1),
                (3, 1712040301000, 23, 1, 7, 1),
                (4, 1712040302000, 16, 2, NULL, NULL),
                (5, 1712040303000, 12, 1, NULL, NULL),
                (6, 1712040304000, 77, 1, NULL, NULL),
                (7, 1712040305000, 1, 9, 8, 9);
        """.replace("TABLE events", 'TABLE "events"' if quoted else "TABLE events"))
    db.close()
    return path


def test_digital_wellbeing_database_gives_the_golden_events(tmp_path: Path) -> None:
    f = InputFile(build_wellbeing(tmp_path / "app_usage"))
    assert wellbeing_db.detect(f)
    rows, rejected, skipped = run(wellbeing_db, f)
    assert events(rows) == [
        (at_ms(1712040000000), "com.spotify.music", None, "RESUMED", 1),
        (at_ms(1712040300000), "com.spotify.music", None, "PAUSED", 2),
        (at_ms(1712040301000), "com.spotify.music", None, "STOPPED", 3),
        (at_ms(1712040302000), None, None, "SCREEN_OFF", 4),
    ]
    assert reasons(rejected) == {6: "unknown Android event type 77", 7: "package_id 9 is not in packages"}
    assert skipped == {"Android event type 12 NOTIFICATION_INTERRUPTION (not kept)": 1}


def test_a_wal_mode_database_is_read_in_memory(tmp_path: Path) -> None:
    path = build_wellbeing(tmp_path / "app_usage", wal=True)
    assert path.read_bytes()[18:20] == b"\x02\x02"
    rows, _, _ = run(wellbeing_db, path)
    assert rows["usage_events"].height == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app_usage"]  # no copy, journal or temp file


def test_a_sqlite_file_without_the_wellbeing_tables_is_one_rejected_record(tmp_path: Path) -> None:
    path = tmp_path / "app_usage"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE other (x)")
    db.close()
    rows, rejected, _ = run(wellbeing_db, path)
    assert [r.position for r in rejected] == [-1] and "missing events._id" in rejected[0].reason


def test_my_activity_launches_are_read_from_the_play_store_id_in_any_language() -> None:
    f = InputFile(MY_ACTIVITY)
    assert takeout_activity.detect(f)
    rows, rejected, skipped = run(takeout_activity, f)
    assert events(rows) == [
        (
            dt.datetime(2020, 4, 18, 15, 0, 17, 361000, tzinfo=dt.UTC),
            "com.google.android.youtube",
            None,
            "LAUNCH",
            0,
        ),
        (utc(2020, 4, 18, 18, 30), "com.google.android.youtube", None, "LAUNCH", 1),  # "YouTube verwendet"
    ]
    assert reasons(rejected) == {
        2: "launch of com.google.android.apps.maps without a valid time",
        5: "entry is not a JSON object",
    }
    # A search, a Play Store install and an entry without a Play Store id are valid, just not launches.
    assert skipped == {takeout_activity.NOT_A_LAUNCH: 3}


def build_knowledgec(path: Path) -> Path:
    def mac(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
        return utc(y, mo, d, h, mi).timestamp() - MAC_EPOCH

    rows = [
        (1, "/app/inFocus", "com.apple.mobilesafari", None, mac(2024, 4, 2, 8), mac(2024, 4, 2, 8, 20), 7200),
        (2, "/app/usage", "com.burbn.instagram", None, mac(2024, 4, 2, 9), mac(2024, 4, 2, 9, 5), 7200),
        (3, "/app/usage", "com.burbn.instagram", None, mac(2024, 4, 2, 10), mac(2024, 4, 2, 9), 7200),
        (4, "/app/inFocus", "com.apple.Maps", None, mac(2024, 4, 2, 10), mac(2024, 4, 4, 10), 7200),
        (5, "/device/isLocked", None, 1, mac(2024, 4, 2, 11), mac(2024, 4, 2, 12), 7200),
        (6, "/device/isLocked", None, 0, mac(2024, 4, 2, 12), mac(2024, 4, 2, 12, 10), 7200),
        (7, "/display/isBacklit", None, 1, mac(2024, 4, 2, 12), mac(2024, 4, 2, 12, 10), 7200),
        (8, "/app/intents", "com.apple.MobileSMS", None, mac(2024, 4, 2, 13), mac(2024, 4, 2, 13), 7200),
        (9, "/safari/history", "https://example.org", None, mac(2024, 4, 2, 13), mac(2024, 4, 2, 13), 7200),
        (10, "/app/usage", None, None, mac(2024, 4, 2, 14), mac(2024, 4, 2, 14, 1), 7200),
    ]
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE ZOBJECT (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, ZSTREAMNAME VARCHAR, "
            "ZVALUESTRING VARCHAR, ZVALUEINTEGER INTEGER, ZSTARTDATE TIMESTAMP, ZENDDATE TIMESTAMP, "
            "ZSECONDSFROMGMT INTEGER, ZSOURCE INTEGER)"
        )
        db.executemany(
            "INSERT INTO ZOBJECT (Z_PK, ZSTREAMNAME, ZVALUESTRING, ZVALUEINTEGER, ZSTARTDATE, ZENDDATE, "
            "ZSECONDSFROMGMT) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    db.close()
    return path


def test_knowledgec_gives_the_golden_intervals_and_device_events(tmp_path: Path) -> None:
    f = InputFile(build_knowledgec(tmp_path / "knowledgeC.db"))
    assert knowledgec.detect(f) and not wellbeing_db.detect(f)
    rows, rejected, skipped = run(knowledgec, f)
    intervals = rows["usage_intervals"].select(
        "start", "end", "utc_offset_min", "package", "stream", "position"
    )
    assert intervals.rows() == [
        (utc(2024, 4, 2, 8), utc(2024, 4, 2, 8, 20), 120, "com.apple.mobilesafari", "/app/inFocus", 1),
        (utc(2024, 4, 2, 9), utc(2024, 4, 2, 9, 5), 120, "com.burbn.instagram", "/app/usage", 2),
    ]
    assert events(rows) == [
        (utc(2024, 4, 2, 11), None, None, "KEYGUARD_SHOWN", 5),
        (utc(2024, 4, 2, 12), None, None, "KEYGUARD_HIDDEN", 6),
        (utc(2024, 4, 2, 12), None, None, "SCREEN_ON", 7),
    ]
    assert reasons(rejected) == {
        3: "ZENDDATE before ZSTARTDATE",
        4: "interval longer than 24 h",
        10: "no bundle id (ZVALUESTRING)",
    }
    assert skipped == {"stream /app/intents (not usage)": 1, "stream /safari/history (not usage)": 1}


@pytest.mark.parametrize(
    ("module", "member", "source"),
    [
        (android_events, "collector/android_events.csv", FIXTURES / "android_events.csv"),
        (android_events, "collector/android_events.jsonl", FIXTURES / "android_events.jsonl"),
        (takeout_activity, "Takeout/My Activity/Android/MyActivity.json", MY_ACTIVITY),
        (wellbeing_db, "phone/app_usage", None),
        (knowledgec, "backup/knowledgeC.db", None),
    ],
    ids=lambda v: v.FORMAT if isinstance(v, ModuleType) else None,
)
def test_a_zip_member_reads_the_same_as_the_plain_file(tmp_path: Path, module, member: str, source) -> None:
    if source is None:
        build = build_wellbeing if module is wellbeing_db else build_knowledgec
        source = build(tmp_path / Path(member).name)
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(source, member)
    zipped = InputFile(archive, member)
    assert module.detect(zipped)
    plain_rows, plain_rejected, plain_skipped = run(module, source)
    zip_rows, zip_rejected, zip_skipped = run(module, zipped)
    assert plain_rows.keys() == zip_rows.keys()
    assert all(zip_rows[t].equals(plain_rows[t]) for t in plain_rows)
    assert [(r.position, r.reason, r.raw) for r in zip_rejected] == [
        (r.position, r.reason, r.raw) for r in plain_rejected
    ]
    assert zip_skipped == plain_skipped


def test_each_usage_source_detects_only_its_own_files(tmp_path: Path) -> None:
    files = {
        android_events: InputFile(FIXTURES / "android_events.csv"),
        takeout_activity: InputFile(MY_ACTIVITY),
        wellbeing_db: InputFile(build_wellbeing(tmp_path / "app_usage")),
        knowledgec: InputFile(build_knowledgec(tmp_path / "knowledgeC.db")),
    }
    for module, f in files.items():
        assert [m.FORMAT for m in files if m.detect(f)] == [module.FORMAT], f.name
    assert android_events.detect(InputFile(FIXTURES / "android_events.jsonl"))


def test_a_wellbeing_database_is_recognised_by_its_schema_under_any_name_with_a_quoted_events_table(tmp_path: Path) -> None:
    path = build_wellbeing(tmp_path / "phone-backup.sqlite", quoted=True)  # as a real Digital Wellbeing database
    with sqlite3.connect(path) as db:
        assert 'CREATE TABLE "events"' in db.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    db.close()
    f = InputFile(path)
    assert wellbeing_db.detect(f) and not knowledgec.detect(f)
    rows, _, _ = run(wellbeing_db, f)
    assert rows["usage_events"].height == 4


def test_a_knowledgec_database_whose_schema_lies_past_64_kib_is_recognised_under_any_name(tmp_path: Path) -> None:
    path = tmp_path / "CoreDuet.bin"
    with sqlite3.connect(path) as db:
        for i in range(300):  # a real knowledgeC.db declares ~100 tables before ZOBJECT's pages
            db.execute(f"CREATE TABLE ZFILLER{i} ({', '.join(f'ZCOLUMN_WITH_A_LONG_NAME_{j} VARCHAR' for j in range(12))})")
    db.close()
    build_knowledgec(path)
    assert path.read_bytes()[:65536].find(b"ZSTREAMNAME") == -1
    f = InputFile(path)
    assert knowledgec.detect(f) and not wellbeing_db.detect(f)
    rows, _, _ = run(knowledgec, f)
    assert rows["usage_intervals"].height == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CoreDuet.bin"]  # opened in place, read-only


def test_a_file_that_only_starts_like_sqlite_is_not_taken_for_a_database(tmp_path: Path) -> None:
    path = tmp_path / "fake.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200 + b"CREATE TABLE events package_name task_root_package_id")
    f = InputFile(path)
    assert not wellbeing_db.detect(f) and not knowledgec.detect(f)


def test_a_database_with_a_damaged_schema_is_one_rejected_record_on_one_line(tmp_path: Path) -> None:
    path = build_wellbeing(tmp_path / "app_usage", quoted=True)
    data = path.read_bytes()
    assert data.count(b'TABLE "events" (') == 1
    path.write_bytes(data.replace(b'TABLE "events" (', b'TABLE "events\x80 ('))  # a quote lost, a byte not UTF-8
    rows, rejected, _ = run(wellbeing_db, path)
    assert rows == {} or rows["usage_events"].height == 0
    (r,) = rejected
    assert r.position == -1 and r.reason.startswith("unreadable SQLite database") and "\n" not in r.reason


def test_a_my_activity_entry_whose_link_is_not_a_url_is_counted_not_a_launch(tmp_path: Path) -> None:
    path = tmp_path / "MyActivity.json"
    path.write_text(json.dumps([{"header": "x", "title": "Used X", "titleUrl": "http://[play.google.com/store",
                                 "time": "2024-04-02T08:00:00Z", "products": ["Android"]}]))
    rows, rejected, skipped = run(takeout_activity, path)
    assert rejected == [] and skipped == {takeout_activity.NOT_A_LAUNCH: 1}
