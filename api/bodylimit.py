"""Request bodies are bounded before anything reads them: 413 for a body over MAX_BODY_BYTES.

Pure ASGI, outermost, so it runs before parsing, before authentication and for every route (the MCP HTTP
server passes the same bound to the SDK). A declared `Content-Length` over the bound is refused without
reading a byte; a body sent without one (chunked) is counted as it streams and the read stops at the bound.
Nothing is buffered here: the bytes pass through to the route as they arrive.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1 << 20  # 1 MiB: the largest valid body (1,000 ingest paths, a 20,000-character note) is far smaller
TOO_LARGE = f"request body too large: at most {MAX_BODY_BYTES} bytes"


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the bound (FastAPI re-raises HTTPExceptions from
    body parsing, so the route answers 413 rather than 'error parsing the body')."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail=TOO_LARGE)


def _declared(scope: Scope) -> int | None:
    for k, v in scope.get("headers", ()):
        if k.lower() == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared(scope)
        if declared is not None and declared > self.max_bytes:
            await JSONResponse({"detail": TOO_LARGE}, status_code=413)(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:  # an app that let it escape (not FastAPI's routes, which answer it themselves)
            if not started:
                await JSONResponse({"detail": TOO_LARGE}, status_code=413)(scope, receive, send)
