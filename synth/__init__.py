"""A synthetic persona: a plausible year of one person's life, written as REAL export files in every format
lifevault ingests, deterministic per seed, with its ground truth.

    from synth import generate
    manifest = generate(out_dir, seed=7, days=365)       # -> Manifest (files, counts, truth)
    manifest.truth.to_json()                             # places, visits, trips, occurrences, app sessions

Layout of out_dir:
    Takeout/Location History (Timeline)/Records.json                       google_records
    Takeout/Location History (Timeline)/Semantic Location History/YYYY/YYYY_MONTH.json   google_semantic
    Takeout/My Activity/Android/MyActivity.json                            takeout_my_activity
    Timeline.json            on-device Android Timeline, last ~2 months    google_timeline
    location-history.json    iOS Timeline export around the Lisbon trip    google_timeline (iOS)
    gpx/*.gpx                runs and a hike                               gpx
    calendar.ics                                                           ics
    usage_events.csv         collector CSV (UsageStatsManager codes)       android_usage_events
    app_usage                Digital Wellbeing SQLite, last 2 weeks        android_digital_wellbeing
    knowledgeC.db            the iPad, last 3 weeks                        apple_knowledgec

Deliberate overlaps (the pipeline deduplicates or must): Timeline.json re-describes the last two months
of Records/Semantic, location-history.json the Lisbon trip, app_usage repeats the CSV's last two weeks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from synth.life import Life, live
from synth.persona import (
    PLACES,
    AppSession,
    Attendee,
    GroundTruth,
    Movement,
    Occurrence,
    Persona,
    Place,
    Trip,
    Visit,
    Workout,
)
from synth.usage import habits
from synth.write_calendar import write_calendar
from synth.write_records import sample, write_gpx, write_records
from synth.write_timeline import write_android_timeline, write_ios_timeline, write_semantic
from synth.write_usage import (
    android_events,
    write_csv,
    write_knowledgec,
    write_my_activity,
    write_wellbeing,
)

__all__ = ["PLACES", "AppSession", "Attendee", "GroundTruth", "Manifest", "Movement", "Occurrence", "Persona", "Place", "Trip",
           "Visit", "Workout", "WrittenFile", "generate", "write"]

LOCATION_DIR = Path("Takeout") / "Location History (Timeline)"


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """One export file and what a correct parser finds in it."""

    path: Path
    kind: str  # location | calendar | usage
    format: str  # the ingest source FORMAT that reads it
    records: int  # top-level records in the file, bad ones included (see `unit`)
    unit: str  # what a record is: "locations entry", "timelineObject", "VEVENT", "CSV data row", ...
    rows: dict[str, int]  # expected ok rows per ingest.records table
    bad_positions: tuple[int, ...] = ()  # positions (the parser's `position`) of the planted bad records
    not_data: int = 0  # valid records a source skips without quarantining (rotations, intents, ...)

    @property
    def bad(self) -> int:
        return len(self.bad_positions)


@dataclass(frozen=True, slots=True)
class Manifest:
    root: Path
    persona: Persona
    files: dict[str, tuple[Path, ...]]  # format -> files
    outputs: tuple[WrittenFile, ...]
    counts: dict[str, int]
    truth: GroundTruth

    def by_kind(self, kind: str) -> tuple[WrittenFile, ...]:
        return tuple(f for f in self.outputs if f.kind == kind)

    def by_format(self, fmt: str) -> tuple[WrittenFile, ...]:
        return tuple(f for f in self.outputs if f.format == fmt)


def generate(out_dir: Path, *, seed: int = 7, days: int = 365, end: date = date(2025, 10, 31),
             points_target: int | None = None, plant_bad: bool = True) -> Manifest:
    """Write the persona's exports under out_dir (created if needed) and return what was written."""
    return write(Path(out_dir), Persona(seed=seed, days=days, end=end), points_target=points_target,
                 plant_bad=plant_bad)


def _clear_stale(out: Path) -> None:
    """Remove month/track files a previous run left (only the generator's own file patterns)."""
    for folder, pattern in ((out / LOCATION_DIR / "Semantic Location History", "*/*_*.json"), (out / "gpx", "*.gpx")):
        if folder.is_dir():
            for f in folder.glob(pattern):
                f.unlink()


