"""Google Takeout `Records.json` (raw location history) -> POINTS, streamed.

Layout: `{"locations": [{"latitudeE7": 533690589, "longitudeE7": 836951347, "accuracy": 22,
"source": "WIFI", "timestamp": "2013-03-01T05:17:39.849Z", ...}, ...]}`; older files carry
`"timestampMs": "1362115059849"` instead of `timestamp` (both are read; `timestamp` wins when both
are present). Optional fields kept: accuracy (m), altitude (m), source (-> provider, upper-case).
Activity, velocity, heading, wifi scans and the rest are not kept.

Streaming: the file is read in chunks of CHUNK_BYTES bytes and stays bytes. Windows of plain records
(ASCII, no escapes: nearly every real file) go through a vectorised fast path (below); anything else is
decoded (UTF-8, BOM allowed, invalid bytes read as U+FFFD) and parsed element by element with the C JSON
scanner (json.JSONDecoder.scan_once), so memory stays at a chunk plus one batch of columns (BATCH_ROWS
records), whatever the file size. Records are converted and validated per batch with polars.

position = the record's 0-based index in `locations`. Rejected, never raised: an element that is
not a JSON object, not valid JSON or nested too deeply to parse (the scanner skips to its closing brace
and goes on), no timestamp, a timestamp that is not a real date-time (2025-02-30T25:61) or lies outside 2000..2100,
latitudeE7/longitudeE7 missing, not numbers or outside -90..90 / -180..180 degrees (no int32
"wrap-around" repair: a wrong coordinate is quarantined, not guessed), and a file that ends inside
the array (truncated download): one Rejected at the next position. utc_offset_min is null unless a
`timestamp` carries an explicit non-Z offset.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Generator
from datetime import datetime
from types import ModuleType
from typing import Any, AnyStr, BinaryIO, cast

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ingest.files import InputFile
from ingest.records import RAW_LIMIT, UTC_US, Batch, Rejected, clip_raw, empty
from ingest.sources.location.common import MAX_AT, MIN_AT, instant

_native: ModuleType | None
try:  # built at install (setup.py); without it the numpy + polars fast path below reads the same columns
    from ingest import _records as _native
except ImportError:  # pragma: no cover - a machine without a C compiler
    _native = None

FORMAT = "google_records"
KIND = "location"

CHUNK_BYTES = 1 << 22  # 4 MiB read at a time
BATCH_ROWS = 122_880  # one DuckDB row group (~12 MiB of columns): smaller batches split row groups across commits
# and nearly double the write CPU; larger ones peak higher (bench/README.md)
FLUSH_OBJECTS = 20_000  # elements parsed one by one are converted to columns this many at a time
MARGIN_BYTES = 1 << 20  # an element starting this close to the end of the window waits for more bytes
MAX_RECORD_BYTES = 1 << 24  # a single record larger than 16 MiB is not a location record

_SEP = re.compile(r"[\s,]*")  # on text: JSON's whitespace and the Unicode spaces the text scanner skipped
_SEP_B = re.compile(rb"[ \t\n\r\f\v,]*")


def _always(pattern: re.Pattern[AnyStr]) -> Callable[[AnyStr, int], re.Match[AnyStr]]:
    """pattern.match for a pattern that matches everywhere (maybe empty, as _SEP): never None."""
    return cast("Callable[[AnyStr, int], re.Match[AnyStr]]", pattern.match)

_OPEN = re.compile(r'"locations"\s*:\s*\[')
_OPEN_B = re.compile(rb'"locations"[ \t\n\r]*:[ \t\n\r]*\[')
_TOKEN_B = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]]', re.DOTALL)
_BOM = b"\xef\xbb\xbf"
_FIELDS = ("latitudeE7", "longitudeE7", "accuracy", "altitude", "source", "timestamp", "timestampMs")


def detect(f: InputFile) -> bool:
    if not f.name.lower().endswith(".json"):
        return False
    head = f.head(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{") and _OPEN.search(head.decode("utf-8", "replace")) is not None


class _Window:
    """A window on the raw file: raw[pos:] is what is not consumed yet (bytes, the BOM dropped)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.raw = b""
        self.pos = 0
        self.eof = False
        self._started = False

    def more(self) -> None:
        """Append the next chunk (dropping what was consumed)."""
        if self.eof:
            return
        data = self._stream.read(CHUNK_BYTES)
        if not data:
            self.eof = True
        elif not self._started:  # the BOM may come over several tiny reads
            while len(data) < len(_BOM) and (extra := self._stream.read(CHUNK_BYTES)):
                data += extra
            data = data.removeprefix(_BOM)
            self._started = True
        self.raw = self.raw[self.pos:] + data
        self.pos = 0

    def text(self, start: int, stop: int) -> str:
        return self.raw[start:stop].decode("utf-8", "replace")

    def value_end(self, start: int) -> int | None:
        """End of the bracketed value starting at `start` (tracking strings), reading more as needed;
        None when the file ends first or the value is absurdly large."""
        while True:
            depth = 0
            for m in _TOKEN_B.finditer(self.raw, start):
                tok = m.group()
                if tok in (b"{", b"["):
                    depth += 1
                elif tok in (b"}", b"]"):
                    depth -= 1
                    if depth <= 0:
                        return m.end()
            if self.eof or len(self.raw) - start > MAX_RECORD_BYTES:
                return None
            shift = self.pos
            self.more()
            start -= shift


