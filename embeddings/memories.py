"""Vault rows -> memories: the one place that decides what is embedded and searched.

One memory per
  - visit (a `stays` row; an export's visit and the detector's stay over the same span are one visit):           "Visited Café Nero, 12 Kings Rd (café) on Tue 4 Mar 2025 09:05–09:40 (35 min)"
  - calendar occurrence:             "Calendar: Check-up with Dr. Lee on Tue 4 Mar 2025 14:00–14:30 at Kings Rd
                                      Dental, with Ann Lee, Bob (names only; emails stay in `details`)"
  - app-usage cluster (one app, one local day, sessions less than CLUSTER_GAP apart):
                                     "Used YouTube (Video) on Tue 4 Mar 2025 23:10–23:52: 42 min in 3 sessions"
    clusters shorter than GLANCE in all are glances; one app's glances less than GLANCE_GAP apart on one day
    fold into one memory (their span is theirs, their sessions its provenance; routines see each cluster):
                                     "Glanced at Gmail (Communication) 3 times on Tue 4 Mar 2025 07:56–08:40: 2 min"
  - day of screen time (`daily_summaries`): "Screen time on Tue 4 Mar 2025: 3 h 12 min. YouTube 55 min, ..."
  - trip:                            "Trip from Home to Café Nero by walking, 2.1 km, on Tue 4 Mar 2025 08:40–09:05"
  - agent-written note (embeddings/notes.py).
Times are shown in the local time the data was recorded in (utc_offset_min). Every memory also gets a
redacted text for callers without precise location ("Visited a café on ..."; event locations dropped)
when that differs, a sensitivity label (the scope family that may see it) and its provenance.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from embeddings import routines as rt
from embeddings.labels import day_label, duration_label, local
from embeddings.records import KINDS as KINDS  # defined with the records: a search knows them without polars
from vault import read
from vault.homezone import home_zone
from vault.sqltext import id_list, sql_literal
from vault.store import Vault

if TYPE_CHECKING:  # frames are made where memories are written, not by a search that imports KINDS
    import polars as pl

SENSITIVITY = {"visit": "location", "trip": "location", "event": "calendar", "usage": "usage", "note": "note"}
SOURCE = {"visit": "location", "trip": "location", "event": "calendar", "usage": "usage"}
CLUSTER_GAP = timedelta(minutes=10)
GLANCE = timedelta(minutes=2)  # a usage cluster shorter than this in all is a glance
GLANCE_GAP = timedelta(hours=3)  # one app's glances less than this apart on one local day are one memory
DESCRIPTION_CHARS = 240

# semantic types (Takeout TYPE_*, Timeline HOME/WORK, Google place types) -> how a place is named by type
_TYPES = {
    "home": "home", "work": "work", "cafe": "a café", "coffee": "a café", "restaurant": "a restaurant",
    "bar": "a bar", "pub": "a pub", "gym": "a gym", "fitness": "a gym", "park": "a park",
    "supermarket": "a supermarket", "grocery": "a supermarket", "store": "a shop", "shop": "a shop",
    "shopping": "a shop", "school": "a school", "university": "a university", "library": "a library",
    "doctor": "a doctor's office", "clinic": "a clinic", "dentist": "a dentist", "hospital": "a hospital",
    "pharmacy": "a pharmacy", "airport": "an airport", "train": "a station", "station": "a station",
    "hotel": "a hotel", "museum": "a museum", "cinema": "a cinema", "theater": "a theatre", "church": "a church",
    "office": "an office", "bank": "a bank", "bakery": "a bakery", "salon": "a salon", "barber": "a barber",
    "veterinar": "a vet", "vet": "a vet", "physio": "a clinic", "spa": "a spa", "hostel": "a hotel",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Memory:
    """A memory as rendered from its source, before it is written (see vault/schema_memory.py)."""

    memory_id: int
    kind: str
    text: str
    text_redacted: str | None
    start_ts: datetime | None
    end_ts: datetime | None
    utc_offset_min: int | None
    tags: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    source: str
    source_table: str | None
    source_row_ids: tuple[int, ...] = ()
    metadata: str | None = None
    scope: str | None = None  # a routine's sensitivity is its sources' (place, meeting, app)

    @property
    def sensitivity(self) -> str:
        return self.scope or SENSITIVITY[self.kind]

    @property
    def text_sha(self) -> str:
        return sha(self.text, self.text_redacted or "")

    @property
    def content_sha(self) -> str:
        return sha(self.text, self.text_redacted or "", str(self.start_ts), str(self.end_ts), str(self.utc_offset_min),
                   "\x1e".join(self.tags), canonical(self.details), self.metadata or "", self.source,
                   ",".join(map(str, self.source_row_ids)))


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncReport:
    added: int
    changed: int
    removed: int
    total: int


def sha(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# ---- formatting ---------------------------------------------------------------------------------------
def when_label(start: datetime, end: datetime | None, offset_min: int | None, *, all_day: bool = False) -> str:
    s = local(start, offset_min)
    if all_day:
        return f"on {day_label(s)} (all day)"
    if end is None or end <= start:
        return f"on {day_label(s)} at {s:%H:%M}"
    e = local(end, offset_min)
    if e.date() == s.date():
        return f"on {day_label(s)} {s:%H:%M}–{e:%H:%M}"
    return f"from {day_label(s)} {s:%H:%M} to {day_label(e)} {e:%H:%M}"


def place_type(semantic_type: str | None, name: str | None = None) -> str:
    """How a place is named when its name may not be shown: "home", "work", "a café", else "a place"."""
    words = (semantic_type or "").lower().removeprefix("type_").replace("_", " ").split()
    for key in sorted(_TYPES, key=len, reverse=True):
        if any(w in (key, key + "s") or (len(key) >= 6 and w.startswith(key)) for w in words):
            return _TYPES[key]
    n = (name or "").lower()
    for key in ("cafe", "café", "coffee", "restaurant", "gym", "park", "dentist", "clinic", "hospital", "pharmacy"):
        if key in n:
            return _TYPES.get(key.replace("é", "e"), "a café")
    return "a place"


def _type_word(label: str) -> str:
    return label.split(" ", 1)[-1].removesuffix("'s office") if label.startswith(("a ", "an ")) else label


# ---- renderers (one per kind) --------------------------------------------------------------------------
def render_visit(name: str | None, address: str | None, semantic_type: str | None, start: datetime, end: datetime,
                 offset: int | None) -> tuple[str, str]:
    label = place_type(semantic_type, name)
    when = when_label(start, end, offset)
    dur = duration_label((end - start).total_seconds() / 60)
    redacted = f"Was at {label} {when} ({dur})" if label in ("home", "work") else f"Visited {label} {when} ({dur})"
    if not name or name.upper() == "UNKNOWN":
        return redacted, redacted
    where = name + (f", {address}" if address and address != name else "")
    kind = "" if label == "a place" else f" ({_type_word(label)})"
    return f"Visited {where}{kind} {when} ({dur})", redacted


def render_trip(from_name: str | None, to_name: str | None, from_type: str | None, to_type: str | None,
                activity: str | None, distance_m: float | None, start: datetime, end: datetime,
                offset: int | None) -> tuple[str, str]:
    how = f" by {activity.lower().replace('_', ' ')}" if activity else ""
    dist = f", {distance_m / 1000:.1f} km" if distance_m else ""
    when = when_label(start, end, offset)
    dur = duration_label((end - start).total_seconds() / 60)
    a_t, b_t = place_type(from_type, from_name), place_type(to_type, to_name)
    redacted = f"Trip from {a_t} to {b_t}{how}{dist} {when} ({dur})"
    a = from_name if from_name and from_name.upper() != "UNKNOWN" else a_t
    b = to_name if to_name and to_name.upper() != "UNKNOWN" else b_t
    return f"Trip from {a} to {b}{how}{dist} {when} ({dur})", redacted


def parse_attendees(raw: str | None) -> list[dict[str, Any]]:
    try:
        items = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [a for a in items if isinstance(a, dict)] if isinstance(items, list) else []


def person_name(entry: dict[str, Any] | str | None) -> str | None:
    """A display name without the address ("Ann Lee <ann@x.org>" -> "Ann Lee"; a bare address -> its local part)."""
    if entry is None:
        return None
    if isinstance(entry, dict):
        name, email = entry.get("name"), entry.get("email")
    else:
        name, _, rest = entry.partition("<")
        name, email = (name.strip() or None), (rest.rstrip(">").strip() or None)
        if "@" in (name or "") and not email:
            name, email = None, name
    if name and "@" not in name:
        return str(name).strip()
    addr = str(email or name or "")
    local_part = addr.split("@", 1)[0].replace(".", " ").replace("_", " ").strip()
    return local_part.title() or None


def render_event(summary: str | None, location: str | None, description: str | None, status: str | None,
                 organizer: str | None, attendees: list[dict[str, Any]], start: datetime, end: datetime | None,
                 offset: int | None, all_day: bool) -> tuple[str, str]:
    title = (summary or "Untitled event").strip()
    when = when_label(start, end, offset, all_day=all_day)
    names = [n for n in (person_name(a) for a in attendees) if n]
    org = person_name(organizer)
    org_email = (organizer or "").rpartition("<")[2].rstrip(">").strip().lower()
    org = next((person_name(a) for a in attendees if str(a.get("email") or "").lower() == org_email), org)
    people = f", with {', '.join(dict.fromkeys(names))}" if names else ""
    by = f" Organised by {org}." if org and org not in names else ""
    cancelled = " (cancelled)" if (status or "").upper() == "CANCELLED" else ""
    desc = ""
    if description and description.strip():
        d = " ".join(description.split())
        desc = " " + (d[:DESCRIPTION_CHARS] + "…" if len(d) > DESCRIPTION_CHARS else d)
    base = f"Calendar: {title}{cancelled} {when}"
    at = f" at {location.strip()}" if location and location.strip() else ""
    return f"{base}{at}{people}.{by}{desc}", f"{base}{people}.{by}{desc}"


def render_usage(app: str, category: str | None, start: datetime, end: datetime, offset: int | None,
                 minutes: float, sessions: int) -> str:
    cat = f" ({category})" if category and category != "Other" else ""
    n = f" in {sessions} sessions" if sessions > 1 else ""
    return f"Used {app}{cat} {when_label(start, end, offset)}: {duration_label(minutes)}{n}"


def render_glances(app: str, category: str | None, start: datetime, end: datetime, offset: int | None,
                   minutes: float, glances: int) -> str:
    cat = f" ({category})" if category and category != "Other" else ""
    return f"Glanced at {app}{cat} {glances} times {when_label(start, end, offset)}: {duration_label(minutes)}"


def render_day(day: date, screen_minutes: float, by_app: dict[str, float], by_category: dict[str, float]) -> str:
    top = sorted(by_app.items(), key=lambda kv: -kv[1])[:8]
    cats = sorted(by_category.items(), key=lambda kv: -kv[1])[:5]
    apps = ", ".join(f"{a} {duration_label(m)}" for a, m in top if m >= 1)
    by_cat = ", ".join(f"{c} {duration_label(m)}" for c, m in cats if m >= 1)
    parts = [f"Screen time on {day_label(day)}: {duration_label(screen_minutes)}"]
    if apps:
        parts.append(f"Apps: {apps}")
    if by_cat:
        parts.append(f"By category: {by_cat}")
    return ". ".join(parts)


# ---- sources -> memories --------------------------------------------------------------------------------
def _rid(vault: Vault, kind: str, key: object) -> int:
    return vault.row_id("memory", kind, key)


def _same_stay(a: read.StayRow, b: read.StayRow) -> bool:
    """Two stays rows (row_id, start, end, ...) describing one visit: overlapping by more than half the shorter."""
    overlap = (min(a[2], b[2]) - max(a[1], b[1])).total_seconds()
    return overlap > 0.5 * max(1.0, min((a[2] - a[1]).total_seconds(), (b[2] - b[1]).total_seconds()))


def stay_groups(vault: Vault) -> list[list[read.StayRow]]:
    """Stays grouped into visits: an export's visit and the stay the detector found in the same fixes are one
    visit (the export's row first: it carries Google's place name); anything else stands alone."""
    groups: list[list[read.StayRow]] = []
    open_: list[list[read.StayRow]] = []  # groups whose span may still overlap the next stay
    for row in read.stay_rows(vault):
        open_ = [g for g in open_ if max(r[2] for r in g) > row[1]]
        home = next((g for g in open_ if _same_stay(g[0], row) and (g[0][9] == "derived") != (row[9] == "derived")), None)
        if home is None:
            open_.append([row])
            groups.append(open_[-1])
        elif row[9] != "derived":
            home.insert(0, row)
        else:
            home.append(row)
    return groups


def home_offsets(vault: Vault) -> Callable[[datetime, int | None], int | None]:
    """(instant, recorded offset) -> the offset to show it in: the recorded one, else the vault's home time
    zone's at that instant (vault/homezone.py). Takeout's Semantic and Records exports carry UTC only, so
    without this a summer visit read an hour early (and "after 11pm" missed it)."""
    zone = home_zone(vault, visits=False)  # the calendar alone: every memory reader sees it, so no text
    # depends on data a reader may not see (visits would make a usage memory's hours depend on location)

    def offset(at: datetime, recorded: int | None) -> int | None:
        if recorded is not None:
            return recorded
        delta = at.astimezone(zone).utcoffset()
        return None if delta is None else int(delta.total_seconds() // 60)

    return offset


def visits(vault: Vault) -> Iterator[Memory]:
    shown = home_offsets(vault)
    for group in stay_groups(vault):
        rid, s, e, off, lat, lon, name, addr, stype, _ = group[0]
        off = shown(s, off)
        text, red = render_visit(name, addr, stype, s, e, off)
        label = place_type(stype, name)
        yield Memory(
            memory_id=_rid(vault, "visit", rid), kind="visit", text=text, text_redacted=red if red != text else None,
            start_ts=s, end_ts=e, utc_offset_min=off, tags=("place", _type_word(label).replace(" ", "-")),
            details={"place": {"name": name, "address": addr, "type": label, "semantic_type": stype, "lat": lat,
                              "lon": lon}},
            source=SOURCE["visit"], source_table="stays", source_row_ids=tuple(r[0] for r in group),
        )


def trips(vault: Vault) -> Iterator[Memory]:
    shown = home_offsets(vault)
    for (rid, s, e, off, fname, tname, ftype, ttype, act, dist, slat, slon, elat, elon) in read.trip_rows(vault):
        off = shown(s, off)
        text, red = render_trip(fname, tname, ftype, ttype, act, dist, s, e, off)
        yield Memory(
            memory_id=_rid(vault, "trip", rid), kind="trip", text=text, text_redacted=red if red != text else None,
            start_ts=s, end_ts=e, utc_offset_min=off, tags=("trip",) + ((act.lower(),) if act else ()),
            details={"from": {"name": fname, "type": place_type(ftype, fname), "lat": slat, "lon": slon},
                     "to": {"name": tname, "type": place_type(ttype, tname), "lat": elat, "lon": elon}},
            source=SOURCE["trip"], source_table="trips", source_row_ids=(rid,),
        )


def events(vault: Vault) -> Iterator[Memory]:
    for (rid, s, e, off, all_day, summary, location, desc, status, org, att, cal) in read.event_rows(vault):
        people = parse_attendees(att)
        text, red = render_event(summary, location, desc, status, org, people, s, e, off, bool(all_day))
        yield Memory(
            memory_id=_rid(vault, "event", rid), kind="event", text=text, text_redacted=red if red != text else None,
            start_ts=s, end_ts=e, utc_offset_min=off, tags=("calendar",) + ((str(cal),) if cal else ()),
            details={"title": summary, "location": location, "organizer": org, "status": status, "all_day": bool(all_day),
                     "attendees": [{"name": person_name(a), "email": a.get("email"), "partstat": a.get("partstat")}
                                   for a in people]},
            source=SOURCE["event"], source_table="calendar_events", source_row_ids=(rid,),
        )


def _rids(vault: Vault, kind: str, keys: Sequence[object]) -> list[int]:
    """_rid of many keys in one vectorised call: one at a time, a year's 17,500 usage clusters cost 5 s of CPU."""
    return vault.row_ids([f"memory\x1f{kind}\x1f{k}" for k in keys])


