"""One bad file never costs the run: a source whose input breaks a bound mid-stream ends in quarantine.

Sources turn what they read into rows and Rejected values themselves; what they cannot see coming is
the input failing under them while they stream it: a zip member that inflates past its cap or is
damaged (ingest.files), JSON nested deeper than the parser's recursion allows. `guarded` runs a
source's generator and turns those exceptions into one Rejected at position -1 for the file (the
batches it already yielded stay loaded), so the run goes on with the next file. Anything else is a
bug and propagates.
"""

from __future__ import annotations

from collections.abc import Generator
from types import ModuleType
from typing import Any

from ingest.files import InputFile
from ingest.records import Batch, Rejected, empty

_TABLE_OF_KIND = {"location": "points", "calendar": "events", "usage": "usage_events"}

# What the input can do to a parser, whatever the source: bounded reads, deep nesting, damaged archives.
INPUT_FAILURES: tuple[type[BaseException], ...] = (OSError, RecursionError, EOFError)


def guarded(f: InputFile, mod: ModuleType, options: dict[str, Any]) -> Generator[Batch, None, dict[str, int]]:
    """mod.batches(f, **options); an input failure becomes one Rejected for the file, the run goes on."""
    gen = mod.batches(f, **options)
    try:
        return (yield from gen)
    except INPUT_FAILURES as e:
        reason = failure_reason(e)
    finally:
        gen.close()
    rejected = Rejected(format=mod.FORMAT, file=f.name, position=-1, reason=reason, raw="")
    yield Batch(_TABLE_OF_KIND[mod.KIND], empty(_TABLE_OF_KIND[mod.KIND]), [rejected])
    return {}


def failure_reason(e: BaseException) -> str:
    """One line: what stopped the file (the records before it are loaded)."""
    if isinstance(e, RecursionError):
        what = "nested too deeply to parse"
    else:
        what = " ".join(str(e).split()) or type(e).__name__
    return f"file stopped: {what}; the records before it are kept"