class _Elements:
    """Element-by-element reading of the window as text, for what the fast path does not take.

    The stdlib scanner needs str: the window is decoded from the element on (invalid bytes kept as
    surrogate escapes, so a text offset maps back to a byte offset exactly) and the text is reused while
    the reading goes on in the same window. An element whose bytes are not valid UTF-8 is decoded again
    with U+FFFD for the bad bytes, as a decoder with errors="replace" reads the file."""

    _SKIPPED = object()

    def __init__(self, win: _Window) -> None:
        self._win = win
        self._scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # typeshed omits it
        self._raw: bytes | None = None
        self._text = ""
        self._b = 0  # byte offset in _raw of text position _c
        self._c = 0
        self._bad = False  # the decoded text holds bad bytes (as surrogate escapes)

    def _at(self, pos: int) -> int:
        """The text position of byte offset `pos` of the window, decoding anew when needed."""
        raw = self._win.raw
        if raw is self._raw and pos >= self._b:
            gap = raw[self._b:pos]
            if gap.isascii():
                self._c += len(gap)
                self._b = pos
                return self._c
        self._raw, self._text, self._b, self._c = raw, raw[pos:].decode("utf-8", "surrogateescape"), pos, 0
        self._bad = False  # bad bytes (as surrogate escapes) in the window: then elements are checked one by one
        if not self._text.isascii():
            try:
                self._text.encode()
            except UnicodeEncodeError:
                self._bad = True
        return 0

    def run(self, pos: int, stop: int, most: int) -> tuple[list[Any], int]:
        """Up to `most` elements parsed one after another from byte offset `pos`, stopping before one that
        starts at or after byte `stop`, at "]", at the end of the window or at one that does not parse:
        (the elements, byte offset after the last one and the spaces after it). Offsets are converted
        once per run, not per element."""
        c0 = c = self._at(pos)
        text, scan, sep, bad = self._text, self._scan, _always(_SEP), self._bad
        # (the text offset of `stop`, give or take the bytes of a character cut there: elements near the end
        # of the window are only read early or late, never differently)
        c_stop = len(text) - len((self._raw or b"")[stop:].decode("utf-8", "surrogateescape"))
        out: list[Any] = []
        while len(out) < most:
            c = sep(text, c).end()
            if c >= c_stop or c >= len(text) or text[c] == "]":
                break
            try:
                obj, end = scan(text, c)
            except (StopIteration, ValueError, RecursionError):
                break
            if bad and not text[c:end].isascii():
                piece = text[c:end]
                try:
                    piece.encode()
                except UnicodeEncodeError:  # bad bytes in the element: read them as U+FFFD
                    obj = scan(piece.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), 0)[0]
            out.append(obj)
            c = end
        return out, self._advance(c0, c)

    def next(self, pos: int) -> tuple[Any, int]:
        """(element, byte offset after it) at byte offset `pos`; (_SKIPPED, offset) after Unicode spaces the
        caller should look past; raises ValueError/StopIteration when no element parses there."""
        c = self._at(pos)
        text = self._text
        skip = _always(_SEP)(text, c).end()
        if skip > c:
            return self._SKIPPED, self._advance(c, skip)
        obj, end = self._scan(text, c)
        piece = text[c:end]
        try:
            size = len(piece.encode())
        except UnicodeEncodeError:  # bad bytes in the element: read them as U+FFFD
            size = len(piece.encode("utf-8", "surrogateescape"))
            obj = self._scan((self._raw or b"")[pos:pos + size].decode("utf-8", "replace"), 0)[0]
        self._b, self._c = pos + size, end
        return obj, pos + size

    def _advance(self, c: int, end: int) -> int:
        self._b += len(self._text[c:end].encode("utf-8", "surrogateescape"))
        self._c = end
        return self._b


