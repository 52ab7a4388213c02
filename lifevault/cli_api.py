"""API commands: serve, token create|list|revoke, mcp; and forwarding jobs to a running server.

While `lifevault serve` runs it owns the vault (DuckDB allows one writer). Commands that need the vault
call `forward_if_served(home)` first: when a server holds the vault they send the job to it over loopback
with the owner secret from <home>/serve.token (see api/client.py) instead of failing on the lock.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lifevault.cli_common import (
    App,
    HomeOpt,
    JsonOpt,
    LazyChoice,
    PassFileOpt,
    columns,
    emit_json,
    err,
    open_vault,
    say,
    say_made_private,
    settings,
)
from lifevault.secrets_input import read_passphrase

if TYPE_CHECKING:
    from api.client import Running

HostOpt = Annotated[str, typer.Option("--host", help="Loopback address to bind (127.0.0.1, localhost or ::1).")]
PortOpt = Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")]


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("mcp")(mcp)
    token_app = App(help="Capability tokens for agents: create, list, revoke.", no_args_is_help=True)
    app.add_typer(token_app, name="token")
    token_app.command("create")(token_create)
    token_app.command("list")(token_list)
    token_app.command("revoke")(token_revoke)


def forward_if_served(home: Path | None) -> Running | None:
    """The running server owning this vault (with the owner secret), or None: then open the vault yourself."""
    from api.client import running_server

    return running_server(settings(home).home)


def _api_settings(home: Path | None, passphrase_file: Path | None, host: str, port: int, *, announce: bool) -> Any:
    from api.state import ApiSettings

    s = settings(home)
    return ApiSettings(home=s.home, passphrase=read_passphrase(passphrase_file), host=host, port=port,
                       announce=announce)


def _check_port(host: str, port: int) -> None:
    """Fail before the vault is opened when the port is taken (uvicorn would only notice after startup)."""
    import socket

    from vault.errors import VaultError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        try:
            s.bind((host, port))
        except OSError:
            raise VaultError(f"{host}:{port} is already in use; pick another --port") from None


def serve(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8765,
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Serve the agent API (and nothing else) on loopback; the server owns the vault until you stop it.

    Access logs are off (URLs could carry personal data); errors are logged by type only.

    Example: lifevault serve --port 8765
    """
    import uvicorn

    from api.app import create_app

    if forward_if_served(home) is not None:
        from vault.errors import VaultLocked

        raise VaultLocked("a lifevault server already owns this vault; stop it first")
    api_settings = _api_settings(home, passphrase_file, host, port, announce=True)  # refuses a non-loopback host
    _check_port(host, port)
    if api_settings.home.is_dir():  # the server opens the vault later, in its lifespan: say it here
        from vault.store import make_private

        say_made_private(api_settings.home, make_private(api_settings.home))
    app = create_app(api_settings)
    err.print(f"Serving {api_settings.home} on http://{host}:{port}/v1 (OpenAPI: /v1/openapi.json); Ctrl-C stops")
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning", server_header=False)
    uvicorn.Server(config).run()


