"""Talking to a running `lifevault serve` over loopback (the CLI's job forwarding, the MCP bridge).

`lifevault serve` owns the vault while it runs: its lock file (<home>/vault.lock) names its pid and port,
and it writes <home>/serve.token (mode 0600, inside the 0700 vault home) holding an owner secret that
exists only in that server's memory and dies with it. Whoever can read that file is the user (or root),
who could equally read the server's memory; it is removed when the server stops, and a stale file from a
crash is useless (the next server mints a new secret).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vault.errors import VaultError
from vault.lockfile import read_lock_info  # not vault.store: asking costs no duckdb import

if TYPE_CHECKING:  # httpx and api.state (the whole server's state) are imported only when a server runs
    import httpx


class ServerError(VaultError):
    """The running server refused or failed a forwarded job (one line, from the server's answer)."""


@dataclass(frozen=True, slots=True)
class Running:
    url: str
    token: str = ""

    def request(self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None,
                timeout: float | None = 60.0, token: str | None = None) -> Any:
        import httpx

        headers = {"Authorization": f"Bearer {token or self.token}"}
        try:
            r = httpx.request(method, self.url + path, json=json_body, params=params, headers=headers, timeout=timeout)
        except httpx.HTTPError as e:
            raise ServerError(f"the lifevault server at {self.url} did not answer ({type(e).__name__}); "
                              "is `lifevault serve` still running?") from None
        if r.status_code >= 500:
            raise ServerError(f"the lifevault server failed the job ({r.status_code}: {detail(r)}); nothing was "
                              "lost, see the server's output")
        if r.status_code >= 400:  # the server's one-line message, as the job would have said it here
            raise ServerError(f"{detail(r)} (refused by the running server: {r.status_code})")
        return r.json()


def detail(r: httpx.Response) -> str:
    """The server's message on one line (validation errors as `field: message; ...`)."""
    try:
        d = r.json().get("detail")
    except (ValueError, AttributeError):
        return r.reason_phrase
    if isinstance(d, list):  # validation errors: locations and messages, never inputs
        text = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', []) if p != 'body')}: {e.get('msg', '')}"
                         for e in d if isinstance(e, dict))
    else:
        text = str(d) if d is not None else r.reason_phrase
    return " ".join(text.split()) or r.reason_phrase


def running_server(home: Path) -> Running | None:
    """The server that owns this vault, with its owner secret, or None when no server holds the vault."""
    info = read_lock_info(home)
    if not info or not info.get("port"):
        return None
    from api.state import SESSION_FILE

    url = f"http://127.0.0.1:{int(info['port'])}"
    try:
        session = json.loads((Path(home) / SESSION_FILE).read_text())
    except (OSError, ValueError):
        raise ServerError(f"`lifevault serve` (pid {info.get('pid')}) owns the vault but {SESSION_FILE} is "
                          "unreadable; restart the server") from None
    if session.get("pid") != info.get("pid") or session.get("port") != info.get("port"):
        raise ServerError(f"{SESSION_FILE} does not belong to the running server; restart `lifevault serve`")
    return Running(url=url, token=str(session["token"]))
