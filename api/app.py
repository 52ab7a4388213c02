"""The agent API: create_app(settings) -> FastAPI. The lifespan opens the vault; nothing is global.

Local-only by construction:
  - ApiSettings refuses a non-loopback host; the guard answers 403 to any Host header other than the bound
    loopback name (DNS rebinding) and to any cross-origin browser request (an Origin that is not the server's
    own, or Sec-Fetch-Site: cross-site). There is no CORS middleware, so no Access-Control-Allow-* headers.
  - no docs UI (it would load scripts from a CDN); the schema is at /v1/openapi.json.
  - a request body over api.bodylimit.MAX_BODY_BYTES gets 413 before it is parsed or the token is checked.
  - errors never echo personal data: validation errors carry location and message only (never the input),
    a user error (VaultError) its one-line message, unexpected errors become `{"detail": "internal error"}`;
    only the exception's type is logged.
Every request made with a token is written to the audit log (api.request) before its response leaves.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.bodylimit import BodyLimit
from api.params import HOME_ZONE
from api.schemas import ERRORS, Health
from api.state import PREFIX, SESSION_FILE, ApiSettings, Backend, RequestAudit
from api.tokens import Actor, TokenError, TokenRefused
from embeddings.records import InvalidMemory, MemoryNotFound, NotEditable
from vault.errors import MemoryCapReached, VaultError

log = logging.getLogger("lifevault.api")
VERSION = "1"


MAX_ERROR_CHARS = 500  # a user-facing error message is one line of at most this many characters


def one_line(text: str) -> str:
    """The first line of a message, at most MAX_ERROR_CHARS long."""
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def _json(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class Guard:
    """Host/Origin checks, then the audit record, around everything (pure ASGI: cheap on the hot path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        backend: Backend = scope["app"].state.backend
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = _refusal(backend, headers)
        if refusal:
            await _json(403, refusal)(scope, receive, send)
            return
        # times sent without an offset are read in the home zone as this caller may derive it (api/params.py);
        # the body is parsed before the auth dependency runs, so the token is looked at here (memory only)
        zone = HOME_ZONE.set(backend.home_zone_for(_caller(backend, headers)))
        try:
            await self._guarded(backend, scope, receive, send)
        finally:
            HOME_ZONE.reset(zone)

    async def _guarded(self, backend: Backend, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def audited_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                info: RequestAudit | None = scope.get("state", {}).get("audit")
                if info is not None and not info.recorded:  # refusals and errors (successes record themselves)
                    try:
                        await anyio.to_thread.run_sync(backend.record_request, info, message["status"])
                    except Exception as e:  # noqa: BLE001 - no audit record, no answer
                        log.error("audit record failed (%s); response withheld", type(e).__name__)
                        await send({"type": "http.response.start", "status": 500,
                                    "headers": [(b"content-type", b"application/json")]})
                        await send({"type": "http.response.body", "body": b'{"detail":"internal error"}'})
                        raise _Withheld() from None
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except _Withheld:
            return
        except Exception as e:  # noqa: BLE001 - never let a traceback (which may quote data) reach a log
            log.error("internal error: %s", type(e).__name__)
            if not started:
                await audited_send({"type": "http.response.start", "status": 500,
                                    "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"detail":"internal error"}'})


class _Withheld(Exception):
    pass


def _caller(backend: Backend, headers: dict[str, str]) -> Actor | None:
    """The bearer token's actor, or None (the auth dependency refuses the request later and says why)."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    try:
        return Actor.of(backend.tokens.verify(value))
    except TokenRefused:
        return None


def _refusal(backend: Backend, headers: dict[str, str]) -> str | None:
    host = headers.get("host", "")
    if host not in backend.allowed_hosts:
        return "host not allowed: lifevault answers only its loopback address"
    origin = headers.get("origin")
    if origin is not None and origin not in backend.origins:
        return "cross-origin requests are refused"
    if headers.get("sec-fetch-site") == "cross-site":
        return "cross-origin requests are refused"
    return None


def _open(settings: ApiSettings, encoder: Any = None) -> Backend:
    from api.tokens import TokenStore
    from embeddings.service import MemoryService
    from vault.store import Vault

    vault = Vault.open(settings.home, settings.passphrase, memory_limit=settings.memory_limit)
    try:
        return Backend(settings, vault, MemoryService(vault, encoder=encoder), TokenStore.load(vault))
    except BaseException:
        vault.close()
        raise


def _warm(service: Any) -> None:
    with contextlib.suppress(Exception):  # e.g. a tampered index: the first request that needs it says so
        service.warm()
    with contextlib.suppress(Exception):  # then the query forward's thread (numpy: no torch is loaded)
        service.serve_queries()


def write_session_secret(home: Path, secret: str, port: int) -> Path:
    """<home>/serve.token, 0600, created fresh: the owner secret for the user's own CLI (see README)."""
    path = home / SESSION_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "port": port, "token": secret}, f)
    return path


def create_app(settings: ApiSettings, *, encoder: Any = None) -> FastAPI:
    """The API for one vault. `encoder` lets tests and benchmarks share a loaded model."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = await anyio.to_thread.run_sync(_open, settings, encoder)
        app.state.backend = backend
        backend.heap.start()  # freed heap back to the system when requests pause (api/heap.py)
        if settings.warm:  # requests that arrive meanwhile wait for it (as they would have loaded it themselves)
            threading.Thread(target=_warm, args=(backend.service,), name="lifevault-warm", daemon=True).start()
        session: Path | None = None
        try:
            if settings.announce:
                backend.vault.announce_port(settings.port)
                session = write_session_secret(settings.home, backend.tokens.mint_session_owner(), settings.port)
            yield
        finally:
            if session is not None:
                session.unlink(missing_ok=True)
            backend.heap.close()
            with backend.lock:
                with contextlib.suppress(Exception):
                    backend.service.close()
                backend.vault.close()

    app = FastAPI(
        title="lifevault agent API", version=VERSION, lifespan=lifespan, docs_url=None, redoc_url=None,
        openapi_url="/v1/openapi.json",
        description="Scoped, audited, local-only access to the user's memory. Authenticate with "
                    "`Authorization: Bearer <token>` (`lifevault token create`).",
    )
    _errors(app)

    @app.get("/v1/health", response_model=Health, tags=["service"], summary="Liveness (no token needed)")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": VERSION}

    from api.routers import audit, calendar, forget, ingest, memory, timeline, tokens, usage

    for module in (memory, timeline, calendar, usage, forget, audit, ingest, tokens):
        app.include_router(module.router, prefix=PREFIX, responses=ERRORS)
    app.add_middleware(BodyLimit)  # inside the guard (which reads no body), before any route parses one
    app.add_middleware(Guard)
    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # never the rejected input: it may be the user's text
        return _json(422, [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                           for e in exc.errors()])

    @app.exception_handler(MemoryNotFound)
    async def not_found(_: Request, exc: MemoryNotFound) -> JSONResponse:
        return _json(404, "no such memory")

    @app.exception_handler(NotEditable)
    async def not_editable(_: Request, exc: NotEditable) -> JSONResponse:
        return _json(409, "only agent-written notes can be edited; use /v1/forget for ingested memories")

    @app.exception_handler(InvalidMemory)
    async def invalid_memory(_: Request, exc: InvalidMemory) -> JSONResponse:
        return _json(422, str(exc))

    @app.exception_handler(TokenError)
    async def token_error(_: Request, exc: TokenError) -> JSONResponse:
        return _json(400, str(exc))

    @app.exception_handler(MemoryCapReached)
    async def memory_cap(_: Request, exc: MemoryCapReached) -> JSONResponse:
        log.warning("request failed: %s", type(exc).__name__)  # the server's state, not the caller's: retry later
        return _json(503, one_line(str(exc)))

    @app.exception_handler(VaultError)
    async def vault_error(_: Request, exc: VaultError) -> JSONResponse:
        # a VaultError's message is the one line written for the user (what happened, what to do); it names
        # only what the caller sent (an owner job's paths) or vault state, never stored data. Logged by type.
        log.warning("request failed: %s", type(exc).__name__)
        return _json(400, one_line(str(exc)) or type(exc).__name__)
