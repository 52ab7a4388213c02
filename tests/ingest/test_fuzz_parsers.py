"""Every parser survives structured mutations of valid files: no exception escapes, time and memory stay
bounded, and every record is loaded, quarantined or counted as skipped.

Seeds are the valid fixtures of each source (and SQLite databases built in memory); mutations are
truncation, deep nesting, huge fields, bad bytes, duplicated slices, and -- for JSON and SQLite -- values
of the wrong type put where a record's field or a whole record was. The zip/folder expansion and the
Records.json C fast path (`ingest._records.parse`) get their own properties.

Short by default (a few examples per parser, the file runs in well under a minute). LIFEVAULT_FUZZ_EXAMPLES=N
runs N examples per property (`make fuzz` does, with the C module built under AddressSanitizer and loaded
from LIFEVAULT_RECORDS_ASAN).
"""

from __future__ import annotations

import copy
import importlib.machinery
import importlib.util
import json
import os
import resource
import sqlite3
import tempfile
import time
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.detect import pick
from ingest.files import InputFile, scan
from ingest.guard import guarded
from ingest.records import RAW_LIMIT, TABLES, Rejected
from ingest.sources.calendar import ics
from ingest.sources.location import google_records, google_semantic, google_timeline, gpx
from ingest.sources.usage import android_events, knowledgec, takeout_activity, wellbeing_db
from tests.ingest.location import (
    ANDROID,
    GPX_10,
    GPX_11,
    IOS,
    RECORDS_NEW,
    RECORDS_OLD,
    SEMANTIC_ISO,
    SEMANTIC_MS_BOM,
)

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # large example reprs
EXAMPLES = int(os.environ.get("LIFEVAULT_FUZZ_EXAMPLES", "0") or 0)
FUZZ = settings(
    max_examples=EXAMPLES or 10,
    deadline=None,
    derandomize=not EXAMPLES,  # the short run is the same every time; a long one explores
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    database=None,
)
SECONDS_PER_FILE = 30.0  # ics gets 20 s of expansion per file at most (budget.EXPANSION_FILE_SECONDS)
MAX_RSS_GROWTH_MIB = 1024
FIXTURES = Path(__file__).parent / "fixtures"
CAL = FIXTURES / "calendar"
USAGE = FIXTURES / "usage"
MY_ACTIVITY = USAGE / "My Activity" / "Android" / "MyActivity.json"
NOW = {"now": __import__("datetime").datetime(2024, 6, 1, tzinfo=__import__("datetime").UTC)}


# --- seeds ----------------------------------------------------------------------------------------


def _sqlite(script: str, rows: list[tuple] | None = None, insert: str | None = None) -> bytes:
    conn = sqlite3.connect(":memory:")
    conn.executescript(script)
    if rows and insert:
        conn.executemany(insert, rows)
    conn.commit()
    data = conn.serialize()
    conn.close()
    return data


WELLBEING_SCHEMA = """
    CREATE TABLE packages (_id INTEGER PRIMARY KEY, package_name TEXT);
    CREATE TABLE "events" (_id INTEGER PRIMARY KEY, timestamp INTEGER, type INTEGER, package_id INTEGER,
        instance_id INTEGER, task_root_package_id INTEGER);
    INSERT INTO packages VALUES (1, 'com.spotify.music'), (2, 'android');
"""
WELLBEING_INSERT = "INSERT INTO events (_id, timestamp, type, package_id) VALUES (?, ?, ?, ?)"
WELLBEING_ROWS = [(1, 1712040000000, 1, 1), (2, 1712040300000, 2, 1), (3, 1712040302000, 16, 2), (4, 1712040303000, 12, 1)]
KNOWLEDGEC_SCHEMA = """
    CREATE TABLE ZOBJECT (Z_PK INTEGER PRIMARY KEY, ZSTREAMNAME VARCHAR, ZVALUESTRING VARCHAR,
        ZVALUEINTEGER INTEGER, ZSTARTDATE TIMESTAMP, ZENDDATE TIMESTAMP, ZSECONDSFROMGMT INTEGER);
"""
KNOWLEDGEC_INSERT = "INSERT INTO ZOBJECT VALUES (?, ?, ?, ?, ?, ?, ?)"
KNOWLEDGEC_ROWS = [(1, "/app/inFocus", "com.apple.mobilesafari", None, 733651200.0, 733652400.0, 7200),
                   (2, "/device/isLocked", None, 1, 733655000.0, 733656000.0, 7200),
                   (3, "/safari/history", "https://example.org", None, 733657000.0, 733657000.0, 7200)]

