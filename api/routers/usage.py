"""Screen time (scope usage:read): minutes and sessions per app, category or local day, from app_sessions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api.auth import AuditDep, BackendDep, UsageReader
from api.params import RangeDep
from api.schemas import UsageOut

router = APIRouter(tags=["usage"])
_KEY = {
    "app": "coalesce(app_name, package)",
    "category": "coalesce(category, 'Other')",
    "day": "strftime(start_ts + to_minutes(coalesce(utc_offset_min, 0)), '%Y-%m-%d')",
}


@router.get("/usage/summary", response_model=UsageOut, summary="Screen time in a range, grouped")
async def summary(actor: UsageReader, audit: AuditDep, b: BackendDep, r: RangeDep,
            by: Annotated[Literal["app", "category", "day"], Query(description="Group by app, category or local day.")] = "app",
            ) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        rows = b.query(
            f"SELECT {_KEY[by]} AS key, sum(epoch(least(end_ts, ?::TIMESTAMPTZ)) - epoch(greatest(start_ts, ?::TIMESTAMPTZ))) / 60, "
            "count(*) FROM app_sessions WHERE start_ts < ? AND end_ts > ? GROUP BY key "
            f"ORDER BY {'key' if by == 'day' else '2 DESC, key'} LIMIT ?", [r.end, r.start, r.end, r.start, r.limit])
        out = [{"key": str(k), "minutes": round(float(m or 0), 1), "sessions": int(n)} for k, m, n in rows]
        audit.result(None, count=sum(o["sessions"] for o in out))
        return {"by": by, "total_minutes": round(sum(o["minutes"] for o in out), 1), "rows": out}

    return await b.call(audit, work, read=True)
