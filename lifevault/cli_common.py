"""Shared CLI pieces: option types, opening the vault, printing (human text to stderr, --json to stdout).

Nothing heavy is imported here: `--help` and commands that need no vault content start in ~0.1 s. rich is
imported at the first line printed (`err`), the vault (duckdb) when a command opens it.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import click
import typer
from typer.core import TyperCommand, TyperGroup

from lifevault.secrets_input import read_passphrase
from lifevault.settings import Settings

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn

    from vault.keys import Unlocking
    from vault.store import Connecting, Vault

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Vault home (default $LIFEVAULT_HOME or ~/.lifevault).", show_default=False),
]
PassFileOpt = Annotated[
    Path | None,
    typer.Option("--passphrase-file", help="Read the passphrase from this file (else $LIFEVAULT_PASSPHRASE, else prompt)."),
]
RecoveryOpt = Annotated[
    str | None, typer.Option("--recovery-code", help="Unlock with the recovery code instead of the passphrase.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]



_console: list[Console] = []


def console() -> Console:
    """The rich Console on stderr, made at its first use (importing rich costs ~40 ms that `--help` and
    `token list --json` need not pay)."""
    if not _console:
        from rich.console import Console

        _console.append(Console(stderr=True, highlight=False))
    return _console[0]


class _Stderr:
    """`err.print(...)` and friends: the stderr Console's attributes, the Console made at the first use."""

    def __getattr__(self, name: str) -> Any:
        return getattr(console(), name)


err: Console = cast("Console", _Stderr())  # a proxy with every Console attribute


def say(line: str) -> None:
    """One line on stderr as it is: no markup, no highlighting, the terminal wraps it. What status, token list,
    search and context print, so that a short command does not import rich (~50 ms) to print a few lines;
    rich stays for progress bars and spinners. A test that replaced `err` gets the line there."""
    if not isinstance(err, _Stderr):
        err.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells as lines of left-aligned columns two spaces apart (the first row is the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))] if rows else []
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def progress(*columns: str | ProgressColumn, json_out: bool) -> Progress:
    """The progress display of a long command, on stderr and erased when done; off under --json (the run's
    output is the one JSON object) and when stderr is not a terminal (a log gets the summary lines only)."""
    from rich.progress import Progress

    out = console() if isinstance(err, _Stderr) else err  # `err` is where stderr goes (a test may replace it)
    return Progress(*columns, console=out, transient=True, disable=json_out or not out.is_terminal)


def status(message: str, *, json_out: bool) -> contextlib.AbstractContextManager[Any]:
    """A spinner on stderr while waiting (e.g. for a running server's job), under the same rule as progress()."""
    return contextlib.nullcontext() if json_out or not err.is_terminal else err.status(message)


def _unescape(help_text: str) -> str:
    return help_text.replace("\\[", "[")


@contextlib.contextmanager
def _without_rich() -> Iterator[None]:
    """typer escapes an option's `[default: ...]` through typer.rich_utils whenever rich is installed, even
    with rich_markup_mode=None: importing rich_utils (all of rich's markdown, tables and tracebacks) costs
    more than the rest of `--help`. Plain help needs no escape, so typer is told rich is absent meanwhile."""
    import typer.core

    had = typer.core.HAS_RICH
    typer.core.HAS_RICH = False
    try:
        yield
    finally:
        typer.core.HAS_RICH = had


class PlainHelpCommand(TyperCommand):
    """A command whose --help is click's plain help. typer (0.20) escapes the `[` of an option's
    `[default: …]` / `[required]` for rich whenever rich is installed, even with rich_markup_mode=None, where
    click then prints the backslash (`\\[required]`); the escape is undone here."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        inner = ctx.make_formatter()
        with _without_rich():
            super().format_help(ctx, inner)
        formatter.write(_unescape(inner.getvalue()))


class PlainHelpGroup(TyperGroup):
    """A group with PlainHelpCommand's help."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        inner = ctx.make_formatter()
        with _without_rich():
            super().format_help(ctx, inner)
        formatter.write(_unescape(inner.getvalue()))


class App(typer.Typer):
    """The CLI's Typer: plain help (no rich markup, no literal escapes), no completion or pretty tracebacks,
    and every command and group built with the plain-help classes."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", PlainHelpGroup)
        kwargs.setdefault("rich_markup_mode", None)
        kwargs.setdefault("add_completion", False)
        kwargs.setdefault("pretty_exceptions_enable", False)
        super().__init__(**kwargs)

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or PlainHelpCommand, **kwargs)


class LazyChoice(click.Choice):
    """click.Choice whose values are computed when first needed (help or a value to check), so that
    listing them (e.g. every ingest format) costs no import until then."""

    def __init__(self, values: Callable[[], Sequence[str]]) -> None:
        self._values = values
        self._choices: tuple[str, ...] | None = None
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:
        if self._choices is None:
            self._choices = tuple(self._values())
        return self._choices

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        self._choices = tuple(value)


def choice(*values: str) -> click.Choice:
    """An option's fixed set of values: listed in --help, anything else refused with the list (exit 2)."""
    return click.Choice(values)


def settings(home: Path | None) -> Settings:
    return Settings.from_env(home)


def begin_unlock(home: Path | None, passphrase_file: Path | None, recovery_code: str | None = None) -> Unlocking:
    """Read the passphrase (or take the recovery code) and start the vault's Argon2id derivation in a thread
    (the GIL released), so that what the command imports next runs meanwhile; pass it to open_vault."""
    from vault import keys as keymod
    from vault.errors import VaultMissing

    s = settings(home)
    passphrase = None if recovery_code else read_passphrase(passphrase_file)
    if not s.home.is_dir():
        raise VaultMissing(f"vault home {s.home} does not exist (run `lifevault init --home {s.home}` first)")
    return keymod.begin_unlock(s.home, passphrase, recovery_code=recovery_code or None)


def begin_open(home: Path | None, passphrase_file: Path | None) -> tuple[Unlocking, Connecting]:
    """begin_unlock(), then DuckDB's start (connect, lock down, load httpfs) in a thread too: for a command
    that imports its search stack before it opens the vault (search, context), so all three run at once."""
    unlocking = begin_unlock(home, passphrase_file)
    from vault.store import Connecting

    return unlocking, Connecting(settings(home).home)


def open_vault(home: Path | None, passphrase_file: Path | None, recovery_code: str | None = None, *,
               read_only: bool = False, unlocking: Unlocking | None = None,
               connecting: Connecting | None = None) -> Vault:
    """Open the vault (read_only for a command that writes nothing: see Vault.open). The unlock starts here
    unless the command started it earlier (begin_unlock), and DuckDB's start likewise (connecting)."""
    if unlocking is None:
        unlocking = begin_unlock(home, passphrase_file, recovery_code)
    from vault.store import Vault

    vault = Vault.open(settings(home).home, unlocking=unlocking, read_only=read_only, connecting=connecting)
    say_made_private(vault.home, vault.home_mode_was)
    return vault


def say_made_private(home: Path, was: int | None) -> None:
    """One line on stderr when opening the vault changed its home's mode to 0700."""
    if was is not None:
        err.print(f"The vault home {home} had mode {was:04o}; made it 0700 (only you can list or enter it)",
                  soft_wrap=True)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()
