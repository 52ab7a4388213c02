"""Geometry of the persona's movements: paths between places, their lengths, how long they take."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import numpy as np

from synth.persona import Place

M_PER_DEG = 111_195.0
EARTH_M = 6_371_008.8

# mode -> (speed m/s along the route, fixed overhead s: walking to the station, waiting, parking)
SPEEDS: dict[str, tuple[float, float]] = {
    "WALKING": (1.35, 0.0),
    "RUNNING": (2.9, 0.0),
    "CYCLING": (4.5, 60.0),
    "IN_SUBWAY": (8.5, 480.0),
    "IN_BUS": (5.0, 300.0),
    "IN_TRAM": (4.0, 240.0),
    "IN_PASSENGER_VEHICLE": (8.0, 240.0),
    "IN_TRAIN": (36.0, 0.0),
    "FLYING": (200.0, 0.0),
}
ROUTE_FACTOR = {"WALKING": 1.3, "RUNNING": 1.0, "CYCLING": 1.3, "IN_SUBWAY": 1.25, "IN_BUS": 1.35, "IN_TRAM": 1.3,
                "IN_PASSENGER_VEHICLE": 1.35, "IN_TRAIN": 1.15, "FLYING": 1.0}


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_M * math.asin(math.sqrt(min(a, 1.0)))


def path_length_m(path: np.ndarray) -> float:
    if len(path) < 2:
        return 0.0
    lat, lon = np.radians(path[:, 0]), np.radians(path[:, 1])
    a = (np.sin(np.diff(lat) / 2) ** 2
         + np.cos(lat[:-1]) * np.cos(lat[1:]) * np.sin(np.diff(lon) / 2) ** 2)
    return float(np.sum(2 * EARTH_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))))


def curved_path(a: tuple[float, float], b: tuple[float, float], rng: random.Random, *, n: int = 24,
                bend: float | None = None) -> np.ndarray:
    """n (lat, lon) vertices from a to b along a gently bent line (streets are never straight)."""
    t = np.linspace(0.0, 1.0, n)
    lat = a[0] + (b[0] - a[0]) * t
    lon = a[1] + (b[1] - a[1]) * t
    cos = math.cos(math.radians((a[0] + b[0]) / 2))
    dy, dx = (b[0] - a[0]) * M_PER_DEG, (b[1] - a[1]) * M_PER_DEG * cos
    d = math.hypot(dx, dy) or 1.0
    bend = rng.uniform(-0.12, 0.12) if bend is None else bend
    wiggle = np.array([0.0] + [rng.uniform(-0.015, 0.015) for _ in range(n - 2)] + [0.0])
    off = (bend * np.sin(np.pi * t) + wiggle) * d  # metres, perpendicular to a->b
    lat = lat + off * (dx / d) / M_PER_DEG
    lon = lon - off * (dy / d) / (M_PER_DEG * cos)
    return np.column_stack([lat, lon])


def loop_path(center: tuple[float, float], radius_m: float, *, laps: float, n: int, rng: random.Random,
              peak: tuple[float, float] | None = None) -> np.ndarray:
    """A closed route: laps around a centre, or out to a peak and back (a hike)."""
    if peak is not None:
        out = curved_path(center, peak, rng, n=n // 2, bend=0.25)
        back = curved_path(peak, center, rng, n=n - n // 2, bend=0.2)
        return np.vstack([out, back])
    cos = math.cos(math.radians(center[0]))
    phase = rng.uniform(0, 2 * math.pi)
    theta = phase + np.linspace(0.0, 2 * math.pi * laps, n)
    r = radius_m * (1 + 0.15 * np.sin(3 * theta))
    lat = center[0] + r * np.sin(theta) / M_PER_DEG
    lon = center[1] + r * np.cos(theta) / (M_PER_DEG * cos)
    path = np.column_stack([lat, lon])
    path[0] = path[-1] = center
    return path


def default_mode(a: Place, b: Place, rng: random.Random) -> str:
    d = haversine_m(a.lat, a.lon, b.lat, b.lon)
    if a.city != b.city:
        return "FLYING" if "Lisbon" in (a.city, b.city) else "IN_TRAIN"
    if d < 1600:
        return "WALKING"
    if a.city == "London":
        return "IN_SUBWAY" if rng.random() < 0.8 else "IN_BUS"
    if a.city == "Lisbon":
        return "IN_PASSENGER_VEHICLE" if d > 3000 or rng.random() < 0.5 else "IN_TRAM"
    return "IN_BUS" if d > 2500 else "WALKING"


def travel(a: Place, b: Place, rng: random.Random, *, mode: str | None = None,
           minutes: float | None = None) -> tuple[str, timedelta, np.ndarray, float]:
    """(mode, duration, path, distance in metres) of going from a to b."""
    mode = mode or default_mode(a, b, rng)
    straight = haversine_m(a.lat, a.lon, b.lat, b.lon)
    n = int(min(48, max(6, straight / 400)))
    bend = 0.02 if mode == "FLYING" else None
    path = curved_path((a.lat, a.lon), (b.lat, b.lon), rng, n=n, bend=bend)
    distance = max(path_length_m(path), straight) * (ROUTE_FACTOR[mode] if mode != "FLYING" else 1.0)
    if minutes is None:
        speed, overhead = SPEEDS[mode]
        seconds = overhead + distance / speed * rng.uniform(0.9, 1.15)
        minutes = max(3.0, seconds / 60)
    return mode, timedelta(minutes=minutes), path, round(distance, 1)