def batches(f: InputFile) -> Generator[Batch, None, dict[str, int]]:
    """POINTS from Records.json, BATCH_ROWS records at a time; returns {} (nothing is skipped as not-data)."""
    try:
        stream = f.open()
    except OSError as e:
        yield Batch("points", empty("points"), [_reject(f, -1, f"cannot read file: {e}", "")])
        return {}
    with stream:
        yield from _parse(f, _Window(stream))
    return {}


def _open_array(win: _Window) -> int | None:
    """Byte offset just after the `"locations": [` that opens the array, or None."""
    while True:
        m = _OPEN_B.search(win.raw)
        if m or win.eof or len(win.raw) > MAX_RECORD_BYTES:
            break
        win.more()
    if m:
        return m.end()
    text = win.raw.decode("utf-8", "surrogateescape")  # spaces JSON does not allow but the text scanner skipped
    m2 = _OPEN.search(text)
    return len(text[:m2.end()].encode("utf-8", "surrogateescape")) if m2 else None


def _parse(f: InputFile, win: _Window) -> Generator[Batch, None, None]:
    start = _open_array(win)
    if start is None:
        yield Batch("points", empty("points"), [_reject(f, -1, 'not a Records.json: no "locations" array', win.text(0, 2048)[:512])])
        return
    win.pos = start
    elements = _Elements(win)
    sep = _always(_SEP_B)
    out = _Pending(f)
    objs: list[Any] = []  # elements parsed one by one, in file order; _BROKEN where one was not valid JSON
    first = 0  # position of objs[0]
    raw, pos = win.raw, win.pos
    limit = len(raw) - MARGIN_BYTES if not win.eof else len(raw)
    slow_until = 0  # the fast path failed on this window: go element by element up to here
    while True:
        pos = sep(raw, pos).end()
        if pos >= limit and not win.eof:
            win.pos = pos
            win.more()
            raw, pos = win.raw, win.pos
            limit = len(raw) - MARGIN_BYTES if not win.eof else len(raw)
            slow_until = 0
            continue
        if pos >= len(raw):
            out.rejected.append(_reject(f, first + len(objs), "file ends inside the locations array (truncated)", ""))
            break
        if raw[pos] == 93:  # "]"
            break
        if pos >= slow_until and FAST:
            got = _fast(raw, pos, len(raw) if win.eof else limit + MARGIN_BYTES)
            if got is not None:
                if objs:
                    out.add(*points(objs, first, f))
                    first += len(objs)
                    objs = []
                rows, lines, used = got
                out.add(*_validate(rows.with_columns(position=pl.int_range(first, first + rows.height, dtype=pl.Int64)),
                                   f, _line_of(lines, first)))
                first += rows.height
                pos += used
                while out.rows >= BATCH_ROWS:
                    yield out.take(BATCH_ROWS)
                continue
            slow_until = limit
        parsed, end = elements.run(pos, limit, min(FLUSH_OBJECTS - len(objs), BATCH_ROWS - out.rows - len(objs)))
        if parsed or end > pos:  # elements, or only spaces the text scanner skips
            objs += parsed
            pos = end
        else:
            try:  # nothing parses at pos
                obj, pos = elements.next(pos)
                if obj is _Elements._SKIPPED:
                    continue
            except (StopIteration, ValueError, RecursionError):
                win.pos = pos
                obj, rend = _recover(win, elements)
                end = -1 if rend is None else rend  # None comes only with _BROKEN, which stops below
                raw, pos = win.raw, win.pos
                limit = len(raw) - MARGIN_BYTES if not win.eof else len(raw)
                slow_until = limit
                if obj is _Elements._SKIPPED:  # the element had only begun: spaces, now complete
                    pos = end
                    continue
                if obj is _BROKEN:
                    at = first + len(objs)
                    if rend is None:
                        reason = ("truncated JSON at end of file" if win.eof
                                  else "malformed JSON; the rest of the file is unreadable")
                        out.rejected.append(_reject(f, at, reason, win.text(pos, pos + 4 * RAW_LIMIT)[:RAW_LIMIT]))
                        break
                    out.rejected.append(_reject(f, at, "malformed JSON record", win.text(pos, end)))
                pos = end
            objs.append(obj)
        if len(objs) >= FLUSH_OBJECTS or len(objs) + out.rows >= BATCH_ROWS:  # dicts are big: convert often
            out.add(*points(objs, first, f))
            first += len(objs)
            objs = []
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


