"""For auditors (scope audit:read): the audit log, its verification, and the privacy report.

None of these carry personal data: audit bodies hold ids, counts, hashes and parameters only, and the
report is built from metadata, the audit log and the privacy ledger (reports/build.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.auth import AuditDep, Auditor, BackendDep
from api.schemas import AuditEventsOut, VerifyOut
from vault import audit as vault_audit

router = APIRouter(tags=["audit"])


@router.get("/audit/events", response_model=AuditEventsOut, summary="Audit log records after a sequence number")
async def events(actor: Auditor, audit: AuditDep, b: BackendDep,
           after_seq: Annotated[int, Query(ge=0, lt=2**63)] = 0,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
           kind: Annotated[str | None, Query(max_length=100)] = None) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        rows = list(vault_audit.events(b.vault, kind=kind, limit=limit, after_seq=after_seq))
        audit.result([r.seq for r in rows])
        return {"events": [{"seq": r.seq, "at": r.at.isoformat(), "kind": r.kind, "body": r.body, "hash": r.hash}
                           for r in rows]}

    return await b.call(audit, work, read=True)


@router.get("/audit/verify", response_model=VerifyOut, summary="Recompute the audit log's hash chain")
async def verify(actor: Auditor, audit: AuditDep, b: BackendDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        v = vault_audit.verify(b.vault)
        audit.result(None, count=v.checked)
        return {"table": v.table, "ok": v.ok, "checked": v.checked, "first_broken": v.first_broken, "reason": v.reason}

    return await b.call(audit, work, read=True)


@router.get("/privacy/report", summary="The privacy report (JSON), as `lifevault report` builds it")
async def privacy_report(actor: Auditor, audit: AuditDep, b: BackendDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        from reports.build import build

        report = build(b.vault)
        audit.result(None, count=1)
        return report

    return await b.call(audit, work, read=True)
