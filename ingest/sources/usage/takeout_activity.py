"""Google Takeout My Activity JSON (`My Activity/<Product>/MyActivity.json`) -> app launches in USAGE_EVENTS.

The file is a JSON array of entries {header, title, titleUrl, time, products, ...}. An app launch is an
entry whose titleUrl is a Play Store details link with an `id=` (the package) and whose products include
"Android" (or are absent): it becomes one USAGE_EVENTS row, event_type "LAUNCH", at `time` (UTC),
utc_offset_min null (Takeout writes UTC only), class_name null. The title ("Used YouTube", "YouTube
verwendet", ...) is localised and not read.

Entries that are valid but not app launches (searches, visits, Play Store installs, anything without a
Play Store id) are skipped, not quarantined: `batches` returns their count ({reason: count}). Rejected,
with the entry's 0-based index in the array: an entry that is not an object, a launch without a
parseable `time`. A file that is not a JSON array -> one Rejected(position=-1).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Generator
from urllib.parse import parse_qs, urlsplit

from ingest.files import InputFile
from ingest.records import Batch, Rejected, clip_raw, empty, frame

FORMAT = "takeout_my_activity"
KIND = "usage"

BATCH_ROWS = 250_000
NOT_A_LAUNCH = "not an app launch (no Play Store id, or not an Android product)"

log = logging.getLogger(__name__)


def detect(f: InputFile) -> bool:
    if not f.name.lower().endswith(".json"):
        return False
    head = f.head(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"[") and all(k in head for k in (b'"header"', b'"title"', b'"time"'))


def batches(f: InputFile) -> Generator[Batch, None, dict[str, int]]:
    """App launches from one MyActivity.json; returns the count of entries that are not launches."""
    try:
        entries = json.loads(f.read_bytes().decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as e:
        yield _failed(f, f"not JSON: {e}", f.head(2048))
        return {}
    except RecursionError:
        yield _failed(f, "not JSON: nested too deeply to parse", f.head(2048))
        return {}
    except OSError as e:
        yield _failed(f, f"cannot read file: {e}", b"")
        return {}
    if not isinstance(entries, list):
        yield _failed(
            f, f"expected a JSON array of activity entries, found {type(entries).__name__}", f.head(2048)
        )
        return {}
    skipped: Counter[str] = Counter()
    rows: list[dict] = []
    rejected: list[Rejected] = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            rejected.append(_rejected(f, position, "entry is not a JSON object", entry))
            continue
        package = _package(entry)
        if package is None:
            skipped[NOT_A_LAUNCH] += 1
            continue
        at = _time(entry.get("time"))
        if at is None:
            rejected.append(_rejected(f, position, f"launch of {package} without a valid time", entry))
            continue
        rows.append(
            {
                "at": at,
                "package": package,
                "event_type": "LAUNCH",
                "format": FORMAT,
                "file": f.name,
                "position": position,
            }
        )
        if len(rows) >= BATCH_ROWS:
            yield Batch("usage_events", frame("usage_events", rows), rejected)
            rows, rejected = [], []
    if rows or rejected:
        yield Batch("usage_events", frame("usage_events", rows), rejected)
    if skipped:
        log.info("%s: skipped %s", FORMAT, dict(skipped))
    return dict(skipped)


def _package(entry: dict) -> str | None:
    products = entry.get("products")
    if isinstance(products, list) and products and "Android" not in products:
        return None
    url = entry.get("titleUrl")
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # not a URL ("http://[" is an invalid IPv6 host): not a Play Store link either
        return None
    if host != "play.google.com" or not parts.path.startswith("/store/apps/details"):
        return None
    ids = parse_qs(parts.query).get("id")
    return ids[0].strip() if ids and ids[0].strip() else None


def _time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return at.astimezone(dt.UTC) if at.tzinfo else None


def _rejected(f: InputFile, position: int, reason: str, entry: object) -> Rejected:
    return Rejected(
        format=FORMAT,
        file=f.name,
        position=position,
        reason=reason,
        raw=clip_raw(json.dumps(entry, ensure_ascii=False)),
    )


def _failed(f: InputFile, reason: str, head: bytes) -> Batch:
    reason = " ".join(reason.split())
    return Batch(
        "usage_events",
        empty("usage_events"),
        [Rejected(format=FORMAT, file=f.name, position=-1, reason=reason, raw=clip_raw(head))],
    )