def usage_clusters(vault: Vault) -> list[Memory]:
    """Sessions of one app on one local day, less than CLUSTER_GAP apart, make one memory."""
    rows = read.session_rows(vault)
    shown = home_offsets(vault)
    if any(r.utc_offset_min is None for r in rows):
        rows = [r._replace(utc_offset_min=shown(r.start, r.utc_offset_min)) for r in rows]
    clusters: list[list[read.SessionRow]] = []
    for row in rows:
        if clusters:
            cluster = clusters[-1]
            same_day = local(row[1], row[3]).date() == local(cluster[0][1], cluster[0][3]).date()
            if row[4] == cluster[-1][4] and same_day and row[1] - max(r[2] for r in cluster) <= CLUSTER_GAP:
                cluster.append(row)
                continue
        clusters.append([row])

    def memory(memory_id: int, cluster: list[read.SessionRow]) -> Memory:
        first, last = cluster[0], max(cluster, key=lambda r: r[2])
        minutes = sum((r[2] - r[1]).total_seconds() for r in cluster) / 60
        app, cat = first[5] or first[4], first[6]
        text = render_usage(app, cat, first[1], last[2], first[3], minutes, len(cluster))
        return Memory(
            memory_id=memory_id, kind="usage", text=text, text_redacted=None,
            start_ts=first[1], end_ts=last[2], utc_offset_min=first[3],
            tags=("app", (cat or "Other").lower().replace(" & ", "-").replace(" ", "-")),
            details={"app": app, "package": first[4], "category": cat, "minutes": round(minutes, 1),
                     "sessions": len(cluster)},
            source=SOURCE["usage"], source_table="app_sessions", source_row_ids=tuple(r[0] for r in cluster),
        )

    ids = _rids(vault, "usage", [c[0][0] for c in clusters])
    return [memory(mid, c) for mid, c in zip(ids, clusters, strict=True)]


