"""App usage in four real layouts: the collector CSV (UsageStatsManager events), the Digital Wellbeing
`app_usage` database (its last couple of weeks), Takeout My Activity "Used X" entries and the iPad's
knowledgeC.db. SQLite files are built in memory and written from `serialize()` (byte-identical per seed).

Each writer returns (rows per ingest table, records in the file, positions of planted bad records, valid
records that are not usage data).
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ingest.apps import describe
from synth.usage import ANDROID_APPS, Pickup, Usage

MAC_EPOCH = 978_307_200
KEPT = {1, 2, 23, 15, 16, 17, 18, 26, 27}
DEVICE = "android"  # the package Android reports device events under


@dataclass(slots=True)
class Out:
    rows: dict[str, int] = field(default_factory=dict)
    records: int = 0
    bad_positions: list[int] = field(default_factory=list)
    not_data: int = 0


def _ms(t: datetime) -> int:
    return int(round(t.timestamp() * 1000))


def android_events(pickups: tuple[Pickup, ...], restarts: tuple[datetime, ...],
                   rng: random.Random) -> list[tuple[int, int, str, str]]:
    """(timestamp_ms, code, package, class) in time order, as UsageStatsManager.queryEvents returns them."""
    rows: list[tuple[int, int, str, str]] = []
    for p in pickups:
        on = _ms(p.start)
        ev = [(on, 15, DEVICE, ""), (on + rng.randint(300, 2500), 18, DEVICE, "")]
        for u in p.uses:
            cls = ANDROID_APPS[u.package][0]
            end = _ms(u.end)
            ev += [(_ms(u.start), 1, u.package, cls), (end, 2, u.package, cls),
                   (end + rng.randint(250, 900), 23, u.package, cls)]
        ev += [(_ms(t), 5, DEVICE, "") for t in p.config_changes]
        off = _ms(p.end)
        ev += [(off, 16, DEVICE, ""), (off + rng.randint(5, 400), 17, DEVICE, "")]
        rows.extend(sorted(ev))
    for r in restarts:
        rows += [(_ms(r), 26, DEVICE, ""), (_ms(r + timedelta(seconds=rng.uniform(45, 90))), 27, DEVICE, "")]
    rows.sort(key=lambda x: x[0])
    return rows


def write_csv(path: Path, rows: list[tuple[int, int, str, str]], *, plant_bad: bool) -> Out:
    out = Out(rows={"usage_events": sum(r[1] in KEPT for r in rows)}, not_data=sum(r[1] not in KEPT for r in rows))
    lines = [f"{t},{code},{pkg},{cls}" for t, code, pkg, cls in rows]
    if plant_bad and rows:
        t = rows[len(rows) // 3][0]
        bad = [(len(rows) // 3, f"{t},99,com.whatsapp,com.whatsapp.HomeActivity"),  # a code Android does not define
               (2 * len(rows) // 3 + 1, f"{rows[2 * len(rows) // 3][0] // 1000},1,com.slack,com.slack.app.MainActivity")]
        for pos, line in bad:  # the second one: seconds instead of milliseconds
            lines.insert(pos, line)
            out.bad_positions.append(pos)
    out.records = len(lines)
    path.write_text("timestamp_ms,event_type,package,class\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return out


def _sqlite_bytes(build: list[str], inserts: list[tuple[str, list[tuple]]]) -> bytes:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("PRAGMA page_size = 4096")
        for sql in build:
            conn.execute(sql)
        for sql, rows in inserts:
            conn.executemany(sql, rows)
        conn.commit()
        return conn.serialize()
    finally:
        conn.close()


def write_wellbeing(path: Path, rows: list[tuple[int, int, str, str]], since: datetime, *, seed: int,
                    plant_bad: bool) -> Out:
    rng = random.Random(f"lifevault-synth:{seed}:wellbeing")
    recent = [r for r in rows if r[0] >= _ms(since)]
    packages = {name: i for i, name in enumerate(sorted({r[2] for r in recent} | {DEVICE}), start=1)}
    instance: dict[str, int] = {}
    events: list[tuple] = []
    for t, code, pkg, _ in recent:
        if code == 1:
            instance[pkg] = rng.randint(1, 2**31 - 1)
        iid = instance.get(pkg) if code in (1, 2, 23) else None
        pid = packages[pkg]
        events.append((len(events) + 1, t, code, pid, iid, pid))
    out = Out(rows={"usage_events": sum(e[2] in KEPT for e in events)}, not_data=sum(e[2] not in KEPT for e in events))
    if plant_bad and events:
        mid = events[len(events) // 2]
        events.append((len(events) + 1, mid[1] + 1, 42, packages[DEVICE], None, packages[DEVICE]))  # undefined code
        out.bad_positions.append(len(events))
    out.records = len(events)
    data = _sqlite_bytes(
        ["CREATE TABLE packages (_id INTEGER PRIMARY KEY AUTOINCREMENT, package_name TEXT NOT NULL UNIQUE)",
         "CREATE TABLE events (_id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp INTEGER NOT NULL, "
         "type INTEGER NOT NULL, package_id INTEGER NOT NULL, instance_id INTEGER, task_root_package_id INTEGER, "
         "FOREIGN KEY (package_id) REFERENCES packages (_id))",
         "CREATE INDEX events_timestamp_idx ON events (timestamp)"],
        [("INSERT INTO packages (_id, package_name) VALUES (?, ?)", [(i, n) for n, i in packages.items()]),
         ("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", events)],
    )
    path.write_bytes(data)
    return out


def write_my_activity(path: Path, usage: Usage, *, plant_bad: bool) -> Out:
    """One "Used X" entry per app use, at most one per app every 30 minutes (Takeout's granularity), newest first."""
    last: dict[str, datetime] = {}
    entries = []
    for p in usage.phone:
        for u in p.uses:
            if u.package in last and u.start - last[u.package] < timedelta(minutes=30):
                continue
            last[u.package] = u.start
            app, _ = describe(u.package)
            entries.append({"header": app, "title": f"Used {app}",
                            "titleUrl": f"https://play.google.com/store/apps/details?id={u.package}",
                            "time": u.start.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                            "products": ["Android"], "activityControls": ["Web & App Activity"]})
    entries.reverse()
    out = Out(rows={"usage_events": len(entries)})
    if plant_bad and entries:
        at = len(entries) // 2
        broken = dict(entries[at], time="yesterday evening")
        entries.insert(at, broken)
        out.bad_positions.append(at)
    out.records = len(entries)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return out


def write_knowledgec(path: Path, usage: Usage, *, seed: int, plant_bad: bool) -> Out:
    """The iPad's ZOBJECT: /app/usage intervals, /display/isBacklit and /device/isLocked states, a few intents."""
    rng = random.Random(f"lifevault-synth:{seed}:knowledgec")
    rows: list[list[Any]] = []
    out = Out(rows={"usage_intervals": 0, "usage_events": 0})

    def add(stream: str, start: datetime, end: datetime, offset: int, *, value: str | None = None,
            integer: int | None = None) -> None:
        s, e = start.timestamp() - MAC_EPOCH, end.timestamp() - MAC_EPOCH
        rows.append([stream, value, integer, round(s, 3), round(e, 3), offset])

    for p in usage.ipad:
        add("/display/isBacklit", p.start, p.end, p.offset_s, integer=1)
        unlock = p.start + timedelta(seconds=rng.uniform(0.5, 2.0))
        add("/device/isLocked", unlock, p.end, p.offset_s, integer=0)
        for u in p.uses:
            add("/app/usage", u.start, u.end, p.offset_s, value=u.package)
            out.rows["usage_intervals"] += 1
            if u.package == "com.apple.MobileSMS" or rng.random() < 0.1:
                add("/app/intents", u.start, u.start + timedelta(seconds=1), p.offset_s, value=u.package)
                out.not_data += 1
        add("/display/isBacklit", p.end, p.end + timedelta(seconds=1), p.offset_s, integer=0)
        add("/device/isLocked", p.end + timedelta(seconds=0.2), p.end + timedelta(seconds=1), p.offset_s, integer=1)
        out.rows["usage_events"] += 4
    if plant_bad:
        at = len(rows) // 2
        ref: list[Any] = rows[at] if rows else ["/app/usage", None, None, 780_000_000.0, 780_000_060.0, 0]
        rows.insert(at, ["/app/usage", "com.apple.mobilesafari", None, ref[3] + 600, ref[3], ref[5]])  # ends first
        out.bad_positions.append(at + 1)  # Z_PK
    table = []
    for pk, (stream, value, integer, s, e, off) in enumerate(rows, start=1):
        table.append((pk, 11, 1, str(uuid.UUID(int=rng.getrandbits(128))).upper(), stream, value, integer,
                      0 if value else 1, s, e, e + rng.uniform(0, 30), off, 1))
    out.records = len(table)
    data = _sqlite_bytes(
        ["CREATE TABLE ZSOURCE (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZBUNDLEID VARCHAR, "
         "ZDEVICEID VARCHAR, ZSOURCEID VARCHAR)",
         "CREATE TABLE ZOBJECT (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZUUID VARCHAR, "
         "ZSTREAMNAME VARCHAR, ZVALUESTRING VARCHAR, ZVALUEINTEGER INTEGER, ZVALUETYPECODE INTEGER, "
         "ZSTARTDATE TIMESTAMP, ZENDDATE TIMESTAMP, ZCREATIONDATE TIMESTAMP, ZSECONDSFROMGMT INTEGER, "
         "ZSOURCE INTEGER)",
         "CREATE INDEX ZOBJECT_ZSTREAMNAME_ZSTARTDATE ON ZOBJECT (ZSTREAMNAME, ZSTARTDATE)"],
        [("INSERT INTO ZSOURCE VALUES (?, ?, ?, ?, ?, ?)",
          [(1, 4, 1, "com.apple.springboard", "iPad13,18", "usage")]),
         ("INSERT INTO ZOBJECT VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", table)],
    )
    path.write_bytes(data)
    return out
