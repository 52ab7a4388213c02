"""Input files as sources see them: a name and a way to open the bytes, whether on disk or inside a zip.

Sources never extract an archive to disk (that would write a second plaintext copy of personal data):
a member of a Takeout .zip is read straight from the archive. SQLite sources that need a database
use `sqlite_bytes()` and `sqlite3.Connection.deserialize`, which stays in memory.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True, slots=True)
class InputFile:
    path: Path  # the file on disk, or the archive that holds it
    member: str | None = None  # name inside the archive, None for a plain file

    @property
    def name(self) -> str:
        """The file's own name (what quarantine and load records keep)."""
        return Path(self.member).name if self.member else self.path.name

    @property
    def display(self) -> str:
        return f"{self.path.name}!{self.member}" if self.member else self.path.name

    @property
    def inner_path(self) -> str:
        """Path inside the archive (or the file name) -- for detection by folder, e.g. 'Semantic Location History/'."""
        return self.member if self.member else str(self.path)

    @property
    def size(self) -> int:
        if self.member:
            with zipfile.ZipFile(self.path) as z:
                return z.getinfo(self.member).file_size
        return self.path.stat().st_size

    def open(self) -> BinaryIO:
        """A binary stream of the file's bytes; the caller closes it."""
        if self.member:
            z = zipfile.ZipFile(self.path)
            stream = z.open(self.member)
            stream._lifevault_zip = z  # type: ignore[attr-defined]  # keep the archive alive
            return stream  # type: ignore[return-value]
        return open(self.path, "rb")

    def head(self, n: int = 4096) -> bytes:
        with self.open() as f:
            return f.read(n)

    def read_bytes(self) -> bytes:
        with self.open() as f:
            return f.read()

    def sqlite_bytes(self) -> bytes:
        return self.read_bytes()


def expand(paths: list[Path]) -> Iterator[InputFile]:
    """Every file under the given paths: plain files, folders (recursively, sorted) and .zip members."""
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for child in sorted(x for x in p.rglob("*") if x.is_file()):
                yield from expand([child])
        elif p.suffix.lower() == ".zip" and zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                members = sorted(i.filename for i in z.infolist() if not i.is_dir())
            for m in members:
                yield InputFile(p, m)
        else:
            yield InputFile(p)