def usage_memories(clusters: Sequence[Memory], vault: Vault) -> list[Memory]:
    """The clusters as memories, glances folded: one app's glances (clusters under GLANCE) less than GLANCE_GAP
    apart on one local day make one memory spanning them, whose provenance is every session they hold (so
    forgetting it forgets them, and `details.spans` says where each was: forget takes the raw events there)."""
    out: list[Memory] = []
    groups: list[list[Memory]] = []
    for m in clusters:
        if m.details["minutes"] * 60 >= GLANCE.total_seconds():
            out.append(m)
            continue
        if groups:
            group = groups[-1]
            prev = group[-1]
            assert m.start_ts is not None and prev.end_ts is not None and group[0].start_ts is not None
            same_day = (local(m.start_ts, m.utc_offset_min).date()
                        == local(group[0].start_ts, group[0].utc_offset_min).date())
            if (m.details["package"] == prev.details["package"] and same_day
                    and m.start_ts - prev.end_ts < GLANCE_GAP):
                group.append(m)
                continue
        groups.append([m])
    out += [g[0] for g in groups if len(g) == 1]  # a lone glance keeps its own memory
    folded = [g for g in groups if len(g) > 1]
    for memory_id, group in zip(_rids(vault, "glances", [g[0].source_row_ids[0] for g in folded]), folded,
                                strict=True):
        first, last = group[0], max(group, key=lambda m: m.end_ts or m.start_ts or datetime.min)
        assert first.start_ts is not None and last.end_ts is not None
        d = first.details
        minutes = sum(m.details["minutes"] for m in group)
        out.append(Memory(
            memory_id=memory_id, kind="usage",
            text=render_glances(d["app"], d["category"], first.start_ts, last.end_ts, first.utc_offset_min,
                                minutes, len(group)),
            text_redacted=None, start_ts=first.start_ts, end_ts=last.end_ts, utc_offset_min=first.utc_offset_min,
            tags=first.tags, source=first.source, source_table=first.source_table,
            details={"app": d["app"], "package": d["package"], "category": d["category"],
                     "minutes": round(minutes, 1), "sessions": sum(m.details["sessions"] for m in group),
                     "glances": len(group), "spans": [[m.start_ts, m.end_ts] for m in group]},
            source_row_ids=tuple(r for m in group for r in m.source_row_ids),
        ))
    return out