# The fast path. Natively (ingest/_records.c, built at install): one pass over the bytes, without the GIL,
# straight to columns, up to the first element that is not plain (a backslash escape, non-ASCII text, a kept
# field of another type, a syntax error). Without the module: a window of ASCII, escape-free elements is
# turned into NDJSON (one element per line) with numpy -- string-aware bracket depth finds the top-level
# commas -- and parsed by polars in Rust, all or nothing. Either way what is not taken goes element by
# element, which says what is wrong.
FAST = True
_SCHEMA = {"latitudeE7": pl.Float64, "longitudeE7": pl.Float64, "accuracy": pl.Float64, "altitude": pl.Float64,
           "source": pl.String, "timestamp": pl.String, "timestampMs": pl.String}
Raw = tuple[pl.DataFrame, Callable[[], list[bytes]], int]


def _fast(buf: bytes, pos: int, end: int) -> Raw | None:
    """(raw columns of the complete elements in buf[pos:end], each element's text on demand, bytes consumed) or
    None."""
    return _fast_native(buf, pos, end) if _native is not None else _fast_numpy(buf, pos, end)


def _fast_native(buf: bytes, pos: int, end: int) -> Raw | None:
    if _native is None:  # not built (_fast reads with numpy then)
        return None
    got = _native.parse(buf, pos, end)
    if got is None:
        return None
    n, used, *columns, starts, ends = got  # _SCHEMA's numbers (float64, NaN = null), then its texts (3 buffers each)
    numbers, texts = list(_SCHEMA)[:4], list(_SCHEMA)[4:]

    def text(off: bytes, data: bytes, valid: bytes) -> pl.Series:
        bits = np.packbits(np.frombuffer(valid, dtype=np.uint8), bitorder="little")
        return pl.Series(pa.StringArray.from_buffers(n, pa.py_buffer(off), pa.py_buffer(data), pa.py_buffer(bits.data)))

    fields = pl.DataFrame(
        {name: pl.Series(np.frombuffer(b, dtype=np.float64)).fill_nan(None) for name, b in zip(numbers, columns[:4], strict=True)}
        | {name: text(*columns[4 + 3 * i: 7 + 3 * i]) for i, name in enumerate(texts)})
    spans = np.stack([np.frombuffer(starts, dtype=np.int64), np.frombuffer(ends, dtype=np.int64)], axis=1) + pos
    return _raw(fields), functools.cache(lambda: [buf[a:b] for a, b in spans.tolist()]), used


