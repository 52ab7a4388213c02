"""Which source reads a file: sniff its name and first bytes, or take the user's --format / --kind."""

from __future__ import annotations

from functools import cache
from types import ModuleType

from ingest.files import InputFile
from vault.errors import VaultError

SOURCE_MODULES = (
    "ingest.sources.location.google_records",
    "ingest.sources.location.google_semantic",
    "ingest.sources.location.google_timeline",
    "ingest.sources.location.gpx",
    "ingest.sources.calendar.ics",
    "ingest.sources.usage.android_events",
    "ingest.sources.usage.wellbeing_db",
    "ingest.sources.usage.takeout_activity",
    "ingest.sources.usage.knowledgec",
)
KINDS = ("location", "calendar", "usage")


class UnknownFormat(VaultError, ValueError):
    """--format names no source (a user error: one line, never an internal error)."""


@cache
def sources() -> tuple[ModuleType, ...]:
    """Every source module; a missing one is a bug, so the import error propagates."""
    import importlib

    return tuple(importlib.import_module(m) for m in SOURCE_MODULES)


def formats() -> dict[str, ModuleType]:
    """Every name --format accepts (the module's FORMAT and its file name) -> module."""
    out: dict[str, ModuleType] = {}
    for mod in sources():
        out[mod.FORMAT] = mod
        out[mod.__name__.rsplit(".", 1)[1]] = mod
        for alias in getattr(mod, "FORMATS", ()):
            out[alias] = mod
    return out


def known_formats() -> str:
    """The formats --format accepts, for messages: each source's FORMAT, sorted."""
    return ", ".join(sorted(m.FORMAT for m in sources()))


def pick(f: InputFile, *, kind: str | None = None, fmt: str | None = None) -> ModuleType | None:
    """The source for this file, or None when no source recognises it."""
    if fmt:
        mods = formats()
        if fmt not in mods:
            raise UnknownFormat(f"unknown --format {fmt!r}; known: {known_formats()}")
        return mods[fmt]
    for mod in sources():
        if kind and mod.KIND != kind:
            continue
        try:
            if mod.detect(f):
                return mod
        except (OSError, ValueError, UnicodeDecodeError):
            continue
    return None