def screen_days(vault: Vault) -> Iterator[Memory]:
    for day, off, screen, by_app, by_cat in read.screen_day_rows(vault):
        apps, cats = json.loads(by_app or "{}"), json.loads(by_cat or "{}")
        start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(minutes=off or 0)
        yield Memory(
            memory_id=_rid(vault, "day", day.isoformat()), kind="usage", text=render_day(day, screen, apps, cats),
            text_redacted=None, start_ts=start, end_ts=start + timedelta(days=1), utc_offset_min=off,
            tags=("screen-time", "daily"), details={"screen_minutes": screen, "by_app": apps, "by_category": cats},
            source=SOURCE["usage"], source_table="daily_summaries", source_row_ids=(),
        )


def _occurrence(m: Memory) -> rt.Occurrence | None:
    if m.start_ts is None or m.end_ts is None:
        return None
    return rt.Occurrence(start_ts=m.start_ts, end_ts=m.end_ts, utc_offset_min=m.utc_offset_min, source=m.source,
                         source_table=m.source_table, source_row_ids=m.source_row_ids, details=m.details)


def routine_memories(vault: Vault, visit: Sequence[Memory], event: Sequence[Memory], usage: Sequence[Memory], *,
                     now: datetime | None = None) -> Iterator[Memory]:
    """The routines (embeddings/routines.py) the visit, event and usage memories imply, as memories."""
    def occ(ms: Sequence[Memory]) -> list[rt.Occurrence]:
        return [o for o in map(_occurrence, ms) if o is not None]

    for r in rt.routines(occ(visit), occ(event), occ(usage), now=now):
        yield Memory(memory_id=_rid(vault, "routine", r.key), kind="routine", text=r.text,
                     text_redacted=r.text_redacted, start_ts=r.start_ts, end_ts=r.end_ts,
                     utc_offset_min=r.utc_offset_min, tags=r.tags, details=r.details, source=r.source,
                     source_table=r.source_table, source_row_ids=r.source_row_ids, scope=r.scope)


