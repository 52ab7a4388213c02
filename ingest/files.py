"""Input files as sources see them: a name and a way to open the bytes, whether on disk or inside a zip.

Sources never extract an archive to disk (that would write a second plaintext copy of personal data):
a member of a Takeout .zip is streamed straight from the archive. SQLite sources that need a database
open a plain file read-only (immutable) and a zip member with `sqlite3.Connection.deserialize`, in memory.

Bounds (a hostile archive or folder cannot hang a run or exhaust memory):
- a zip member is streamed, never read whole: reading stops with InputTooLarge past MAX_MEMBER_BYTES
  uncompressed, or past MAX_MEMBER_RATIO times its compressed size (members up to RATIO_FREE_BYTES may
  compress any amount); a member whose header already declares more is refused before any byte is
  inflated. A damaged member (bad CRC, broken deflate stream) raises UnreadableInput.
- `read_bytes()`, for sources that read a file whole, stops past MAX_WHOLE_READ_BYTES.
- Both are OSError subclasses, so a source turns them into a Rejected like any other read failure,
  and `ingest.guard` turns one raised mid-stream into a Rejected too; the other files of the run load.
- Folders: symbolic links are not followed (unless `Limits.follow_links`, and then only to regular
  files inside the folder given), FIFOs, sockets and devices are never opened; each one is reported
  with the reason in `Found.not_read`. A path given by the user that is not a regular file or folder
  is refused whole (`refusal`). Plain files are opened with O_NONBLOCK and checked to be regular
  files, so a FIFO swapped in after the check cannot block the run either.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from typing_extensions import Buffer

MAX_MEMBER_BYTES = 4 << 30  # 4 GiB uncompressed per zip member (a decade of Records.json is ~2 GiB)
MAX_MEMBER_RATIO = 100.0  # uncompressed / compressed; real exports deflate 5-20x, a zip bomb ~1000x
RATIO_FREE_BYTES = 1 << 20  # the ratio applies past the first MiB (a small run of spaces compresses 1000x)
MAX_WHOLE_READ_BYTES = 512 << 20  # 512 MiB: the most a source that reads its file whole gets


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds on reading input files; the CLI can raise or lower them for one run."""

    member_bytes: int = MAX_MEMBER_BYTES
    member_ratio: float = MAX_MEMBER_RATIO
    whole_read_bytes: int = MAX_WHOLE_READ_BYTES
    follow_links: bool = False


DEFAULT_LIMITS = Limits()


# What zipfile raises on a damaged archive or member (an unknown compression method or an encrypted member
# included): all become UnreadableInput, an OSError like any other read failure.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, KeyError)


class InputTooLarge(OSError):
    """A file or member is beyond a reading bound; the message says which."""


class UnreadableInput(OSError):
    """A zip member that cannot be inflated (damaged archive)."""


@dataclass(frozen=True, slots=True)
class InputFile:
    path: Path  # the file on disk, or the archive that holds it
    member: str | None = None  # name inside the archive, None for a plain file
    limits: Limits = field(default=DEFAULT_LIMITS, compare=False)

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
        """A binary stream of the file's bytes, bounded as the module says; the caller closes it."""
        if self.member:
            return self._open_member(check_header=True)
        return _open_regular(self.path)

    def _open_member(self, *, check_header: bool) -> BinaryIO:
        if self.member is None:
            raise ValueError(f"{self.path} is a plain file, not a zip member")
        try:
            z = zipfile.ZipFile(self.path)
        except _ZIP_ERRORS as e:
            raise UnreadableInput(f"damaged zip archive: {e}") from None
        try:
            info = z.getinfo(self.member)
            if check_header:
                _check_declared(info, self.limits)
            inner = z.open(info)
        except _ZIP_ERRORS as e:
            z.close()
            raise UnreadableInput(f"damaged zip member: {e}") from None
        except BaseException:
            z.close()
            raise
        return io.BufferedReader(_Member(inner, z, info, self.limits), buffer_size=1 << 16)

    def head(self, n: int = 4096) -> bytes:
        """The first `n` bytes, for detection and file keys: a member beyond the caps still shows its head
        (at most `n` bytes are inflated), a damaged one shows none (reading it whole says why)."""
        if not self.member:
            with self.open() as f:
                return f.read(n)
        try:
            with zipfile.ZipFile(self.path) as z, z.open(self.member) as m:
                return m.read(n)
        except _ZIP_ERRORS:
            return b""

    def read_bytes(self) -> bytes:
        """The whole file; InputTooLarge past `limits.whole_read_bytes`."""
        cap = self.limits.whole_read_bytes
        with self.open() as f:
            data = f.read(cap + 1)
        if len(data) > cap:
            raise InputTooLarge(f"{self.display} is larger than {_size(cap)}, the most read whole")
        return data

    def sqlite_bytes(self) -> bytes:
        return self.read_bytes()


def _size(n: float) -> str:
    return f"{n / (1 << 30):.4g} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.4g} MiB" if n >= 1 << 20 else f"{n:g} bytes"


