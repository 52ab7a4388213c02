"""Owner jobs run in the server process (it owns the vault): ingest exports, index memories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException

from api.auth import AuditDep, BackendDep, Owner
from api.schemas import IndexIn, IngestIn, IngestOut

router = APIRouter(tags=["owner"])


@router.post("/ingest", response_model=IngestOut, summary="Ingest export files on this device (owner)")
async def ingest(body: IngestIn, actor: Owner, audit: AuditDep, b: BackendDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        from ingest.detect import formats, known_formats
        from ingest.pipeline import StrictFailure, run

        paths = [Path(p) for p in body.paths]
        if not all(p.is_absolute() for p in paths):
            raise HTTPException(status_code=422, detail="paths must be absolute")
        if body.format is not None and body.format not in formats():
            raise HTTPException(status_code=422, detail=[{
                "loc": ["body", "format"], "msg": f"unknown format (one of {known_formats()})", "type": "value_error"}])
        with b.lock:
            try:
                report, failure = run(b.vault, paths, kind=body.kind, fmt=body.format, strict=body.strict), None
            except StrictFailure as e:
                report, failure = e.report, e
            b.refresh_home_zones()  # new visits or events may say the user lives elsewhere now
        audit.result(None, count=report.loaded)
        return {"report": report.to_json(), "strict_failed": failure is not None,
                "message": str(failure) if failure is not None else None}

    return await b.call(audit, work)


@router.post("/index", summary="Turn ingested data into memories and embed what changed (owner)")
async def index(body: IndexIn, actor: Owner, audit: AuditDep, b: BackendDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        with b.lock:
            report = b.service.index(rebuild=body.rebuild, actor=actor.token_id)
        audit.result(None, count=report.embedded)
        return report.to_dict()

    return await b.call(audit, work)