def from_sources(vault: Vault, *, now: datetime | None = None) -> Iterator[Memory]:
    """Every memory the ingested tables imply right now (notes are not derived, see notes.py), routines last."""
    visit, event, usage = list(visits(vault)), list(events(vault)), usage_clusters(vault)
    yield from visit
    yield from trips(vault)
    yield from event
    yield from usage_memories(usage, vault)
    yield from screen_days(vault)
    yield from routine_memories(vault, visit, event, usage, now=now)


# ---- writing -------------------------------------------------------------------------------------------
COLUMNS = ("memory_id", "kind", "text", "text_redacted", "start_ts", "end_ts", "utc_offset_min", "tags", "metadata",
           "details", "source", "source_table", "source_row_ids", "sensitivity", "version", "ingested_at",
           "updated_at", "text_sha", "content_sha")


def _schema() -> dict[str, Any]:
    import polars as pl

    return {
        "memory_id": pl.Int64, "kind": pl.String, "text": pl.String, "text_redacted": pl.String,
        "start_ts": pl.Datetime("us", "UTC"), "end_ts": pl.Datetime("us", "UTC"), "utc_offset_min": pl.Int32,
        "tags": pl.List(pl.String), "metadata": pl.String, "details": pl.String, "source": pl.String,
        "source_table": pl.String, "source_row_ids": pl.List(pl.Int64), "sensitivity": pl.String,
        "version": pl.Int32, "ingested_at": pl.Datetime("us", "UTC"), "updated_at": pl.Datetime("us", "UTC"),
        "text_sha": pl.String, "content_sha": pl.String,
    }


