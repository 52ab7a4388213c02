"""Settings, built once by the CLI (or create_app) from flags and environment; never at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "~/.lifevault"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    home: Path

    @classmethod
    def from_env(cls, home: Path | None = None) -> Settings:
        raw = home or os.environ.get("LIFEVAULT_HOME") or DEFAULT_HOME
        return cls(home=Path(raw).expanduser().absolute())
