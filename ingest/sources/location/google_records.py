"""Google Takeout `Records.json` (raw location history) -> POINTS, streamed.

Layout: `{"locations": [{"latitudeE7": 533690589, "longitudeE7": 836951347, "accuracy": 22,
"source": "WIFI", "timestamp": "2013-03-01T05:17:39.849Z", ...}, ...]}`; older files carry
`"timestampMs": "1362115059849"` instead of `timestamp` (both are read; `timestamp` wins when both
are present). Optional fields kept: accuracy (m), altitude (m), source (-> provider, upper-case).
Activity, velocity, heading, wifi scans and the rest are not kept.

Streaming: the file is decoded in chunks of CHUNK_CHARS characters and each element of the
`locations` array is parsed on its own with the C JSON scanner (json.JSONDecoder.scan_once), so
memory stays at a chunk plus one batch of columns (BATCH_ROWS records), whatever the file size.
Records are converted and validated per batch with polars.

position = the record's 0-based index in `locations`. Rejected, never raised: an element that is
not a JSON object or not valid JSON (the scanner skips to its closing brace and goes on), no
timestamp, a timestamp that is not a real date-time (2025-02-30T25:61) or lies outside 2000..2100,
latitudeE7/longitudeE7 missing, not numbers or outside -90..90 / -180..180 degrees (no int32
"wrap-around" repair: a wrong coordinate is quarantined, not guessed), and a file that ends inside
the array (truncated download): one Rejected at the next position. utc_offset_min is null unless a
`timestamp` carries an explicit non-Z offset.
"""

from __future__ import annotations

import codecs
import functools
import io
import json
import re
from collections.abc import Callable, Generator
from datetime import datetime
from typing import Any, BinaryIO

import numpy as np
import polars as pl

from ingest.files import InputFile
from ingest.records import UTC_US, Batch, Rejected, clip_raw, empty
from ingest.sources.location.common import MAX_AT, MIN_AT, instant

FORMAT = "google_records"
KIND = "location"

CHUNK_CHARS = 1 << 22  # 4 Mi characters decoded per read
BATCH_ROWS = 250_000
FLUSH_OBJECTS = 20_000  # elements parsed one by one are converted to columns this many at a time
MARGIN_CHARS = 1 << 20  # an element starting this close to the end of the window waits for more text
MAX_RECORD_CHARS = 1 << 24  # a single record larger than 16 Mi characters is not a location record

_SEP = re.compile(r"[\s,]*")
_OPEN = re.compile(r'"locations"\s*:\s*\[')
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]')
_FIELDS = ("latitudeE7", "longitudeE7", "accuracy", "altitude", "source", "timestamp", "timestampMs")


