"""Raw location fixes: Takeout Records.json (streamed, vectorised; a million points in seconds) and GPX tracks.

Fix density: about one every `moving_interval_s` (2-5 min) while moving and one every `still_interval_s`
(10-30 min) while staying; none in flight. `points_target` rescales both so the file holds exactly that
many valid points. Fixes are allocated to stays and moves in proportion to duration x density, placed at
jittered, strictly ordered instants, and positioned on the move's path (or around the place) with noise
that matches the fix's reported accuracy.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from synth.geo import M_PER_DEG
from synth.life import Life, Move, Stay
from synth.persona import Workout

CHUNK = 100_000
SOURCES = np.array(["WIFI", "GPS", "CELL"])
RECORD_ACTIVITY = {  # move mode -> (Records.json activity type, its parent type)
    "WALKING": ("WALKING", "ON_FOOT"), "RUNNING": ("RUNNING", "ON_FOOT"), "CYCLING": ("ON_BICYCLE", "ON_BICYCLE"),
    "IN_SUBWAY": ("IN_RAIL_VEHICLE", "IN_VEHICLE"), "IN_TRAIN": ("IN_RAIL_VEHICLE", "IN_VEHICLE"),
    "IN_TRAM": ("IN_RAIL_VEHICLE", "IN_VEHICLE"), "IN_BUS": ("IN_ROAD_VEHICLE", "IN_VEHICLE"),
    "IN_PASSENGER_VEHICLE": ("IN_ROAD_VEHICLE", "IN_VEHICLE"), "FLYING": ("UNKNOWN", "IN_VEHICLE"),
}


@dataclass(frozen=True, slots=True, eq=False)
class Points:
    """The valid fixes written to Records.json, in file order (also the source of Timeline rawSignals)."""

    ts_us: np.ndarray  # int64 Unix microseconds (millisecond precision)
    lat: np.ndarray
    lon: np.ndarray
    accuracy: np.ndarray  # int metres
    source: np.ndarray  # index into SOURCES
    altitude: np.ndarray  # metres (meaningful for GPS fixes)
    moving: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.ts_us)


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def sample(life: Life, *, points_target: int | None = None) -> Points:
    p = life.persona
    rng = np.random.Generator(np.random.PCG64([p.seed, 101]))
    blocks: list[Stay | Move] = [*life.stays, *life.moves]
    blocks.sort(key=lambda b: b.start)
    start = np.array([_us(b.start) for b in blocks], dtype=np.int64)
    end = np.array([_us(b.end) for b in blocks], dtype=np.int64)
    is_move = np.array([isinstance(b, Move) for b in blocks])
    flying = np.array([isinstance(b, Move) and b.mode == "FLYING" for b in blocks])
    rate = np.where(is_move, 1.0 / p.moving_interval_s, 1.0 / p.still_interval_s) * ~flying
    expected = (end - start) / 1e6 * rate
    n_total = int(round(expected.sum())) if points_target is None else int(points_target)
    cum = np.round(np.cumsum(expected) * (n_total / max(expected.sum(), 1e-9))).astype(np.int64)
    counts = np.diff(cum, prepend=0)
    seg = np.repeat(np.arange(len(blocks)), counts)
    k = np.arange(n_total) - np.repeat(cum - counts, counts)
    frac = (k + rng.uniform(0.05, 0.95, n_total)) / np.maximum(counts[seg], 1)
    ts = start[seg] + (frac * (end - start)[seg]).astype(np.int64)
    ts = ts // 1000 * 1000  # Records.json keeps milliseconds
    ts = np.maximum.accumulate(ts)  # file order is time order
    lat, lon = np.empty(n_total), np.empty(n_total)
    base_alt = np.empty(n_total)
    moving = is_move[seg]
    for i in np.flatnonzero(counts):
        lo, hi = cum[i] - counts[i], cum[i]
        b = blocks[i]
        if isinstance(b, Move):
            path = b.path
            steps = np.hypot(np.diff(path[:, 0]), np.diff(path[:, 1]) * math.cos(math.radians(path[0, 0])))
            along = np.concatenate([[0.0], np.cumsum(steps)])
            along = along / along[-1] if along[-1] > 0 else np.linspace(0, 1, len(path))
            lat[lo:hi] = np.interp(frac[lo:hi], along, path[:, 0])
            lon[lo:hi] = np.interp(frac[lo:hi], along, path[:, 1])
            base_alt[lo:hi] = (b.origin.elevation_m + b.dest.elevation_m) / 2
        else:
            lat[lo:hi], lon[lo:hi] = b.place.lat, b.place.lon
            base_alt[lo:hi] = b.place.elevation_m
    r = rng.random(n_total)
    source = np.where(moving, np.select([r < 0.70, r < 0.88], [1, 0], 2), np.select([r < 0.80, r < 0.92], [0, 1], 2))
    acc = np.select([source == 0, source == 1], [rng.uniform(8, 45, n_total), rng.uniform(3, 16, n_total)],
                    rng.uniform(350, 1600, n_total)).round().astype(np.int64)
    noise = rng.normal(0.0, 1.0, (2, n_total)) * (acc / 2.0)
    lat = lat + noise[0] / M_PER_DEG
    lon = lon + noise[1] / (M_PER_DEG * np.cos(np.radians(lat)))
    alt = base_alt + rng.normal(0.0, 4.0, n_total)
    return Points(ts, lat.round(7), lon.round(7), acc, source, alt.round(1), moving)


def _iso_ms(ts_us: np.ndarray) -> list[str]:
    return [s + "Z" for s in np.datetime_as_string(ts_us.astype("datetime64[us]").astype("datetime64[ms]"),
                                                   unit="ms").tolist()]


def _bad_records(device_tag: int, near: list[str]) -> list[str]:
    good_ts = near[0] if near else "2025-01-01T12:00:00.000Z"
    return [
        json.dumps({"latitudeE7": 1900000000, "longitudeE7": -1750000, "accuracy": 20, "source": "WIFI",
                    "deviceTag": device_tag, "timestamp": good_ts}),
        json.dumps({"latitudeE7": 514870000, "longitudeE7": -1750000, "accuracy": 20, "source": "WIFI",
                    "deviceTag": device_tag, "timestamp": "2025-02-30T25:61:00.000Z"}),
        json.dumps({"latitudeE7": 514870000, "longitudeE7": 2500000000, "accuracy": 25, "source": "CELL",
                    "deviceTag": device_tag, "timestamp": near[-1] if near else good_ts}),
    ]


def write_records(path: Path, pts: Points, *, seed: int, legacy_fraction: float, plant_bad: bool) -> list[int]:
    """Stream Records.json; returns the positions (indices in "locations") of the planted bad records."""
    n = len(pts)
    device_tag = random.Random(f"lifevault-synth:{seed}:device").randint(-2**31, 2**31 - 1)
    legacy = int(n * legacy_fraction)
    n_bad = 3 if plant_bad else 0
    bad_at = [int((j + 1) * (n + n_bad) / (n_bad + 1)) for j in range(n_bad)]
    bad_set = dict(zip(bad_at, range(n_bad), strict=True))
    rng = np.random.Generator(np.random.PCG64([seed, 102]))
    path.parent.mkdir(parents=True, exist_ok=True)
    out_index = 0
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write('{\n  "locations": [')
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            iso = _iso_ms(pts.ts_us[lo:hi])
            ms = (pts.ts_us[lo:hi] // 1000).tolist()
            bad = _bad_records(device_tag, iso[:1] + iso[-1:]) if n_bad else []
            lat7 = np.round(pts.lat[lo:hi] * 1e7).astype(np.int64).tolist()
            lon7 = np.round(pts.lon[lo:hi] * 1e7).astype(np.int64).tolist()
            acc, src = pts.accuracy[lo:hi].tolist(), SOURCES[pts.source[lo:hi]].tolist()
            alt, mov = pts.altitude[lo:hi].tolist(), pts.moving[lo:hi].tolist()
            vel = rng.integers(1, 15, hi - lo).tolist()
            head = rng.integers(0, 360, hi - lo).tolist()
            act = (rng.random(hi - lo) < np.where(pts.moving[lo:hi], 0.2, 0.12)).tolist()
            conf = rng.integers(55, 100, hi - lo).tolist()
            parts = []
            for j in range(hi - lo):
                if out_index in bad_set:
                    parts.append(bad[bad_set[out_index]])
                    out_index += 1
                t = f'"timestampMs": "{ms[j]}"' if lo + j < legacy else f'"timestamp": "{iso[j]}"'
                extra = ""
                if src[j] == "GPS":
                    extra = f', "altitude": {alt[j]}, "verticalAccuracy": {max(2, acc[j] // 2)}'
                    if mov[j]:
                        extra += f', "velocity": {vel[j]}, "heading": {head[j]}'
                if act[j]:
                    kind = "IN_VEHICLE" if mov[j] and vel[j] > 4 else "ON_FOOT" if mov[j] else "STILL"
                    extra += (f', "activity": [{{"activity": [{{"type": "{kind}", "confidence": {conf[j]}}}, '
                              f'{{"type": "UNKNOWN", "confidence": {100 - conf[j]}}}], {t}}}]')
                parts.append(f'{{"latitudeE7": {lat7[j]}, "longitudeE7": {lon7[j]}, "accuracy": {acc[j]}, '
                             f'"source": "{src[j]}"{extra}, "deviceTag": {device_tag}, {t}}}')
                out_index += 1
            while out_index in bad_set and lo + (hi - lo) >= n:
                parts.append(bad[bad_set[out_index]])
                out_index += 1
            f.write(("\n    " if lo == 0 else ",\n    ") + ",\n    ".join(parts))
        if n == 0 and n_bad:
            for b in _bad_records(device_tag, [])[:n_bad]:
                f.write(("\n    " if out_index == 0 else ",\n    ") + b)
                out_index += 1
            bad_at = list(range(n_bad))
        f.write("\n  ]\n}\n")
    return bad_at


def write_gpx(folder: Path, workout: Workout, move: Move, *, seed: int) -> tuple[Path, int]:
    """One GPX 1.1 track (a point every 5 s, elevation, heart rate) for a run or hike; returns (path, trkpts)."""
    rng = np.random.Generator(np.random.PCG64([seed, 103, int(move.start.timestamp())]))
    secs = (move.end - move.start).total_seconds()
    n = max(2, int(secs // 5) + 1)
    frac = np.linspace(0.0, 1.0, n)
    frac = np.clip(frac + np.concatenate([[0], rng.normal(0, 0.002, n - 2), [0]]), 0, 1)
    frac = np.maximum.accumulate(frac)
    steps = np.hypot(np.diff(move.path[:, 0]), np.diff(move.path[:, 1]) * math.cos(math.radians(move.path[0, 0])))
    along = np.concatenate([[0.0], np.cumsum(steps)])
    along /= along[-1]
    lat = np.interp(frac, along, move.path[:, 0]) + rng.normal(0, 2.5, n) / M_PER_DEG
    lon = np.interp(frac, along, move.path[:, 1]) + rng.normal(0, 2.5, n) / M_PER_DEG / 0.6
    base = move.origin.elevation_m
    if workout.kind == "hiking":
        ele = base + (251.0 - base) * np.sin(np.pi * frac) ** 1.3 + rng.normal(0, 0.8, n)
        hr = 105 + 40 * np.sin(np.pi * frac) + rng.normal(0, 3, n)
    else:
        ele = base + 1.5 * np.sin(frac * 12) + rng.normal(0, 0.4, n)
        hr = 128 + 30 * np.minimum(frac * 6, 1) + rng.normal(0, 3, n)
    t0 = move.start.astimezone(UTC)
    times = [(t0 + timedelta(seconds=5 * i)).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(n)]
    name = escape(workout.name)
    kind = "running" if workout.kind == "running" else "hiking"
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<gpx version="1.1" creator="StravaGPX Android" xmlns="http://www.topografix.com/GPX/1/1" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1" '
        'xsi:schemaLocation="http://www.topografix.com/GPX/1/1 http://www.topografix.com/GPX/1/1/gpx.xsd">',
        f" <metadata>\n  <name>{name}</name>\n  <time>{times[0]}</time>\n </metadata>",
        f" <trk>\n  <name>{name}</name>\n  <type>{kind}</type>\n  <trkseg>",
    ]
    for la, lo_, el, h, t in zip(lat.round(7).tolist(), lon.round(7).tolist(), ele.round(1).tolist(),
                                 hr.round().astype(int).tolist(), times, strict=True):
        lines.append(f'   <trkpt lat="{la:.7f}" lon="{lo_:.7f}">\n    <ele>{el}</ele>\n    <time>{t}</time>\n'
                     f"    <extensions>\n     <gpxtpx:TrackPointExtension>\n      <gpxtpx:hr>{h}</gpxtpx:hr>\n"
                     "     </gpxtpx:TrackPointExtension>\n    </extensions>\n   </trkpt>")
    lines += ["  </trkseg>", " </trk>", "</gpx>", ""]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / workout.gpx
    path.write_text("\n".join(lines), encoding="utf-8", newline="\n")
    return path, n