def write(out: Path, persona: Persona, *, points_target: int | None = None, plant_bad: bool = True) -> Manifest:
    """generate() with a full Persona (densities, how far back each export reaches, ...)."""
    if points_target is not None and points_target < 0:
        raise ValueError("points_target must be >= 0")
    out.mkdir(parents=True, exist_ok=True)
    _clear_stale(out)
    life: Life = live(persona)
    usage = habits(life)
    outputs: list[WrittenFile] = []
    loc = out / LOCATION_DIR
    loc.mkdir(parents=True, exist_ok=True)

    pts = sample(life, points_target=points_target)
    bad = write_records(loc / "Records.json", pts, seed=persona.seed, legacy_fraction=persona.legacy_timestamp_fraction,
                        plant_bad=plant_bad)
    outputs.append(WrittenFile(loc / "Records.json", "location", "google_records", len(pts) + len(bad),
                               "locations entry", {"points": len(pts)}, tuple(bad)))
    tag = random.Random(f"lifevault-synth:{persona.seed}:device").randint(-2**31, 2**31 - 1)
    for w in write_semantic(loc, life, tag=tag, plant_bad=plant_bad):
        outputs.append(WrittenFile(w.path, "location", "google_semantic", sum(w.counts.values()) + len(w.bad_positions),
                                   "timelineObject", dict(w.counts), tuple(w.bad_positions)))
    w = write_android_timeline(out / "Timeline.json", life, pts, plant_bad=plant_bad)
    outputs.append(WrittenFile(w.path, "location", "google_timeline",
                               w.counts["visits"] + w.counts["segments"] + w.counts["path_points"] + w.counts["raw_signals"]
                               + w.not_data + len(w.bad_positions), "visit/activity/path point/raw signal",
                               {"visits": w.counts["visits"], "segments": w.counts["segments"],
                                "points": w.counts["path_points"] + w.counts["raw_signals"]},
                               tuple(w.bad_positions), w.not_data))
    w = write_ios_timeline(out / "location-history.json", life, plant_bad=plant_bad)
    outputs.append(WrittenFile(w.path, "location", "google_timeline",
                               w.counts["visits"] + w.counts["segments"] + w.counts["path_points"] + len(w.bad_positions),
                               "visit/activity/path point", {"visits": w.counts["visits"], "segments": w.counts["segments"],
                                                             "points": w.counts["path_points"]}, tuple(w.bad_positions)))
    for workout, move in life.workouts:
        path, n = write_gpx(out / "gpx", workout, move, seed=persona.seed)
        outputs.append(WrittenFile(path, "location", "gpx", n, "trkpt", {"points": n}))

    occurrences, vevents, bad = write_calendar(out / "calendar.ics", life, plant_bad=plant_bad)
    outputs.append(WrittenFile(out / "calendar.ics", "calendar", "ics", vevents, "VEVENT",
                               {"events": len(occurrences)}, tuple(bad)))

    rows = android_events(usage.phone, usage.restarts, random.Random(f"lifevault-synth:{persona.seed}:events"))
    u = write_csv(out / "usage_events.csv", rows, plant_bad=plant_bad)
    outputs.append(WrittenFile(out / "usage_events.csv", "usage", "android_usage_events", u.records, "CSV data row",
                               u.rows, tuple(u.bad_positions), u.not_data))
    _, end_utc = persona.period_utc()
    since = end_utc - timedelta(days=min(persona.wellbeing_days, persona.days))
    u = write_wellbeing(out / "app_usage", rows, since, seed=persona.seed, plant_bad=plant_bad)
    outputs.append(WrittenFile(out / "app_usage", "usage", "android_digital_wellbeing", u.records, "events row",
                               u.rows, tuple(u.bad_positions), u.not_data))
    act = out / "Takeout" / "My Activity" / "Android" / "MyActivity.json"
    u = write_my_activity(act, usage, plant_bad=plant_bad)
    outputs.append(WrittenFile(act, "usage", "takeout_my_activity", u.records, "activity entry", u.rows,
                               tuple(u.bad_positions)))
    u = write_knowledgec(out / "knowledgeC.db", usage, seed=persona.seed, plant_bad=plant_bad)
    outputs.append(WrittenFile(out / "knowledgeC.db", "usage", "apple_knowledgec", u.records, "ZOBJECT row", u.rows,
                               tuple(u.bad_positions), u.not_data))

    truth = GroundTruth(
        persona=persona, period=persona.period_utc(),
        places=tuple(sorted({s.place.key: s.place for s in life.stays}.values(), key=lambda p: p.key)),
        visits=tuple(Visit(s.place.key, s.start, s.end, s.place.tz) for s in life.stays),
        movements=tuple(m.truth() for m in life.moves), trips=life.trips,
        workouts=tuple(w for w, _ in life.workouts), occurrences=occurrences, sessions=usage.sessions(),
        holidays=tuple(life.holidays),
    )
    files: dict[str, list[Path]] = {}
    for f in outputs:
        files.setdefault(f.format, []).append(f.path)

    def total(fmt: str, table: str) -> int:
        return sum(f.rows.get(table, 0) for f in outputs if f.format == fmt)

    counts = {
        "files": len(outputs),
        "points": len(pts),
        "gpx_points": total("gpx", "points"),
        "visits": len(truth.visits),
        "movements": len(truth.movements),
        "semantic_visits": total("google_semantic", "visits"),
        "semantic_segments": total("google_semantic", "segments"),
        "timeline_visits": total("google_timeline", "visits"),
        "timeline_points": total("google_timeline", "points"),
        "vevents": vevents,
        "occurrences": len(occurrences),
        "usage_events": total("android_usage_events", "usage_events"),
        "wellbeing_events": total("android_digital_wellbeing", "usage_events"),
        "launches": total("takeout_my_activity", "usage_events"),
        "ipad_intervals": total("apple_knowledgec", "usage_intervals"),
        "app_sessions": len(truth.sessions),
        "trips": len(truth.trips),
        "workouts": len(truth.workouts),
        "bad_records": sum(f.bad for f in outputs),
    }
    return Manifest(out, persona, {k: tuple(v) for k, v in files.items()}, tuple(outputs), counts, truth)

