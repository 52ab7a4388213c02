"""The persona's app habits: phone pickups (screen on, one to three apps, screen off) and iPad evenings.

What the persona opens depends on where it is and the local hour: Slack/Gmail at work (also when working
from home), Spotify and Citymapper while commuting, YouTube/Instagram late at home, Strava at the gym and on
runs, Google Maps when travelling. Nothing between 01:00 and 07:00, and nothing while flying.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ingest.apps import describe
from synth.life import Life, Move, Stay
from synth.persona import AppSession

# package -> (main activity class, median seconds in the foreground)
ANDROID_APPS: dict[str, tuple[str, float]] = {
    "com.slack": ("com.slack.app.MainActivity", 70),
    "com.google.android.gm": ("com.google.android.gm.ConversationListActivityGmail", 50),
    "com.google.android.calendar": ("com.android.calendar.AllInOneActivity", 25),
    "com.google.android.apps.docs": ("com.google.android.apps.docs.app.NewMainProxyActivity", 240),
    "com.microsoft.teams": ("com.microsoft.skype.teams.views.activities.MainActivity", 300),
    "com.whatsapp": ("com.whatsapp.HomeActivity", 55),
    "com.google.android.apps.messaging": ("com.google.android.apps.messaging.ui.ConversationListActivity", 30),
    "bbc.mobile.news.ww": ("bbc.mobile.news.v3.app.TopLevelActivity", 150),
    "com.guardian": ("com.guardian.feature.stream.HomeActivity", 180),
    "com.instagram.android": ("com.instagram.mainactivity.MainActivity", 220),
    "com.reddit.frontpage": ("com.reddit.launch.main.MainActivity", 300),
    "com.zhiliaoapp.musically": ("com.ss.android.ugc.aweme.main.MainActivity", 420),
    "com.google.android.youtube": ("com.google.android.apps.youtube.app.watchwhile.WatchWhileActivity", 540),
    "com.netflix.mediaclient": ("com.netflix.mediaclient.ui.launch.UIWebViewActivity", 1500),
    "com.spotify.music": ("com.spotify.music.MainActivity", 70),
    "com.citymapper.app.release": ("com.citymapper.app.home.HomeActivity", 60),
    "com.google.android.apps.maps": ("com.google.android.maps.MapsActivity", 150),
    "com.ubercab": ("com.ubercab.presidio.app.core.root.RootActivity", 90),
    "com.strava": ("com.strava.view.RecordActivity", 60),
    "com.amazon.mShop.android.shopping": ("com.amazon.mShop.home.HomeActivity", 180),
    "com.twitter.android": ("com.twitter.android.StartActivity", 200),
}
IPAD_APPS = {"com.apple.mobilesafari": 30, "com.google.ios.youtube": 30, "com.apple.mobilemail": 10,
             "com.burbn.instagram": 15, "com.apple.MobileSMS": 8, "com.spotify.client": 7}

# context -> (pickups per hour, {package: weight})
CONTEXTS: dict[str, tuple[float, dict[str, float]]] = {
    "WORK": (3.0, {"com.slack": 40, "com.google.android.gm": 20, "com.google.android.calendar": 10,
                   "com.whatsapp": 10, "com.google.android.apps.docs": 5, "com.microsoft.teams": 5,
                   "bbc.mobile.news.ww": 5}),
    "MORNING": (3.0, {"bbc.mobile.news.ww": 20, "com.google.android.gm": 15, "com.whatsapp": 25, "com.guardian": 10,
                      "com.instagram.android": 10, "com.spotify.music": 10, "com.google.android.calendar": 5}),
    "HOME": (2.0, {"com.whatsapp": 25, "com.instagram.android": 15, "com.google.android.youtube": 15,
                   "com.reddit.frontpage": 10, "com.amazon.mShop.android.shopping": 8,
                   "com.google.android.apps.messaging": 7, "com.spotify.music": 5}),
    "LATE": (3.0, {"com.google.android.youtube": 35, "com.instagram.android": 30, "com.netflix.mediaclient": 10,
                   "com.reddit.frontpage": 10, "com.whatsapp": 10, "com.zhiliaoapp.musically": 5}),
    "COMMUTE": (4.0, {"com.spotify.music": 30, "com.citymapper.app.release": 20, "com.whatsapp": 15,
                      "bbc.mobile.news.ww": 15, "com.guardian": 10, "com.instagram.android": 10}),
    "CAFE": (4.0, {"com.instagram.android": 30, "com.whatsapp": 25, "com.guardian": 20, "com.google.android.gm": 10,
                   "com.twitter.android": 10}),
    "TRAVEL": (3.0, {"com.google.android.apps.maps": 40, "com.instagram.android": 25, "com.whatsapp": 20,
                     "com.spotify.music": 5, "com.ubercab": 5}),
    "OTHER": (1.2, {"com.whatsapp": 40, "com.instagram.android": 20, "com.google.android.apps.maps": 10,
                    "com.google.android.apps.messaging": 10, "com.spotify.music": 5}),
    "GYM": (0.5, {"com.spotify.music": 50, "com.whatsapp": 30}),
}
TRANSIT = frozenset({"IN_SUBWAY", "IN_BUS", "IN_TRAM", "IN_TRAIN", "IN_PASSENGER_VEHICLE", "WALKING"})


@dataclass(frozen=True, slots=True)
class Use:
    package: str
    start: datetime  # RESUMED
    end: datetime  # PAUSED


@dataclass(frozen=True, slots=True)
class Pickup:
    """Screen on -> unlock -> apps -> screen off, as one device records it."""

    start: datetime  # screen on
    end: datetime  # screen off
    uses: tuple[Use, ...]
    config_changes: tuple[datetime, ...] = ()  # rotations (Android code 5: valid, not kept)
    offset_s: int = 0  # the device's UTC offset then


@dataclass(frozen=True, slots=True)
class Usage:
    phone: tuple[Pickup, ...]
    ipad: tuple[Pickup, ...]
    restarts: tuple[datetime, ...]  # phone DEVICE_SHUTDOWN instants (STARTUP follows a minute later)

    def sessions(self) -> tuple[AppSession, ...]:
        out = []
        for device, pickups in (("android", self.phone), ("ipad", self.ipad)):
            for p in pickups:
                for u in p.uses:
                    app, category = describe(u.package)
                    out.append(AppSession(device, u.package, app, category, u.start, u.end))
        return tuple(sorted(out, key=lambda s: (s.start, s.device)))


def _local(t: datetime, tz: str) -> datetime:
    return t.astimezone(ZoneInfo(tz))


def _hour(t: datetime, tz: str) -> float:
    lt = _local(t, tz)
    return lt.hour + lt.minute / 60


def _context(block: Stay | Move, hour: float, wfh: bool) -> str | None:
    if hour < 7 and not hour < 1:
        return None  # asleep
    if isinstance(block, Move):
        if block.mode == "FLYING" or block.origin is block.dest:
            return None
        return "TRAVEL" if block.origin.city != "London" or block.dest.city != "London" else "COMMUTE"
    cat, city = block.place.category, block.place.city
    if hour < 1:
        return "LATE" if cat in ("HOME", "HOTEL") else "OTHER"
    if city != "London":
        return "LATE" if cat == "HOTEL" and hour >= 21 else "TRAVEL"
    if cat == "HOME":
        if wfh and 9 <= hour < 17.5:
            return "WORK"
        return "MORNING" if hour < 9.5 else "HOME" if hour < 21 else "LATE"
    if cat in ("WORK", "EVENT_VENUE"):
        return "WORK" if 8.5 <= hour < 18.5 else "OTHER"
    if cat in ("CAFE", "GYM"):
        return cat
    return "OTHER"


class _Phone:
    def __init__(self, life: Life) -> None:
        self.life = life
        self.rng = random.Random(f"lifevault-synth:{life.persona.seed}:usage")
        self.cursor = datetime.min.replace(tzinfo=UTC)
        self.pickups: list[Pickup] = []

    def pick(self, weights: dict[str, float]) -> str:
        return self.rng.choices(list(weights), weights=list(weights.values()))[0]

    def pickup(self, at: datetime, packages: list[str], tz: str, *, late: bool = False) -> None:
        rng = self.rng
        at = max(at, self.cursor)
        t = at + timedelta(seconds=rng.uniform(1.0, 4.0))
        uses, rotations = [], []
        for pkg in packages:
            median = ANDROID_APPS[pkg][1] * (1.6 if late and pkg.endswith(("youtube", "mediaclient")) else 1.0)
            secs = min(2 * 3600.0, max(5.0, rng.lognormvariate(math.log(median), 0.7)))
            end = t + timedelta(seconds=secs)
            uses.append(Use(pkg, t, end))
            if pkg.endswith(("youtube", "mediaclient")) and rng.random() < 0.3:
                rotations.append(t + timedelta(seconds=rng.uniform(1.0, secs - 1.0) if secs > 3 else 1.0))
            t = end + timedelta(seconds=rng.uniform(0.4, 1.5))
        off = t + timedelta(seconds=rng.uniform(2.0, 25.0))
        offset = int((_local(at, tz).utcoffset() or timedelta(0)).total_seconds())  # (aware: never None)
        self.pickups.append(Pickup(at, off, tuple(uses), tuple(rotations), offset))
        self.cursor = off + timedelta(seconds=30)

    def n_apps(self) -> int:
        r = self.rng.random()
        return 1 if r < 0.6 else 2 if r < 0.9 else 3

    def block(self, b: Stay | Move) -> None:
        rng, life = self.rng, self.life
        tz = b.place.tz if isinstance(b, Stay) else b.origin.tz
        wfh = life.day_kind.get(_local(b.start, tz).date()) == "wfh"
        if isinstance(b, Move):
            minutes = (b.end - b.start).total_seconds() / 60
            if b.origin is b.dest:  # a tracked run or hike
                self.pickup(b.start - timedelta(minutes=1), ["com.strava", "com.spotify.music"], tz)
                self.cursor = max(self.cursor, b.end)
                self.pickup(b.end + timedelta(seconds=20), ["com.strava"], tz)
                return
            if b.mode in TRANSIT and minutes >= 10 and _context(b, _hour(b.start, tz), wfh) and rng.random() < 0.7:
                first = "com.spotify.music" if b.origin.city == "London" else "com.google.android.apps.maps"
                self.pickup(b.start + timedelta(seconds=rng.uniform(20, 120)), [first], tz)
            if b.mode == "IN_PASSENGER_VEHICLE" and rng.random() < 0.8:
                self.pickup(b.start - timedelta(minutes=rng.uniform(3, 6)), ["com.ubercab"], tz)
        elif b.place.category == "GYM":
            self.pickup(b.start + timedelta(minutes=rng.uniform(1, 4)), ["com.spotify.music", "com.strava"], tz)
        t = max(self.cursor, b.start)
        while True:
            t += timedelta(hours=rng.expovariate(5.0))
            if t >= b.end:
                break
            hour = _hour(t, tz)
            ctx = _context(b, hour, wfh)
            if ctx is None or t < self.cursor:
                continue
            rate, weights = CONTEXTS[ctx]
            if rng.random() < rate / 5.0:
                apps = [self.pick(weights) for _ in range(self.n_apps())]
                apps = [a for i, a in enumerate(apps) if i == 0 or a != apps[i - 1]]
                self.pickup(t, apps, tz, late=ctx == "LATE")
                t = self.cursor


def _restarts(life: Life, rng: random.Random) -> list[datetime]:
    """An overnight update restart on the first Sunday of each month (03:30 local)."""
    out = []
    tz = ZoneInfo(life.persona.home_tz)
    for d in sorted(life.day_kind):
        if d.weekday() == 6 and d.day <= 7:
            local = datetime.combine(d, time(3, 30), tz) + timedelta(minutes=rng.uniform(0, 20))
            out.append(local.astimezone(UTC))
    return out


def _ipad(life: Life) -> list[Pickup]:
    """Evenings at home over the last `ipad_days` days, on the iPad."""
    p = life.persona
    rng = random.Random(f"lifevault-synth:{p.seed}:ipad")
    starts = [s.start for s in life.stays]
    tz = ZoneInfo(p.home_tz)
    out: list[Pickup] = []
    first = p.end - timedelta(days=min(p.ipad_days, p.days) - 1)
    d = first
    while d <= p.end:
        t = datetime.combine(d, time(19, 30), tz) + timedelta(minutes=rng.uniform(0, 60))
        for _ in range(rng.choice([0, 1, 1, 2])):
            stay = life.stays[max(0, bisect.bisect_right(starts, t.astimezone(UTC)) - 1)]
            if stay.place.category != "HOME" or t.hour >= 23:
                break
            uses, u = [], t.astimezone(UTC) + timedelta(seconds=rng.uniform(1, 3))
            for _ in range(rng.randint(1, 3)):
                pkg = rng.choices(list(IPAD_APPS), weights=list(IPAD_APPS.values()))[0]
                end = u + timedelta(seconds=rng.uniform(240, 2400))
                uses.append(Use(pkg, u, end))
                u = end + timedelta(seconds=rng.uniform(0.5, 2))
            off = u + timedelta(seconds=rng.uniform(5, 60))
            out.append(Pickup(t.astimezone(UTC), off, tuple(uses), (), int((t.utcoffset() or timedelta(0)).total_seconds())))
            t = off.astimezone(tz) + timedelta(minutes=rng.uniform(20, 60))
        d += timedelta(days=1)
    return out


def habits(life: Life) -> Usage:
    """Every pickup of the phone (the whole period) and of the iPad (its last weeks)."""
    phone = _Phone(life)
    blocks: list[Stay | Move] = [*life.stays, *life.moves]
    blocks.sort(key=lambda b: b.start)
    for b in blocks:
        phone.block(b)
    restarts = _restarts(life, random.Random(f"lifevault-synth:{life.persona.seed}:restarts"))
    # a restart never lands inside a pickup (they happen while the persona sleeps, but be sure)
    restarts = [r for r in restarts if not any(p.start <= r <= p.end + timedelta(minutes=2) for p in phone.pickups
                                               if abs((p.start - r).total_seconds()) < 7200)]
    return Usage(tuple(phone.pickups), tuple(_ipad(life)), tuple(restarts))
