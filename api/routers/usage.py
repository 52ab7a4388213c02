"""Screen time (scope usage:read): minutes and sessions per app, category or local day, from app_sessions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api.auth import AuditDep, BackendDep, UsageReader
from api.params import RangeDep
from api.schemas import UsageOut
from vault import read

router = APIRouter(tags=["usage"])


@router.get("/usage/summary", response_model=UsageOut, summary="Screen time in a range, grouped")
async def summary(actor: UsageReader, audit: AuditDep, b: BackendDep, r: RangeDep,
            by: Annotated[Literal["app", "category", "day"], Query(description="Group by app, category or local day.")] = "app",
            ) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        rows = b.read(lambda v: read.usage_totals(v, start=r.start, end=r.end, by=by, limit=r.limit))
        out: list[dict[str, Any]] = [{"key": t.key, "minutes": round(t.minutes, 1), "sessions": t.sessions} for t in rows]
        audit.result(None, count=sum(o["sessions"] for o in out))
        return {"by": by, "total_minutes": round(sum(o["minutes"] for o in out), 1), "rows": out}

    return await b.call(audit, work, read=True)