def _raw(fields: pl.DataFrame) -> pl.DataFrame:
    """The kept fields as either fast path reads them (_SCHEMA's names and types) -> the raw columns _validate takes."""
    return fields.select(
        lat7="latitudeE7", lon7="longitudeE7", accuracy_m="accuracy", altitude_m="altitude", provider="source",
        iso="timestamp", ms=pl.col("timestampMs").str.strip_chars().cast(pl.Int64, strict=False),
        has_lat=pl.col("latitudeE7").is_not_null() & pl.col("longitudeE7").is_not_null(),
        has_ts=pl.col("timestamp").is_not_null() | pl.col("timestampMs").is_not_null(),
    )


def _fast_numpy(buf: bytes, pos: int, end: int) -> Raw | None:
    a = np.frombuffer(buf, dtype=np.uint8, count=end - pos, offset=pos)
    if not a.size or a[0] != 123 or buf.find(b"\\", pos, end) >= 0 or a.max() >= 128:  # "{", no escapes, ASCII
        return None
    folded = a | 32  # "[" -> "{", "]" -> "}"
    structural = folded == 123
    structural |= folded == 125
    structural |= a == 34
    structural |= a == 44
    del folded
    idx = np.flatnonzero(structural)
    del structural
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
    lines = a[:cut].copy()
    lines[lines == 10] = 32  # an element on several lines goes on one (JSON allows \r and \t in it)
    if buf.find(b"\r", pos, pos + cut) >= 0:
        lines[lines == 13] = 32
    lines[commas] = 10  # one element a line
    nd = lines.tobytes()
    del lines
    try:
        raw = pl.read_ndjson(nd, schema=_SCHEMA)
    except Exception:  # noqa: BLE001 -- any polars complaint: the slow path will say what is wrong, per element
        return None
    if raw.height != ends.size:
        return None
    return _raw(raw), functools.cache(lambda: nd.split(b"\n")), cut


_BROKEN = object()


def _line_of(lines: Callable[[], list[bytes]], base: int) -> Callable[[int], bytes]:
    """The text of the element at a position, from the lines of a run that starts at `base`."""
    return lambda p: lines()[p - base]


def _recover(win: _Window, elements: _Elements) -> tuple[Any, int | None]:
    """No element parsed at win.pos. Read on in case it continues in the next chunk: (obj, end) if it then
    parses; else (_BROKEN, end of the malformed bracketed value), or (_BROKEN, None) when the file ends
    first (truncated) or the value is absurdly long."""
    while not win.eof and len(win.raw) - win.pos <= MAX_RECORD_BYTES:
        win.more()
        try:
            return elements.next(win.pos)
        except (StopIteration, ValueError, RecursionError):
            continue
    end = win.value_end(win.pos) if win.raw.startswith((b"{", b"["), win.pos) else None
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
    df = df.with_columns(
        at=pl.when(pl.col("iso").is_not_null()).then(pl.lit(_zulu(df["iso"]))).otherwise(
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


_PLAIN_ZULU = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$"


def _zulu(iso: pl.Series) -> pl.Series:
    """UTC instants of "2013-03-01T05:17:39.849Z" texts; null where a text is not of that form.

    Where every text has exactly the plain layout (nearly always), Arrow's ISO-8601 cast reads them (~10x
    faster than a strptime format); it refuses the whole column if one is not a real date-time (30 Feb,
    25:00, a leap second), and then polars' strict format decides, value by value, as it does for the
    rest."""
    if iso.null_count() < len(iso) and iso.str.contains(_PLAIN_ZULU).all():
        try:
            return pl.Series(iso.name, pc.cast(iso.to_arrow(), pa.timestamp("us", "UTC")))
        except pa.ArrowInvalid:
            pass
    return iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", strict=False, time_zone="UTC", cache=False).cast(UTC_US)


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


def _reject(f: InputFile, position: int, reason: str, raw: str | bytes) -> Rejected:
    return Rejected(format=FORMAT, file=f.name, position=position, reason=reason, raw=clip_raw(raw))