def mcp(
    http: Annotated[bool, typer.Option("--http", help="Streamable HTTP on loopback instead of stdio.")] = False,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8766,
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Run the MCP server (tools: search, context, remember, timeline, places, calendar, usage, forget).

    stdio takes the agent's token from $LIFEVAULT_TOKEN; over HTTP each request sends
    `Authorization: Bearer <token>`. Calls go to the running `lifevault serve`, else to the vault directly.

    Example: LIFEVAULT_TOKEN=lv_... lifevault mcp
    """
    import anyio

    from api import mcp_server
    from api.app import create_app
    from api.state import LOOPBACK
    from vault.errors import VaultError

    if host not in LOOPBACK:
        raise VaultError(f"--host {host} is not a loopback address; lifevault serves 127.0.0.1 only")
    token = os.environ.get("LIFEVAULT_TOKEN")
    if not http and not token:
        raise typer.BadParameter("set LIFEVAULT_TOKEN to the agent's token (`lifevault token create`)")
    running = forward_if_served(home)
    app = None
    if running is None:
        app = create_app(_api_settings(home, passphrase_file, "127.0.0.1", port + 1, announce=False))
    url = running.url if running is not None else None
    if http:
        err.print(f"MCP (streamable HTTP) on http://{host}:{port}/mcp; Ctrl-C stops")
        anyio.run(lambda: mcp_server.serve_http(url, app, host=host, port=port))
        return
    anyio.run(lambda: mcp_server.serve_stdio(url, app, token))


def _print_tokens(tokens: list[dict[str, Any]]) -> None:
    rows = [["id", "agent", "scopes", "location", "purpose", "expires", "status"]]
    rows += [[t["token_id"], t["agent"], " ".join(t["scopes"]), t["location"], t.get("purpose") or "",
              (t.get("expires_at") or "never")[:19], t["status"]] for t in tokens]
    for line in columns(rows):
        say(line)


def _precisions() -> tuple[str, ...]:
    from api.tokens import PRECISIONS

    return PRECISIONS


def token_create(
    agent: Annotated[str, typer.Option("--agent", help="Who gets the token (shown in the audit log and report).")],
    scope: Annotated[list[str], typer.Option("--scope", help="memory:read, memory:write, location:read, "
                                             "calendar:read, usage:read, audit:read or owner; repeatable.")],
    location: Annotated[str | None, typer.Option("--location", help="Location precision: coarse is ~1 km, places "
                                                 "by type (default: coarse with location:read, else none).",
                                                 click_type=LazyChoice(_precisions), show_default=False)] = None,
    ttl: Annotated[str, typer.Option("--ttl", help="Lifetime, e.g. 30d, 12h, never.")] = "30d",
    purpose: Annotated[str | None, typer.Option("--purpose", help="Why the agent needs it (for the report).")] = None,
    rate: Annotated[int, typer.Option("--rate", min=1, help="Requests per minute.")] = 600,
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a capability token; the secret is shown once (stored only as a hash).

    Example: lifevault token create --agent phone-assistant --scope memory:read --scope calendar:read --location coarse --ttl 30d
    """
    from api.tokens import TokenStore, parse_ttl

    loc = location or ("coarse" if "location:read" in scope else "none")
    if "location:read" in scope and loc == "none":
        raise typer.BadParameter("--scope location:read needs --location coarse or precise", param_hint="--location")
    running = forward_if_served(home)
    if running is not None:
        out = running.request("POST", "/v1/tokens", json_body={
            "agent": agent, "scopes": scope, "location": loc, "ttl": ttl, "purpose": purpose, "rate_per_minute": rate})
    else:
        lifetime = parse_ttl(ttl)
        with open_vault(home, passphrase_file) as vault:
            issued = TokenStore.load(vault).create(agent=agent, scopes=scope, location=loc, ttl=lifetime,
                                                   purpose=purpose, rate_per_minute=rate)
        out = issued.token.public() | {"token": issued.secret}
    if json_out:
        emit_json(out)
        return
    err.print(f"Token {out['token_id']} for {out['agent']} ({' '.join(out['scopes'])}, location {out['location']}, "
              f"expires {out['expires_at'] or 'never'}). The secret is shown once:")
    typer.echo(out["token"])


def token_list(
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List tokens (ids, agents, scopes, expiry, status; never the secrets).

    Example: lifevault token list --json
    """
    running = forward_if_served(home)
    if running is not None:
        tokens = running.request("GET", "/v1/tokens")["tokens"]
    else:
        with open_vault(home, passphrase_file, read_only=True) as vault:  # duckdb imported during the KDF
            from api.tokens import TokenStore

            tokens = [t.public() for t in TokenStore.load(vault).list()]
    if json_out:
        emit_json({"tokens": tokens})
        return
    _print_tokens(tokens)


def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (from `lifevault token list`).")],
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Revoke a token; it is refused from the next request on.

    Example: lifevault token revoke 3f2a9c1b7e20
    """
    from api.tokens import TokenStore

    running = forward_if_served(home)
    if running is not None:
        out = running.request("DELETE", f"/v1/tokens/{token_id}")
    else:
        with open_vault(home, passphrase_file) as vault:
            out = TokenStore.load(vault).revoke(token_id).public()
    if json_out:
        emit_json(out)
        return
    err.print(f"Token {out['token_id']} ({out['agent']}) revoked")


def forward_ingest(home: Path | None, paths: list[Path], *, kind: str | None, fmt: str | None, strict: bool,
                   json_out: bool) -> bool:
    """`lifevault ingest` while a server owns the vault: run the job in the server. False: no server."""
    running = forward_if_served(home)
    if running is None:
        return False
    body = {"paths": [str(p.expanduser().absolute()) for p in paths], "kind": kind, "format": fmt, "strict": strict}
    with err.status(f"ingesting in the running server ({running.url})"):
        out = running.request("POST", "/v1/ingest", json_body=body, timeout=None)
    r = out["report"]
    err.print(f"load {r.get('load_id')}: {r.get('loaded', 0):,} loaded, {r.get('duplicates', 0):,} duplicates, "
              f"{r.get('quarantined', 0):,} quarantined ({r.get('seconds', 0):.2f} s, in the server)", soft_wrap=True)
    if json_out:
        emit_json(r)
    if out["strict_failed"]:
        from ingest.pipeline import StrictFailure

        raise typer.Exit(StrictFailure.exit_code)
    return True
