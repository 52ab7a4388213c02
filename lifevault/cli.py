"""The one `lifevault` command. Each sub-command parses, calls the library, prints a summary.

User errors (VaultError and friends) end in one line on stderr and a non-zero exit code, never a
traceback; set LIFEVAULT_DEBUG=1 to see tracebacks of unexpected errors.
"""

from __future__ import annotations

import os
import sys
import warnings

import click

from lifevault import cli_api, cli_federate, cli_ingest, cli_memory, cli_report, cli_vault
from lifevault.cli_common import App
from lifevault.demo import demo

app = App(
    name="lifevault",
    help="lifevault: your phone's personal data, encrypted on the device, for your agent.",
    no_args_is_help=True,
)
cli_vault.register(app)
cli_ingest.register(app)
cli_report.register(app)
cli_api.register(app)
cli_memory.register(app)
cli_federate.register(app)
app.command("demo")(demo)


def _only(name: str | None) -> App:
    """The app with just the command (or group) `name`, when it names one: typer builds a click command for every
    registered function (their signatures and type hints, ~30 ms for ~25 commands) though only one runs. The
    no-op callback keeps it a group, so `lifevault NAME ...` parses and reads as with the whole app."""
    commands = [c for c in app.registered_commands if name is not None and c.name == name]
    groups = [g for g in app.registered_groups if name is not None and g.name == name]
    if not commands and not groups:
        return app  # --help, no command or an unknown one: the whole app says what there is
    one = App(name=app.info.name, help=app.info.help, no_args_is_help=True)
    one.registered_commands, one.registered_groups = commands, groups
    one.callback()(_group)
    return one


def _group() -> None:
    """lifevault: your phone's personal data, encrypted on the device, for your agent."""


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)
    if not os.environ.get("LIFEVAULT_DEBUG"):
        # libraries' warnings (e.g. icalendar guessing a TZID) are not the user's problem and clutter the report
        warnings.simplefilter("ignore")
    args = sys.argv[1:] if argv is None else argv
    try:
        rv = _only(args[0] if args else None)(args=args, prog_name="lifevault", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        print("lifevault: interrupted; nothing was changed by the unfinished step", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place that turns errors into one line
        from vault.errors import VaultError

        if isinstance(e, VaultError):
            print(f"lifevault: {e}", file=sys.stderr)
            return e.exit_code
        if os.environ.get("LIFEVAULT_DEBUG"):
            raise
        # Never print the message of an unexpected error: it could quote personal data.
        print(
            f"lifevault: internal error ({type(e).__name__}); nothing was lost. "
            "Re-run with LIFEVAULT_DEBUG=1 for details and report it.",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