# (id, module, file name, seed bytes, options, records(doc) for JSON seeds or None)
SEEDS: list[tuple[str, ModuleType, str, Any, dict]] = [
    ("records-iso", google_records, "Records.json", lambda: RECORDS_NEW.read_bytes(), {}),
    ("records-ms", google_records, "Records.json", lambda: RECORDS_OLD.read_bytes(), {}),
    ("semantic", google_semantic, "2023_JANUARY.json", lambda: SEMANTIC_ISO.read_bytes(), {}),
    ("semantic-bom", google_semantic, "2013_MARCH.json", lambda: SEMANTIC_MS_BOM.read_bytes(), {}),
    ("timeline-android", google_timeline, "Timeline.json", lambda: ANDROID.read_bytes(), {}),
    ("timeline-ios", google_timeline, "location-history.json", lambda: IOS.read_bytes(), {}),
    ("gpx-1.1", gpx, "run.gpx", lambda: GPX_11.read_bytes(), {}),
    ("gpx-1.0", gpx, "hike.gpx", lambda: GPX_10.read_bytes(), {}),
    ("ics-work", ics, "work.ics", lambda: (CAL / "work.ics").read_bytes(), NOW),
    ("ics-floating", ics, "floating.ics", lambda: (CAL / "floating.ics").read_bytes(), NOW),
    ("ics-this-and-future", ics, "future.ics", lambda: (CAL / "this_and_future.ics").read_bytes(), NOW),
    ("usage-csv", android_events, "usage_events.csv", lambda: (USAGE / "android_events.csv").read_bytes(), {}),
    ("usage-jsonl", android_events, "usage_events.jsonl", lambda: (USAGE / "android_events.jsonl").read_bytes(), {}),
    ("my-activity", takeout_activity, "MyActivity.json", lambda: MY_ACTIVITY.read_bytes(), {}),
    ("wellbeing", wellbeing_db, "app_usage", lambda: _sqlite(WELLBEING_SCHEMA, WELLBEING_ROWS, WELLBEING_INSERT), {}),
    ("knowledgec", knowledgec, "knowledgeC.db", lambda: _sqlite(KNOWLEDGEC_SCHEMA, KNOWLEDGEC_ROWS, KNOWLEDGEC_INSERT), {}),
]
JSON_SEEDS = {"records-iso", "records-ms", "semantic", "semantic-bom", "timeline-android", "timeline-ios", "my-activity"}


# --- mutations ------------------------------------------------------------------------------------

WRONG = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40), st.just("x" * 200_000),
    st.just([]), st.just({}), st.just("9" * 400), st.just(json.loads("[" * 50 + "]" * 50)),
)
OPENERS = [b"[", b'{"a":', b"<a>", b"BEGIN:VEVENT\r\n", b'"', b"{"]


@st.composite
def byte_mutations(draw: st.DrawFn, seed: bytes) -> bytes:
    at = draw(st.integers(0, len(seed)))
    kind = draw(st.sampled_from(["truncate", "bad bytes", "deep", "huge field", "duplicate"]))
    if kind == "truncate":
        return seed[:at]
    if kind == "bad bytes":
        junk = draw(st.binary(min_size=1, max_size=64))
        return seed[:at] + junk + seed[at + len(junk):]
    if kind == "deep":
        depth = draw(st.sampled_from([64, 1000, 200_000]))
        return seed[:at] + draw(st.sampled_from(OPENERS)) * depth + seed[at:]
    if kind == "huge field":
        size = draw(st.sampled_from([1 << 10, (128 << 10) + 1, 2 << 20]))
        return seed[:at] + draw(st.sampled_from([b"A", b"9", b" ", b"\xff", b","])) * size + seed[at:]
    stop = draw(st.integers(at, len(seed)))
    return seed[:stop] + seed[at:stop] + seed[stop:]