def _check_declared(info: zipfile.ZipInfo, limits: Limits) -> None:
    if info.file_size > limits.member_bytes:
        raise InputTooLarge(f"zip member declares {_size(info.file_size)}, more than the {_size(limits.member_bytes)} cap")
    if info.file_size > max(RATIO_FREE_BYTES, limits.member_ratio * info.compress_size):
        ratio = info.file_size / max(info.compress_size, 1)
        raise InputTooLarge(f"zip member compressed {ratio:.0f}:1, more than the {limits.member_ratio:g}:1 cap (zip bomb?)")


class _Member(io.RawIOBase):
    """A zip member's bytes, counted as they are inflated: the caps hold whatever the header says."""

    def __init__(self, inner: IO[bytes], archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits) -> None:
        self._inner, self._archive = inner, archive
        self._out = 0
        self._cap = min(limits.member_bytes, max(RATIO_FREE_BYTES, int(limits.member_ratio * info.compress_size)))
        self._limits, self._compressed = limits, info.compress_size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        b = memoryview(buffer).cast("B")
        try:
            data = self._inner.read(len(b))
        except _ZIP_ERRORS as e:
            raise UnreadableInput(f"damaged zip member: {e}") from None
        self._out += len(data)
        if self._out > self._cap:
            if self._out > self._limits.member_bytes:
                raise InputTooLarge(f"zip member inflates past the {_size(self._limits.member_bytes)} cap")
            raise InputTooLarge(
                f"zip member inflates past {self._limits.member_ratio:g} times its compressed "
                f"{_size(self._compressed)} (zip bomb?)"
            )
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
            self._archive.close()
        super().close()


def _open_regular(path: Path) -> BinaryIO:
    """open(path, "rb"), refusing anything that is not a regular file without blocking on it."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(f"{path.name} is {_kind(mode)}, not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"


def refusal(path: Path) -> str | None:
    """Why a path the user gave cannot be ingested (it does not exist, is a FIFO or a device), or None."""
    try:
        mode = path.stat().st_mode  # a link the user named is followed
    except FileNotFoundError:
        return "does not exist"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return f"is {_kind(mode)}, not a file or folder; it was not read"


@dataclass(slots=True)
class Found:
    files: list[InputFile] = field(default_factory=list)
    not_read: dict[str, str] = field(default_factory=dict)  # path (as given, or inside a folder) -> why


def scan(paths: list[Path], limits: Limits = DEFAULT_LIMITS) -> Found:
    """Every file under the given paths -- plain files, folders (recursively, sorted), .zip members -- and
    what was passed over with the reason (links, FIFOs, devices, damaged archives, links in archives)."""
    found = Found()
    for p in paths:
        p = Path(p)
        if p.is_dir():
            inside: list[Path] = []
            _walk(p, limits, inside, found)
            for child in sorted(inside):
                _add(child, limits, found)
            found.not_read = dict(sorted(found.not_read.items()))
        else:
            _add(p, limits, found)
    return found


def expand(paths: list[Path], limits: Limits = DEFAULT_LIMITS) -> Iterator[InputFile]:
    """The files of `scan` (what was passed over is dropped: use scan to report it)."""
    yield from scan(paths, limits).files


def _walk(root: Path, limits: Limits, out: list[Path], found: Found) -> None:
    """The regular files under root (a stack, not recursion: a folder tree may be any depth)."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            found.not_read[str(folder)] = f"folder cannot be listed ({e.strerror or e})"
            continue
        for entry in entries:
            p = Path(entry.path)
            try:
                if entry.is_symlink():
                    why = _link_refusal(p, root, limits)
                    if why is None:
                        out.append(p)
                    else:
                        found.not_read[str(p)] = why
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(p)
                elif entry.is_file(follow_symlinks=False):
                    out.append(p)
                else:
                    found.not_read[str(p)] = f"{_kind(entry.stat(follow_symlinks=False).st_mode)}, not read"
            except OSError as err:
                found.not_read[str(p)] = f"cannot be read ({err.strerror or err})"


def _link_refusal(link: Path, root: Path, limits: Limits) -> str | None:
    if not limits.follow_links:
        return "symbolic link, not followed"
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):
        return "broken or looping symbolic link, not followed"
    if not target.is_relative_to(root.resolve()):
        return "symbolic link pointing outside the folder, not followed"
    if not target.is_file():
        return "symbolic link to something other than a regular file, not followed"
    return None


def _add(p: Path, limits: Limits, found: Found) -> None:
    if p.suffix.lower() == ".zip" and zipfile.is_zipfile(p):
        try:
            with zipfile.ZipFile(p) as z:
                infos = [i for i in z.infolist() if not i.is_dir()]
        except (*_ZIP_ERRORS, OSError) as e:
            found.not_read[str(p)] = f"damaged zip archive ({e})"
            return
        for i in sorted(infos, key=lambda i: i.filename):
            if stat.S_ISLNK(i.external_attr >> 16):
                found.not_read[f"{p}!{i.filename}"] = "symbolic link inside the archive, not followed"
            else:
                found.files.append(InputFile(p, i.filename, limits))
    else:
        found.files.append(InputFile(p, None, limits))
