"""Memory: search, context packs, notes (remember, read, edit, delete). All through MemoryService.

Handlers are async and do their vault work and the audit record in one thread hop (Backend.call).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path

from api.auth import AuditDep, BackendDep, MemoryReader, MemoryWriter
from api.schemas import (
    ContextIn,
    ContextOut,
    CreatedOut,
    DeletedOut,
    MemoryOut,
    RememberIn,
    SearchIn,
    SearchOut,
    UpdateIn,
    WrittenOut,
)
from api.state import Backend
from api.tokens import Actor
from embeddings.records import MemoryNotFound, fetch

router = APIRouter(tags=["memory"])
MemoryId = Path(ge=0, lt=2**63, description="A memory id (from search, context or remember).")


def _visible(b: Backend, actor: Actor, memory_id: int) -> None:
    """404 unless this caller may see the memory (a token never learns that hidden data exists)."""
    if not actor.is_owner and memory_id not in fetch(b.vault, [memory_id], actor.redaction()):
        raise MemoryNotFound("no such memory")


@router.post("/search", response_model=SearchOut, summary="Hybrid search over memories, best first")
async def search(body: SearchIn, actor: MemoryReader, audit: AuditDep, b: BackendDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        result = b.service.search(body.query, k=body.k, since=body.since, until=body.until, kinds=body.kinds,
                                  tags=body.tags, mode=body.mode, redaction=actor.redaction(), actor=actor.token_id)
        audit.result([h.memory.memory_id for h in result.hits], query=body.query)
        return {"hits": [h.to_dict(explain=body.explain) for h in result.hits], "understood": list(result.understood),
                "candidates": result.candidates}

    return await b.call(audit, work, read=True)


@router.post("/context", response_model=ContextOut, summary="A token-budgeted, cited context pack for a task")
async def context(body: ContextIn, actor: MemoryReader, audit: AuditDep, b: BackendDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        pack = b.service.context(body.task, token_budget=body.token_budget, since=body.since, until=body.until,
                                 kinds=body.kinds, redaction=actor.redaction(), now=body.now, actor=actor.token_id)
        audit.result([i for s in pack.snippets for i in (s.memory_id, *s.also)], query=body.task)
        return pack.to_dict()

    return await b.call(audit, work, read=True)


@router.post("/memories", response_model=CreatedOut, status_code=201, summary="Write a note (searchable at once)")
async def remember(body: RememberIn, actor: MemoryWriter, audit: AuditDep, b: BackendDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        note = b.service.remember(body.text, occurred_at=body.occurred_at, tags=body.tags, metadata=body.metadata,
                                  source=body.source, actor=actor.token_id)
        audit.result([note.memory_id])
        return {"id": note.memory_id}

    return await b.call(audit, work, status=201)


@router.get("/memories/{memory_id}", response_model=MemoryOut, summary="One memory, redacted to the token")
async def get_memory(actor: MemoryReader, audit: AuditDep, b: BackendDep, memory_id: int = MemoryId) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        record = b.service.get(memory_id, redaction=actor.redaction(), actor=actor.token_id)
        audit.result([memory_id])
        return record.to_dict()

    return await b.call(audit, work, read=True)


@router.patch("/memories/{memory_id}", response_model=MemoryOut | WrittenOut,
              summary="Edit a note (history is kept); without memory:read only its id and version come back")
async def update_memory(body: UpdateIn, actor: MemoryWriter, audit: AuditDep, b: BackendDep,
                        memory_id: int = MemoryId) -> dict[str, Any]:
    given = body.model_dump(exclude_unset=True)
    kwargs: dict[str, Any] = {k: given[k] for k in ("text", "tags", "occurred_at", "metadata") if k in given}

    def work() -> dict[str, Any]:
        _visible(b, actor, memory_id)
        written = b.service.update(memory_id, actor=actor.token_id, **kwargs)
        audit.result([memory_id])
        if not actor.has("memory:read"):  # writing never implies reading
            return {"id": memory_id, "version": written.version}
        return fetch(b.vault, [memory_id], actor.redaction())[memory_id].to_dict()

    return await b.call(audit, work)


@router.delete("/memories/{memory_id}", response_model=DeletedOut,
               summary="Delete one memory (with its history, vector and, for ingested memories, source rows)")
async def delete_memory(actor: MemoryWriter, audit: AuditDep, b: BackendDep,
                        memory_id: int = MemoryId) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        _visible(b, actor, memory_id)
        receipt = b.service.delete(memory_id, actor=actor.token_id)
        audit.result([memory_id])
        return {"deleted": receipt.memories, "receipt": receipt.to_dict() | {"committed": True}}

    return await b.call(audit, work)