def _slots(doc: Any, path: tuple = ()) -> list[tuple]:
    """Every place in a JSON document a value sits (as a path of keys / indexes)."""
    out = [path]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _slots(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _slots(v, (*path, i))
    return out


def _put(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


@st.composite
def json_mutations(draw: st.DrawFn, seed: bytes) -> bytes:
    """A value of the wrong type (or a deep or huge one) where a field or a record was."""
    doc = json.loads(seed.decode("utf-8-sig"))
    slots = _slots(doc)
    for _ in range(draw(st.integers(1, 3))):
        doc = _put(doc, slots[draw(st.integers(0, len(slots) - 1))], copy.deepcopy(draw(WRONG)))  # (st.just is shared)
        slots = _slots(doc) if isinstance(doc, dict | list) else [()]
    return json.dumps(doc).encode()


@st.composite
def sqlite_mutations(draw: st.DrawFn, seed_id: str) -> bytes:
    """A database of the right schema holding values of any type, in any column."""
    schema, insert, rows = ((WELLBEING_SCHEMA, WELLBEING_INSERT, WELLBEING_ROWS) if seed_id == "wellbeing"
                            else (KNOWLEDGEC_SCHEMA, KNOWLEDGEC_INSERT, KNOWLEDGEC_ROWS))
    value = st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=True),
                      st.text(max_size=30), st.binary(max_size=30), st.sampled_from(["/app/usage", "/display/isBacklit"]))
    fuzzed = [tuple(v if draw(st.booleans()) else draw(value) for v in row) for row in rows]
    fuzzed = [(i + 1, *row[1:]) for i, row in enumerate(fuzzed)]  # primary keys stay unique
    return _sqlite(schema, fuzzed, insert)


def mutations(seed_id: str, seed: bytes) -> st.SearchStrategy[bytes]:
    choices = [byte_mutations(seed)]
    if seed_id in JSON_SEEDS:
        choices.append(json_mutations(seed))
    if seed_id in ("wellbeing", "knowledgec"):
        choices.append(sqlite_mutations(seed_id))
    return st.one_of(choices)


# --- properties -----------------------------------------------------------------------------------


def consume(module: ModuleType, f: InputFile, options: dict) -> tuple[dict[str, list], list[Rejected], dict[str, int]]:
    """Run a source to the end the way the pipeline does (without the guard: nothing may escape)."""
    rows: dict[str, list] = {}
    rejected: list[Rejected] = []
    gen = module.batches(f, **options)
    while True:
        try:
            batch = next(gen)
        except StopIteration as stop:
            return rows, rejected, dict(stop.value or {})
        assert batch.rows.schema == TABLES[batch.table]
        rows.setdefault(batch.table, []).extend(batch.rows["position"].to_list())
        rejected.extend(batch.rejected)


def check_rejects(module: ModuleType, f: InputFile, rejected: list[Rejected]) -> None:
    for r in rejected:
        assert r.format == module.FORMAT and r.file == f.name and r.position >= -1
        assert r.reason and "\n" not in r.reason and len(r.raw) <= RAW_LIMIT + 1


def expected_records(seed_id: str, data: bytes) -> int | None:
    """How many records a JSON document holds, when its shape is still the export's (else None)."""
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return None
    if seed_id.startswith("records") and isinstance(doc, dict) and isinstance(doc.get("locations"), list):
        return len(doc["locations"])
    if seed_id.startswith("semantic") and isinstance(doc, dict) and isinstance(doc.get("timelineObjects"), list):
        return len(doc["timelineObjects"])
    if seed_id in ("timeline-ios", "my-activity") and isinstance(doc, list):
        return len(doc)
    return None