def _row(m: Memory, *, now: datetime, ingested: dict[int, datetime], version: int) -> dict[str, Any]:
    """A memory's row of the memories table, by column (COLUMNS' order)."""
    return {
        "memory_id": m.memory_id, "kind": m.kind, "text": m.text, "text_redacted": m.text_redacted,
        "start_ts": m.start_ts, "end_ts": m.end_ts, "utc_offset_min": m.utc_offset_min, "tags": list(m.tags),
        "metadata": m.metadata, "details": canonical(m.details), "source": m.source, "source_table": m.source_table,
        "source_row_ids": list(m.source_row_ids), "sensitivity": m.sensitivity, "version": version,
        "ingested_at": ingested.get(m.memory_id, now), "updated_at": now, "text_sha": m.text_sha,
        "content_sha": m.content_sha,
    }


def frame(items: Sequence[Memory], *, now: datetime, ingested: dict[int, datetime] | None = None,
          version: int = 1) -> pl.DataFrame:
    rows = [_row(m, now=now, ingested=ingested or {}, version=version) for m in items]
    import polars as pl

    return pl.DataFrame(rows, schema=_schema())


_TYPED = {"start_ts": "TIMESTAMPTZ", "end_ts": "TIMESTAMPTZ", "ingested_at": "TIMESTAMPTZ", "updated_at": "TIMESTAMPTZ",
          "tags": "VARCHAR[]", "source_row_ids": "BIGINT[]"}


