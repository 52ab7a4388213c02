"""Token management (owner): create (the secret is returned once), list, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path

from api.auth import AuditDep, BackendDep, Owner
from api.schemas import IssuedOut, TokenIn, TokenOut, TokensOut
from api.tokens import parse_ttl

router = APIRouter(tags=["owner"])


@router.post("/tokens", response_model=IssuedOut, status_code=201, summary="Create a capability token (owner)")
async def create(body: TokenIn, actor: Owner, audit: AuditDep, b: BackendDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        location = body.location or ("coarse" if "location:read" in body.scopes else "none")
        with b.lock:
            issued = b.tokens.create(agent=body.agent, scopes=body.scopes, location=location, ttl=parse_ttl(body.ttl),
                                     purpose=body.purpose, rate_per_minute=body.rate_per_minute, actor=actor.token_id)
        audit.result(None, count=1)
        return issued.token.public() | {"token": issued.secret}

    return await b.call(audit, work, status=201)


@router.get("/tokens", response_model=TokensOut, summary="Every token (never the secrets) (owner)")
async def list_tokens(actor: Owner, audit: AuditDep, b: BackendDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        tokens = b.tokens.list()
        audit.result(None, count=len(tokens))
        return {"tokens": [t.public() for t in tokens]}

    return await b.call(audit, work)


@router.delete("/tokens/{token_id}", response_model=TokenOut, summary="Revoke a token at once (owner)")
async def revoke(actor: Owner, audit: AuditDep, b: BackendDep,
           token_id: Annotated[str, Path(pattern="^[0-9a-f]{12}$")]) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        if b.tokens.get(token_id) is None:
            raise HTTPException(status_code=404, detail="no such token")
        with b.lock:
            token = b.tokens.revoke(token_id, actor=actor.token_id)
        audit.result(None, count=1)
        return token.public()

    return await b.call(audit, work)