def detect(f: InputFile) -> bool:
    if not f.name.lower().endswith(".json"):
        return False
    head = f.head(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{") and _OPEN.search(head.decode("utf-8", "replace")) is not None


class _Text:
    """A window on the decoded file: buf[pos:] is what is not consumed yet."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self.buf = ""
        self.pos = 0
        self.eof = False

    def more(self) -> bool:
        """Append the next chunk (dropping what was consumed); False at end of file."""
        if self.eof:
            return False
        data = self._stream.read(CHUNK_CHARS)
        text = self._decoder.decode(data, final=not data)
        self.buf = self.buf[self.pos:] + text
        self.pos = 0
        if not data:
            self.eof = True
        return bool(text) or not self.eof

    def value_end(self, start: int) -> int | None:
        """End of the bracketed value starting at `start` (tracking strings), reading more as needed;
        None when the file ends first or the value is absurdly large."""
        while True:
            depth = 0
            for m in _TOKEN.finditer(self.buf, start):
                tok = m.group()
                if tok in "{[":
                    depth += 1
                elif tok in "}]":
                    depth -= 1
                    if depth <= 0:
                        return m.end()
            if self.eof or len(self.buf) - start > MAX_RECORD_CHARS:
                return None
            shift = self.pos
            self.more()
            start -= shift


def batches(f: InputFile) -> Generator[Batch, None, dict[str, int]]:
    """POINTS from Records.json, BATCH_ROWS records at a time; returns {} (nothing is skipped as not-data)."""
    try:
        stream = f.open()
    except OSError as e:
        yield Batch("points", empty("points"), [_reject(f, -1, f"cannot read file: {e}", "")])
        return {}
    with stream:
        yield from _parse(f, _Text(stream))
    return {}


def _parse(f: InputFile, text: _Text) -> Generator[Batch, None, None]:
    while True:  # find the array
        m = _OPEN.search(text.buf)
        if m or text.eof or len(text.buf) > MAX_RECORD_CHARS:
            break
        text.more()
    if not m:
        yield Batch("points", empty("points"), [_reject(f, -1, 'not a Records.json: no "locations" array', text.buf[:512])])
        return
    text.pos = m.end()
    scan = json.JSONDecoder().scan_once
    sep = _SEP.match
    out = _Pending(f)
    objs: list[Any] = []  # elements parsed one by one, in file order; _BROKEN where one was not valid JSON
    keep = objs.append
    first = 0  # position of objs[0]
    buf, pos = text.buf, text.pos
    limit = len(buf) - MARGIN_CHARS if not text.eof else len(buf)
    slow_until = 0  # the fast path failed on this window: go element by element up to here
    while True:
        pos = sep(buf, pos).end()
        if pos >= limit and not text.eof:
            text.pos = pos
            text.more()
            buf, pos = text.buf, text.pos
            limit = len(buf) - MARGIN_CHARS if not text.eof else len(buf)
            slow_until = 0
            continue
        if pos >= len(buf):
            out.rejected.append(_reject(f, first + len(objs), "file ends inside the locations array (truncated)", ""))
            break
        if buf[pos] == "]":
            break
        if pos >= slow_until and FAST:
            got = _fast(buf, pos, len(buf) if text.eof else limit + MARGIN_CHARS)
            if got is not None:
                if objs:
                    out.add(*points(objs, first, f))
                    first += len(objs)
                    objs = []
                    keep = objs.append
                raw, lines, used = got
                out.add(*_validate(raw.with_columns(position=pl.int_range(first, first + raw.height, dtype=pl.Int64)),
                                   f, lambda p, base=first, lines=lines: lines()[p - base]))
                first += raw.height
                pos += used
                while out.rows >= BATCH_ROWS:
                    yield out.take(BATCH_ROWS)
                continue
            slow_until = limit
        try:
            obj, pos = scan(buf, pos)
        except (StopIteration, ValueError):
            text.pos = pos
            obj, end = _recover(text, scan)
            buf, pos = text.buf, text.pos
            limit = len(buf) - MARGIN_CHARS if not text.eof else len(buf)
            slow_until = limit
            if obj is _BROKEN:
                at = first + len(objs)
                if end is None:
                    reason = "truncated JSON at end of file" if text.eof else "malformed JSON; the rest of the file is unreadable"
                    out.rejected.append(_reject(f, at, reason, buf[pos:pos + 4096]))
                    break
                out.rejected.append(_reject(f, at, "malformed JSON record", buf[pos:end]))
            pos = end
        keep(obj)
        if len(objs) >= FLUSH_OBJECTS or len(objs) + out.rows >= BATCH_ROWS:  # dicts are big: convert often
            out.add(*points(objs, first, f))
            first += len(objs)
            objs = []
            keep = objs.append
            while out.rows >= BATCH_ROWS:
                yield out.take(BATCH_ROWS)
    if objs:
        out.add(*points(objs, first, f))
    while out.rows > BATCH_ROWS:
        yield out.take(BATCH_ROWS)
    if out.rows or out.rejected:
        yield out.take()


class _Pending:
    """Converted rows and rejects waiting to be yielded as one Batch."""

    def __init__(self, f: InputFile) -> None:
        self.f = f
        self.frames: list[pl.DataFrame] = []
        self.rejected: list[Rejected] = []
        self.rows = 0

    def add(self, rows: pl.DataFrame, rejected: list[Rejected]) -> None:
        self.frames.append(rows)
        self.rejected.extend(rejected)
        self.rows += rows.height

    def take(self, limit: int | None = None) -> Batch:
        """A Batch of the first `limit` rows (all when None) and the rejects that come before the rest."""
        rows = pl.concat(self.frames) if self.frames else empty("points")
        rest = empty("points")
        if limit is not None and rows.height > limit:
            rows, rest = rows.head(limit), rows.slice(limit)
        if rest.height:
            cut = rest["position"][0]
            mine = [r for r in self.rejected if r.position < cut]
            self.rejected = [r for r in self.rejected if r.position >= cut]
        else:
            mine, self.rejected = self.rejected, []
        self.frames, self.rows = ([rest] if rest.height else []), rest.height
        return Batch("points", rows, sorted(mine, key=lambda r: r.position))


# The fast path: a window of compact, ASCII, escape-free elements is turned into NDJSON (one element per
# line) with numpy -- string-aware bracket depth finds the top-level commas -- and parsed by polars in
# Rust. Anything unusual (a backslash, non-ASCII text, a non-object element, a type polars will not read
# as the schema says, a syntax error) makes it return None and the window goes element by element.
FAST = True
_SCHEMA = {"latitudeE7": pl.Float64, "longitudeE7": pl.Float64, "accuracy": pl.Float64, "altitude": pl.Float64,
           "source": pl.String, "timestamp": pl.String, "timestampMs": pl.String}


def _fast(buf: str, pos: int, end: int) -> tuple[pl.DataFrame, Callable[[], list[bytes]], int] | None:
    """(raw columns of the complete elements from pos, their NDJSON lines on demand, chars consumed) or None."""
    region = buf[pos:end]
    if not region.isascii() or "\\" in region or not region.startswith("{"):
        return None
    data = region.encode("ascii")
    a = np.frombuffer(data, dtype=np.uint8)
    folded = a | 32  # "[" -> "{", "]" -> "}"
    structural = (folded == 123) | (folded == 125) | (a == 34) | (a == 44)
    idx = np.flatnonzero(structural)
    ch = a[idx]
    quote = ch == 34
    outside = ~np.logical_xor.accumulate(quote)  # after an even number of quotes
    keep = outside & ~quote
    idx, ch = idx[keep], ch[keep]
    step = np.where((ch == 123) | (ch == 91), 1, np.where((ch == 125) | (ch == 93), -1, 0)).astype(np.int32)
    depth = np.cumsum(step)
    closed = np.flatnonzero(depth < 0)  # the "]" closing the locations array
    stop = int(closed[0]) if closed.size else len(idx)
    ends = np.flatnonzero((step[:stop] == -1) & (depth[:stop] == 0))
    if ends.size == 0:
        return None
    last = int(ends[-1])
    commas = idx[:last][(ch[:last] == 44) & (depth[:last] == 0)]
    if commas.size != ends.size - 1 or (ends.size > 1 and not (idx[ends[:-1]] < commas).all()):
        return None  # "}{" without a comma, ",,", a bare value between objects...
    cut = int(idx[last]) + 1
    nd = data[:cut].replace(b"\n", b" ")  # an element on several lines goes on one (JSON allows \r and \t in it)
    if b"\r" in nd:
        nd = nd.replace(b"\r", b" ")
    nd = bytearray(nd)
    np.frombuffer(nd, dtype=np.uint8)[commas] = 10
    try:
        raw = pl.read_ndjson(io.BytesIO(nd), schema=_SCHEMA)
    except Exception:  # noqa: BLE001 -- any polars complaint: the slow path will say what is wrong, per element
        return None
    if raw.height != ends.size:
        return None
    raw = raw.select(
        lat7="latitudeE7", lon7="longitudeE7", accuracy_m="accuracy", altitude_m="altitude", provider="source",
        iso="timestamp", ms=pl.col("timestampMs").str.strip_chars().cast(pl.Int64, strict=False),
        has_lat=pl.col("latitudeE7").is_not_null() & pl.col("longitudeE7").is_not_null(),
        has_ts=pl.col("timestamp").is_not_null() | pl.col("timestampMs").is_not_null(),
    )
    return raw, functools.cache(lambda: bytes(nd).split(b"\n")), cut


_BROKEN = object()


def _recover(text: _Text, scan: Any) -> tuple[Any, int | None]:
    """The scanner failed at text.pos. Read on in case the element continues in the next chunk: (obj, end)
    if it then parses; else (_BROKEN, end of the malformed bracketed value), or (_BROKEN, None) when the
    file ends first (truncated) or the value is absurdly long."""
    while not text.eof and len(text.buf) - text.pos <= MAX_RECORD_CHARS:
        text.more()
        try:
            return scan(text.buf, text.pos)
        except (StopIteration, ValueError):
            continue
    end = text.value_end(text.pos) if text.buf.startswith(("{", "["), text.pos) else None
    return _BROKEN, end


def points(objs: list[Any], first: int, f: InputFile) -> tuple[pl.DataFrame, list[Rejected]]:
    """Validate and convert elements parsed one by one: (POINTS rows, Rejected).

    objs[i] is the element at position first + i (_BROKEN for one already rejected as malformed JSON)."""
    rejected: list[Rejected] = []
    if any(type(o) is not dict for o in objs):
        for i, o in enumerate(objs):
            if o is not _BROKEN and type(o) is not dict:
                rejected.append(_reject(f, first + i, "not a JSON object", json.dumps(o, ensure_ascii=False)))
        pos = [first + i for i, o in enumerate(objs) if type(o) is dict]
        objs = [o for o in objs if type(o) is dict]
    else:
        pos = list(range(first, first + len(objs)))
    if not objs:
        return empty("points"), rejected
    cols = {k: [o.get(k) for o in objs] for k in _FIELDS}
    lat, lon, ts, ms = cols["latitudeE7"], cols["longitudeE7"], cols["timestamp"], cols["timestampMs"]
    df = pl.DataFrame(
        {
            "lat7": pl.Series(lat, dtype=pl.Float64, strict=False),
            "lon7": pl.Series(lon, dtype=pl.Float64, strict=False),
            "accuracy_m": pl.Series(cols["accuracy"], dtype=pl.Float64, strict=False),
            "altitude_m": pl.Series(cols["altitude"], dtype=pl.Float64, strict=False),
            "provider": pl.Series(cols["source"], dtype=pl.String, strict=False),
            "iso": pl.Series(ts, dtype=pl.String, strict=False),
            "ms": pl.Series(ms, dtype=pl.String, strict=False).str.strip_chars().cast(pl.Int64, strict=False),
            "has_lat": pl.Series([a is not None and b is not None for a, b in zip(lat, lon, strict=True)]),
            "has_ts": pl.Series([a is not None or b is not None for a, b in zip(ts, ms, strict=True)]),
            "position": pl.Series(pos, dtype=pl.Int64),
        }
    )
    where = {p: i for i, p in enumerate(pos)}
    rows, bad = _validate(df, f, lambda p: json.dumps(objs[where[p]], ensure_ascii=False, default=str))
    return rows, rejected + bad


def _validate(df: pl.DataFrame, f: InputFile, raw_of: Callable[[int], str | bytes]) -> tuple[pl.DataFrame, list[Rejected]]:
    """Raw columns (lat7, lon7, accuracy_m, altitude_m, provider, iso, ms, has_lat, has_ts, position) ->
    (POINTS rows, Rejected for the rows that fail; raw_of(position) gives a failing row's text)."""
    rejected: list[Rejected] = []
    # the common "...Z" form vectorised; explicit offsets and odd spellings go through Python below
    zulu = pl.col("iso").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", strict=False, time_zone="UTC")
    df = df.with_columns(
        at=pl.when(pl.col("iso").is_not_null()).then(zulu).otherwise(
            pl.from_epoch(pl.col("ms"), time_unit="ms").dt.replace_time_zone("UTC")
        ).cast(UTC_US),
        utc_offset_min=pl.lit(None, dtype=pl.Int32),
    )
    df = _reparse_odd_timestamps(df)
    lat_d, lon_d = (pl.col("lat7") / 1e7).round(7), (pl.col("lon7") / 1e7).round(7)
    reason = (
        pl.when(~pl.col("has_ts")).then(pl.lit("no timestamp or timestampMs"))
        .when(pl.col("at").is_null()).then(pl.lit("timestamp is not a valid date-time"))
        .when((pl.col("at") < MIN_AT) | (pl.col("at") >= MAX_AT)).then(pl.lit("timestamp outside 2000..2100"))
        .when(~pl.col("has_lat")).then(pl.lit("no latitudeE7/longitudeE7"))
        .when(pl.col("lat7").is_null() | pl.col("lon7").is_null()).then(pl.lit("latitudeE7/longitudeE7 are not numbers"))
        .when((lat_d < -90) | (lat_d > 90)).then(pl.lit("latitude outside -90..90"))
        .when((lon_d < -180) | (lon_d > 180)).then(pl.lit("longitude outside -180..180"))
    )
    df = df.with_columns(reason=reason)
    bad = df.filter(pl.col("reason").is_not_null())
    for p, r in bad.select("position", "reason").iter_rows():
        rejected.append(_reject(f, p, r, raw_of(p)))
    rows = df.filter(pl.col("reason").is_null()).select(
        "at",
        "utc_offset_min",
        lat=lat_d,
        lon=lon_d,
        accuracy_m=pl.when(pl.col("accuracy_m") >= 0).then(pl.col("accuracy_m")),
        altitude_m="altitude_m",
        provider=pl.col("provider").str.to_uppercase(),
        format=pl.lit(FORMAT),
        file=pl.lit(f.name),
        position="position",
    )
    return rows, rejected


def _reparse_odd_timestamps(df: pl.DataFrame) -> pl.DataFrame:
    """ISO strings polars' strict format did not read (no seconds, "+0100", ...): one Python parse each."""
    odd = df.filter(pl.col("iso").is_not_null() & pl.col("at").is_null())
    if not odd.height:
        return df
    fixed_at: list[datetime | None] = []
    fixed_off: list[int | None] = []
    for text in odd["iso"].to_list():
        try:
            at, off = instant(text)
        except ValueError:
            at, off = None, None
        fixed_at.append(at)
        fixed_off.append(off)
    fix = pl.DataFrame(
        {"position": odd["position"], "at2": pl.Series(fixed_at, dtype=UTC_US), "off2": pl.Series(fixed_off, dtype=pl.Int32)}
    )
    return (
        df.join(fix, on="position", how="left", maintain_order="left")
        .with_columns(at=pl.coalesce("at", "at2"), utc_offset_min=pl.coalesce("utc_offset_min", "off2"))
        .drop("at2", "off2")
    )


def _reject(f: InputFile, position: int, reason: str, raw: str) -> Rejected:
    return Rejected(format=FORMAT, file=f.name, position=position, reason=reason, raw=clip_raw(raw))