@pytest.fixture(scope="module", autouse=True)
def asan_records():
    """Under `make fuzz`, the Records.json fast path is the AddressSanitizer build of ingest/_records.c."""
    path = os.environ.get("LIFEVAULT_RECORDS_ASAN")
    if not path:
        yield
        return
    loader = importlib.machinery.ExtensionFileLoader("ingest._records", path)
    spec = importlib.util.spec_from_loader("ingest._records", loader)
    native = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    loader.exec_module(native)
    saved, google_records._native = google_records._native, native
    try:
        yield
    finally:
        google_records._native = saved


@pytest.fixture(scope="module", autouse=True)
def bounded_memory():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown < MAX_RSS_GROWTH_MIB, f"peak RSS grew {grown:.0f} MiB while fuzzing"


@pytest.mark.parametrize(("seed_id", "module", "name", "seed", "options"), SEEDS, ids=[s[0] for s in SEEDS])
def test_no_mutation_of_a_valid_file_escapes_its_parser(seed_id, module, name, seed, options):
    data0 = seed()

    @FUZZ
    @given(data=mutations(seed_id, data0))
    def prop(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            f = InputFile(path)
            t0 = time.monotonic()
            rows, rejected, skipped = consume(module, f, options)
            assert time.monotonic() - t0 < SECONDS_PER_FILE
            check_rejects(module, f, rejected)
            n = expected_records(seed_id, data)
            if n is not None and not any(r.position == -1 for r in rejected):
                seen = {p for positions in rows.values() for p in positions} | {r.position for r in rejected}
                missing = set(range(n)) - seen
                assert len(missing) <= sum(skipped.values()), f"records neither loaded, quarantined nor counted: {missing}"

    prop()


def _archive(tmp: Path, members: dict[str, bytes]) -> Path:
    path = tmp / "takeout.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@FUZZ
@given(data=st.data())
def test_no_mutation_of_an_archive_or_folder_escapes_expansion(data):
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        members = {"Takeout/Location History/Records.json": RECORDS_NEW.read_bytes(),
                   "Takeout/Calendar/work.ics": (CAL / "work.ics").read_bytes(),
                   "Takeout/usage_events.csv": (USAGE / "android_events.csv").read_bytes(),
                   "Takeout/run.gpx": GPX_11.read_bytes()}
        archive = _archive(tmp, members)
        archive.write_bytes(data.draw(byte_mutations(archive.read_bytes())))
        folder = tmp / "export"
        folder.mkdir()
        archive.rename(folder / "takeout.zip")
        (folder / "loop").symlink_to(folder, target_is_directory=True)
        (folder / "out.ics").symlink_to("/etc/hostname")
        os.mkfifo(folder / "pipe.json")
        found = scan([folder])
        assert {Path(p).name for p in found.not_read} >= {"loop", "out.ics", "pipe.json"}
        for f in found.files:
            mod = pick(f)
            if mod is None:
                continue
            options = NOW if mod.KIND == "calendar" else {}
            t0 = time.monotonic()
            for batch in guarded(f, mod, options):
                assert batch.rows.schema == TABLES[batch.table]
                check_rejects(mod, f, batch.rejected)
            assert time.monotonic() - t0 < SECONDS_PER_FILE


@pytest.mark.skipif(google_records._native is None, reason="ingest._records is not built")
@FUZZ
@given(buf=st.one_of(st.binary(max_size=512), byte_mutations(RECORDS_NEW.read_bytes()[:4096])),
       pos=st.integers(-10, 5000), end=st.integers(-10, 5000))
def test_the_records_c_fast_path_reads_any_bytes_at_any_offsets_without_crashing(buf, pos, end):
    got = google_records._native.parse(buf, pos, end)
    if got is not None:
        n, used = got[0], got[1]
        assert n >= 1 and 0 < used <= min(len(buf), end) - pos
        assert google_records._fast_native(buf, pos, end) is not None
