"""Authorization as dependencies: bearer capability token -> Actor, scope check, rate limit.

    AgentDep = Annotated[Actor, Depends(require_scope("memory:read"))]

    @router.post("/search")
    def search(body: SearchIn, actor: AgentDep, audit: AuditDep, b: BackendDep) -> SearchOut: ...

Order: no/malformed/unknown token -> 401 (not audited: nobody to attribute it to); revoked or expired ->
401 (audited against that token); over the rate limit -> 429; out of scope -> 403 (both audited). Tokens are
accepted only in the Authorization header, never in a query string (URLs end up in histories and logs).
The Host and Origin checks (DNS rebinding, cross-origin browsers) are in app.py's guard middleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.state import PREFIX, Backend, RequestAudit
from api.tokens import SCOPES, Actor, TokenRefused

bearer = HTTPBearer(auto_error=False, description="A capability token from `lifevault token create`.")


async def get_backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


BackendDep = Annotated[Backend, Depends(get_backend)]
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status_code=401, detail=reason, headers={"WWW-Authenticate": "Bearer"})


def _audit(request: Request, actor: Actor, scope: str) -> RequestAudit:
    path = getattr(request.scope.get("route"), "path", None) or "?"
    if not path.startswith(PREFIX):  # routers are included under /v1; their routes keep their own paths
        path = PREFIX + path
    via = "mcp" if request.headers.get("x-lifevault-via") == "mcp" else "http"
    return RequestAudit(actor=actor, scope=scope, endpoint=f"{request.method} {path}", via=via)


def require_scope(scope: str) -> Callable[..., Awaitable[Actor]]:
    """A dependency that admits callers whose token grants `scope` (owner grants every scope). Async: it
    touches only memory (tokens are cached), so it costs no thread hop."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope}")

    async def dependency(request: Request, b: BackendDep, credentials: CredentialsDep) -> Actor:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _unauthorized("a bearer token is required")
        try:
            token = b.tokens.verify(credentials.credentials)
        except TokenRefused as e:
            if e.token is not None:  # a real token, revoked or expired: the refusal is on its record
                request.state.audit = _audit(request, Actor.of(e.token), scope)
            raise _unauthorized(f"{e.reason}; create a new one with `lifevault token create`") from None
        actor = Actor.of(token)
        request.state.audit = _audit(request, actor, scope)
        wait = b.limiter.allow(token.token_id, token.rate_per_minute)
        if wait > 0:
            raise HTTPException(status_code=429, detail="rate limit exceeded for this token",
                                headers={"Retry-After": str(max(1, round(wait)))})
        if not actor.has(scope):
            raise HTTPException(status_code=403, detail=f"this token lacks the {scope} scope")
        return actor

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


async def get_audit(request: Request) -> RequestAudit:
    audit: RequestAudit = request.state.audit
    return audit


AuditDep = Annotated[RequestAudit, Depends(get_audit)]
MemoryReader = Annotated[Actor, Depends(require_scope("memory:read"))]
MemoryWriter = Annotated[Actor, Depends(require_scope("memory:write"))]
LocationReader = Annotated[Actor, Depends(require_scope("location:read"))]
CalendarReader = Annotated[Actor, Depends(require_scope("calendar:read"))]
UsageReader = Annotated[Actor, Depends(require_scope("usage:read"))]
Auditor = Annotated[Actor, Depends(require_scope("audit:read"))]
Owner = Annotated[Actor, Depends(require_scope("owner"))]
