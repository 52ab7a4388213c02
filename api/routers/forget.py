"""Forget (scope memory:write): preview what a selector would delete, then commit it with the preview's digest.

A non-owner token forgets only memories it may see: the selector runs in its view (its visible kinds, and a
query matches the texts it sees, never a hidden place name or address) and its preview shows them redacted
to its grants. Writing never implies reading: a token without memory:read gets ids, kinds and counts, no
texts and no times, and may not select by query (matching texts would read them, one guessed word at a time). The commit carries the preview's digest: if anything changed in
between, the commit is refused with 409 and nothing is deleted. The receipt names counts and the audit
record; the audit log keeps only hashes of the selector and the memory ids.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from api.auth import AuditDep, BackendDep, MemoryWriter
from api.params import iso
from api.schemas import ForgetIn, ForgetPreviewOut, ReceiptOut
from embeddings.forget import ForgetRequest
from embeddings.memories import SENSITIVITY

router = APIRouter(tags=["memory"])


@router.post("/forget", response_model=ForgetPreviewOut | ReceiptOut,
             summary="Preview (commit=false) or delete (commit=true with the preview's digest) memories")
async def forget(body: ForgetIn, actor: MemoryWriter, audit: AuditDep, b: BackendDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        redaction = actor.redaction()
        if body.query and not actor.has("memory:read"):  # matching texts reads them (a count per guessed word)
            raise HTTPException(status_code=403, detail="forgetting by query matches texts, which needs the "
                                                        "memory:read scope; select by ids, kinds, source or time")
        kinds: frozenset[str] | None = frozenset(body.kinds) if body.kinds else None
        if not actor.is_owner:
            visible = frozenset(k for k, s in SENSITIVITY.items() if s in redaction.visible)
            kinds = (kinds or visible) & visible
            if not kinds:
                raise HTTPException(status_code=422, detail="none of these kinds is visible to this token")
        ids = None
        if body.memory_ids:  # ids are 63-bit; larger ones name nothing (-1 keeps "these ids" while matching none)
            ids = tuple(i for i in body.memory_ids if i < 2**63) or (-1,)
        request = ForgetRequest(memory_ids=ids, source=body.source,
                                since=body.since, until=body.until, query=body.query, kinds=kinds)
        with b.lock:
            plan = b.service.forget_preview(request, redaction=redaction)
            if body.commit:
                if body.digest != plan.digest:
                    raise HTTPException(status_code=409, detail="the selection changed or the digest is missing; "
                                                                "preview again and commit with the new digest")
                receipt = b.service.forget_commit(plan, actor=actor.token_id)
                audit.result(None, count=receipt.memories, query=body.query)
                return receipt.to_dict() | {"committed": True}
        reads = actor.has("memory:read")
        preview = [{"id": p.memory_id, "kind": p.kind, "text": p.text if reads else None,
                    "start": iso(p.start) if reads else None} for p in plan.preview]
        audit.result([p.memory_id for p in plan.preview], query=body.query)
        d = plan.to_dict()
        return {"committed": False, "memories": d["memories"], "by_kind": d["by_kind"], "rows": d["rows"],
                "digest": plan.digest, "preview": preview}

    return await b.call(audit, work)
