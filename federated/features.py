"""Vault rows -> training examples for the on-device model (the one place that decides what it learns from).

One example per app session start: the context a phone has just before the user opens an app, and what
happened next. Every example is computed from the vault's derived tables only (ingest/derive.py), read
through vault.read:

  context (inputs)                                       source
  hour of day, as sin/cos of 2*pi*h/24 (local time)     app_sessions.start_ts + utc_offset_min
  weekday (Monday = 0, local time)                       idem
  current place type (the stay covering the moment)      stays.semantic_type / stays.name
  previous app category (the session before, if it       app_sessions.category
    started within PREVIOUS_APP_WINDOW)
  minutes since the last unlock, log-scaled to [0, 1]   usage_events SCREEN_ON / KEYGUARD_HIDDEN
  a meeting starts within MEETING_WINDOW                 calendar_events (not all-day, not cancelled)

  labels: the category of the app opened (vocab.APP_CATEGORIES) and the type of the next place the user
  goes to (the first stay that starts after the moment; -1 = unknown, ignored by the loss).

The numeric layout of a row of `x` is model.py's (model.encode); this module produces the named columns.

Minimum data (MIN_EXAMPLES = 200 over at least MIN_DAYS = 7 local days). A round costs the same epsilon
whatever the amount of data (the privacy unit is the user, the clip norm bounds the update), so a round
on a few dozen examples spends budget for almost nothing: a few days of use hold one or two habits
(one commute, one evening), the local steps fit those, the update's direction is that habit's and its
norm is erratic (few SGD steps: clipping either cuts most of it or none), and after the noise sigma*C it
adds no signal. 200 app opens is about 3-5 days of typical use; asking for 7 distinct days as well
makes sure every weekday's pattern is present at least once. A device below either threshold refuses
to train (TooLittleData) and sends nothing; the refusal tells the server one bit (not enough data),
never the count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from federated.vocab import APP_CATEGORIES, PLACE_TYPES
from vault import read
from vault.errors import VaultError

if TYPE_CHECKING:
    from vault.store import Vault

MIN_EXAMPLES = 200
MIN_DAYS = 7
MEETING_WINDOW_S = 30 * 60
PREVIOUS_APP_WINDOW_S = 2 * 3600
UNLOCK_CAP_MIN = 24 * 60.0
UNLOCK_EVENTS = ("SCREEN_ON", "KEYGUARD_HIDDEN")
NO_LABEL = -1

# stays.semantic_type (normalised by ingest: HOME, WORK, UNKNOWN, or the export's own type) and, when that
# says nothing, words in the place name -> vocab.PLACE_TYPES. Checked in order; the first match wins.
SEMANTIC_PLACES: dict[str, str] = {
    "HOME": "home", "INFERRED_HOME": "home", "TYPE_HOME": "home",
    "WORK": "work", "INFERRED_WORK": "work", "TYPE_WORK": "work",
}
NAME_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("home", ("home",)),
    ("work", ("office", "work", "campus", "hq")),
    ("gym", ("gym", "fitness", "sport", "pool", "yoga", "climb", "park run")),
    ("food", ("cafe", "café", "coffee", "restaurant", "bar", "pub", "bistro", "bakery", "pizza", "diner")),
    ("shop", ("shop", "store", "market", "mall", "supermarket", "grocery", "pharmacy")),
    ("transit", ("station", "airport", "bus", "metro", "train", "terminal")),
)


class TooLittleData(VaultError):
    """The device holds too few examples to train a round worth its privacy cost."""

    exit_code = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Examples:
    """Named columns, one row per app session start, in time order."""

    at: np.ndarray  # int64, UTC epoch seconds of the moment
    day: np.ndarray  # int64, local day number (days since 1970-01-01 in the offset the data was recorded in)
    hour_sin: np.ndarray  # float64
    hour_cos: np.ndarray  # float64
    weekday: np.ndarray  # int64, 0 = Monday
    place: np.ndarray  # int64 index into vocab.PLACE_TYPES (the "unknown" slot when no stay covers it)
    prev_app: np.ndarray  # int64 index into vocab.APP_CATEGORIES, or len(APP_CATEGORIES) = none
    unlock: np.ndarray  # float64 in [0, 1]: log1p(minutes since unlock) / log1p(UNLOCK_CAP_MIN)
    meeting_soon: np.ndarray  # float64 0/1
    y_app: np.ndarray  # int64 index into vocab.APP_CATEGORIES
    y_place: np.ndarray  # int64 index into vocab.PLACE_TYPES, NO_LABEL when unknown

    def __len__(self) -> int:
        return int(self.at.shape[0])

    @property
    def days(self) -> int:
        """Distinct local days (by the moment's local date)."""
        return int(np.unique(self.day).shape[0]) if len(self) else 0

    def take(self, idx: np.ndarray | slice) -> Examples:
        return Examples(**{name: getattr(self, name)[idx] for name in self.__slots__})

    def split_by_time(self, fraction: float) -> tuple[Examples, Examples]:
        """The first `fraction` of the examples (in time) and the rest: train on the past, test on the future."""
        if not 0 < fraction < 1:
            raise ValueError("fraction must be in (0, 1)")
        cut = int(round(len(self) * fraction))
        return self.take(slice(0, cut)), self.take(slice(cut, None))


def place_type(semantic_type: str | None, name: str | None, place_types: tuple[str, ...]) -> str:
    """The model's place type for a stay; `unknown` (the last resort) when nothing matches."""
    st = (semantic_type or "").strip().upper()
    if st in SEMANTIC_PLACES and SEMANTIC_PLACES[st] in place_types:
        return SEMANTIC_PLACES[st]
    text = " ".join(x for x in ((semantic_type or ""), (name or "")) if x).lower()
    for kind, words in NAME_WORDS:
        if kind in place_types and any(w in text for w in words):
            return kind
    return "other" if "other" in place_types and (name or st not in ("", "UNKNOWN")) else _unknown(place_types)


def _unknown(place_types: tuple[str, ...]) -> str:
    return "unknown" if "unknown" in place_types else place_types[-1]


def _epoch_s(values: list[datetime]) -> np.ndarray:
    return np.array([v.timestamp() for v in values], dtype=np.float64).astype(np.int64) if values else np.zeros(0, np.int64)


def examples(vault: Vault, *, until: datetime | None = None) -> Examples:
    """Every example the vault's derived tables hold (up to `until`), in time order."""
    sessions = read.session_starts(vault, until=until)
    stays = read.stays(vault)
    return build(
        session_starts=sessions["start_ts"].to_list(),
        session_offsets_min=sessions["utc_offset_min"].fill_null(0).to_list(),
        session_categories=sessions["category"].fill_null("Other").to_list(),
        unlocks=read.usage_event_times(vault, UNLOCK_EVENTS)["ts"].to_list(),
        stays=[(st.start, st.end, st.place.semantic_type, st.place.name) for st in stays],
        meetings=read.event_starts(vault, timed=True),
        app_categories=tuple(APP_CATEGORIES),
        place_types=tuple(PLACE_TYPES),
    )


def build(
    *,
    session_starts: list[datetime],
    session_offsets_min: list[int],
    session_categories: list[str],
    unlocks: list[datetime],
    stays: list[tuple[datetime, datetime, str | None, str | None]],
    meetings: list[datetime],
    app_categories: tuple[str, ...],
    place_types: tuple[str, ...],
) -> Examples:
    """Pure: rows (already read from the vault) -> Examples. Separated so that it is tested without a vault."""
    t = _epoch_s(session_starts)
    n = t.shape[0]
    off = np.asarray(session_offsets_min, dtype=np.int64) * 60
    local = t + off
    hours = (local % 86400) / 3600.0
    angle = 2 * math.pi * hours / 24.0
    weekday = ((local // 86400) + 3) % 7  # 1970-01-01 was a Thursday

    cat_index = {c: i for i, c in enumerate(app_categories)}
    other = cat_index.get("Other", len(app_categories) - 1)
    y_app = np.array([cat_index.get(c, other) for c in session_categories], dtype=np.int64)

    none_app = len(app_categories)
    prev_app = np.full(n, none_app, dtype=np.int64)
    if n > 1:
        recent = (t[1:] - t[:-1]) <= PREVIOUS_APP_WINDOW_S
        prev_app[1:] = np.where(recent, y_app[:-1], none_app)

    u = _epoch_s(unlocks)
    minutes = np.full(n, UNLOCK_CAP_MIN)
    if u.shape[0]:
        j = np.searchsorted(u, t, side="right") - 1
        has = j >= 0
        minutes[has] = np.minimum((t[has] - u[j[has]]) / 60.0, UNLOCK_CAP_MIN)
    unlock = np.log1p(np.maximum(minutes, 0.0)) / math.log1p(UNLOCK_CAP_MIN)

    m = _epoch_s(meetings)
    meeting_soon = np.zeros(n)
    if m.shape[0]:
        k = np.searchsorted(m, t, side="right")  # first meeting strictly after the moment
        has = k < m.shape[0]
        meeting_soon[has] = ((m[k[has]] - t[has]) <= MEETING_WINDOW_S).astype(np.float64)

    place_index = {p: i for i, p in enumerate(place_types)}
    unknown = place_index[_unknown(place_types)]
    place = np.full(n, unknown, dtype=np.int64)
    y_place = np.full(n, NO_LABEL, dtype=np.int64)
    if stays:
        s_start = _epoch_s([s[0] for s in stays])
        s_end = _epoch_s([s[1] for s in stays])
        s_type = np.array([place_index[place_type(s[2], s[3], place_types)] for s in stays], dtype=np.int64)
        i = np.searchsorted(s_start, t, side="right") - 1  # the last stay that started at or before t
        covered = (i >= 0) & (s_end[np.maximum(i, 0)] >= t)
        place[covered] = s_type[i[covered]]
        nxt = i + 1  # the first stay starting after t
        has_next = nxt < s_start.shape[0]
        y_place[has_next] = s_type[nxt[has_next]]
        y_place[y_place == unknown] = NO_LABEL  # "unknown" is not something to predict

    return Examples(
        at=t, day=(local // 86400).astype(np.int64), hour_sin=np.sin(angle), hour_cos=np.cos(angle), weekday=weekday.astype(np.int64), place=place,
        prev_app=prev_app, unlock=unlock, meeting_soon=meeting_soon, y_app=y_app, y_place=y_place,
    )


def require_enough(ex: Examples, *, minimum: int = MIN_EXAMPLES, min_days: int = MIN_DAYS) -> None:
    """Raise TooLittleData when the device should not train (see the module docstring for why)."""
    if len(ex) < minimum or ex.days < min_days:
        raise TooLittleData(
            f"too little data to train: at least {minimum} app openings over {min_days} days are needed "
            "(a round costs the same privacy budget whatever the amount of data); nothing was sent"
        )
