from __future__ import annotations

import numpy as np
import pytest

from ingest import derive


def _scan(ts_us: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> list[tuple[int, int]]:
    """The stay-point scan as the module docstring states it, all fixes as lists at once (the reference)."""
    out, n, i = [], len(ts_us), 0
    ts, y, x = ts_us.tolist(), (lat * 111_195.0).tolist(), (lon * 111_195.0).tolist()
    cos0 = np.cos(np.radians(lat)).tolist()
    while i < n:
        j = i + 1
        while j < n:
            dy, dx = y[j] - y[i], (x[j] - x[i]) * cos0[i]
            if dx * dx + dy * dy > derive.STAY_RADIUS_M ** 2:
                break
            j += 1
        if ts[j - 1] - ts[i] >= derive.STAY_MIN_MINUTES * 60e6:
            out.append((i, j))
            i = j
        else:
            i += 1
    return out


def _fixes(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixes every 5 s..3 min, alternating still spells (a few metres of jitter) and moves."""
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.integers(5, 180, n)) * 1_000_000 + 1_700_000_000_000_000
    still = (np.arange(n) // rng.integers(5, 80)) % 2 == 0
    step = np.where(still[:, None], rng.normal(0, 0.00002, (n, 2)), rng.normal(0, 0.0012, (n, 2)))
    pos = np.array([51.5, -0.12]) + np.cumsum(step, axis=0)
    return ts, pos[:, 0], pos[:, 1]


@pytest.mark.parametrize(("seed", "window"), [(s, w) for s in range(4) for w in (1, 7, 100, 65_536)])
def test_stays_found_a_window_of_fixes_at_a_time_are_those_of_the_whole_scan(seed, window, monkeypatch):
    monkeypatch.setattr(derive, "STAY_WINDOW", window)
    ts, lat, lon = _fixes(seed, 3000)
    got = derive.stay_points(ts, lat, lon)
    assert got == _scan(ts, lat, lon)
    assert got  # the fixture has stays


def test_stay_points_edge_cases(monkeypatch):
    monkeypatch.setattr(derive, "STAY_WINDOW", 4)
    empty = np.array([], dtype=np.int64)
    assert derive.stay_points(empty, empty.astype(float), empty.astype(float)) == []
    ts = np.arange(0, 3600, 60, dtype=np.int64) * 1_000_000  # one hour standing still: one stay
    lat, lon = np.full(len(ts), 48.85), np.full(len(ts), 2.35)
    assert derive.stay_points(ts, lat, lon) == _scan(ts, lat, lon) == [(0, len(ts))]
    assert derive.stay_points(ts[:5], lat[:5], lon[:5]) == []  # four minutes: too short


def test_derived_ids_are_keyed_on_the_texts_python_would_format_row_by_row(vault):
    """Stay, trip and session ids are stored elsewhere (memories cite them): the vectorised key text must
    spell every value as f"{value}" did (microseconds only when not zero, None as "None")."""
    from datetime import UTC, datetime

    import polars as pl

    starts = [datetime(2025, 1, 1, 9, 0, tzinfo=UTC), datetime(2025, 1, 1, 9, 0, 0, 120, tzinfo=UTC),
              datetime(2031, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)]
    df = pl.DataFrame({"package": ["com.example.mail", None, "é.app"], "start_ts": starts, "n": [1, -2, 3],
                       "origin": ["derived", "export", "launch"]},
                      schema_overrides={"start_ts": pl.Datetime("us", "UTC")})
    got = derive._ids(vault, df, "session", "package", "start_ts", "n", "origin").to_list()
    want = vault.row_ids(f"session\x1f{p}\x1f{s}\x1f{n}\x1f{o}" for p, s, n, o in df.iter_rows())
    assert got == want
    assert derive._ids(vault, df.clear(), "trip", "n").to_list() == []


def test_the_scan_window_grows_with_a_long_run_only_not_with_every_run_that_reaches_its_end(monkeypatch):
    monkeypatch.setattr(derive, "STAY_WINDOW", 100)
    sizes: list[int] = []
    real = derive._window

    def spy(ts_us, lat, lon, lo, end):
        sizes.append(end - lo)
        return real(ts_us, lat, lon, lo, end)

    monkeypatch.setattr(derive, "_window", spy)
    ts, lat, lon = _fixes(1, 20_000)
    assert derive.stay_points(ts, lat, lon) == _scan(ts, lat, lon)
    longest = max(j - i for i, j in _scan(ts, lat, lon))
    assert max(sizes) <= max(100, 2 * longest + 2) < 20_000 // 4  # not all the fixes as Python floats