def insert(vault: Vault, items: Sequence[Memory], *, now: datetime, ingested: dict[int, datetime] | None = None,
           version: int = 1) -> None:
    """Insert a few memories (a note's write), one bound statement each: the rows frame() gives, without
    importing polars (and pyarrow) into a server that only searched until then (+~120 MB)."""
    marks = ", ".join(f"?::{_TYPED[c]}" if c in _TYPED else "?" for c in COLUMNS)
    for m in items:
        row = _row(m, now=now, ingested=ingested or {}, version=version)
        vault.execute(f"INSERT INTO memories ({', '.join(COLUMNS)}) VALUES ({marks})", [row[c] for c in COLUMNS])


PROVENANCE_ROWS = 256  # vector bookkeeping rows written by one literal statement (more: through a polars frame)


def provenance_sql(pending: dict[int, tuple[str, str]], *, model: str, version: str, at: datetime) -> str:
    """One statement recording (replacing) the vectors of `pending` (memory id -> (text sha, dtype)) for the
    memories that still exist, values inlined as literals (binding costs DuckDB's client more)."""
    rows = ", ".join(f"({int(i)}, {sql_literal(sha)}, {sql_literal(dtype)})" for i, (sha, dtype) in pending.items())
    return ("INSERT OR REPLACE INTO memory_vectors (memory_id, text_sha, dtype, model, model_version, embedded_at) "
            f"SELECT v.memory_id, v.text_sha, v.dtype, {sql_literal(model)}, {sql_literal(version)}, "
            f"{sql_literal(at.astimezone(UTC).isoformat())}::TIMESTAMPTZ FROM (VALUES {rows}) "
            "AS v(memory_id, text_sha, dtype) WHERE v.memory_id IN (SELECT memory_id FROM memories)")


def delete_ids(vault: Vault, ids: Iterable[int]) -> None:
    """Delete memories, their history and vector bookkeeping (callers hold the transaction)."""
    ids = list(ids)
    if not ids:
        return
    listed = id_list(ids)
    for table in ("memories", "memory_history", "memory_vectors"):
        vault.execute(f"DELETE FROM {table} WHERE memory_id IN (SELECT unnest({listed}))")


def sync(vault: Vault, *, now: datetime | None = None) -> SyncReport:
    """Make the derived memories match the ingested tables (their vectors are dropped by the service)."""
    now = now or datetime.now(UTC)
    desired = {m.memory_id: m for m in from_sources(vault, now=now)}
    existing = dict(vault.query("SELECT memory_id, content_sha FROM memories WHERE kind <> 'note'"))
    ingested = dict(vault.query("SELECT memory_id, ingested_at FROM memories WHERE kind <> 'note'"))
    added = [m for i, m in desired.items() if i not in existing]
    changed = [m for i, m in desired.items() if i in existing and existing[i] != m.content_sha]
    removed = [i for i in existing if i not in desired]
    with vault.transaction():
        delete_ids(vault, removed)
        if changed:
            vault.execute(f"DELETE FROM memories WHERE memory_id IN (SELECT unnest({id_list(m.memory_id for m in changed)}))")
        vault.insert_frame("memories", frame(added + changed, now=now, ingested=ingested), on_conflict_nothing=False)
    total = int(vault.scalar("SELECT count(*) FROM memories"))
    return SyncReport(added=len(added), changed=len(changed), removed=len(removed), total=total)
