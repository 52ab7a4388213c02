"""The privacy report as data: built only from the vault's metadata, audit log and privacy ledger.

It never reads personal content: counts, date ranges, sizes, ids, hashes and parameters only.
Audit events are read by shape, so every package's events count without this module knowing them:
  - access events carry `token_id` (and `agent`, `endpoint`, `status`, `returned_ids` or `returned`);
  - token lifecycle events have kinds ending in `token.created` / `token.revoked`;
  - deletions have kinds containing `forget` (with `items`/`count`/`deleted` and `target_kind`);
  - the empirical DP audit has kind `privacy.empirical_audit`.
"""

from __future__ import annotations

import json
import platform
from collections import Counter, defaultdict
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from vault import audit, headanchor, ledger, read
from vault import keys as keymod
from vault import status as vault_status
from vault.load import RAW_TABLES
from vault.store import Vault

DERIVED = ("stays", "trips", "app_sessions", "daily_summaries")
LIBRARIES = ("lifevault", "duckdb", "polars", "cryptography", "dp-accounting", "flwr", "sentence-transformers",
             "faiss-cpu", "fastapi", "torch")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _iso(v: Any) -> str | None:
    return v.isoformat() if hasattr(v, "isoformat") else (None if v is None else str(v))


def inventory(vault: Vault) -> dict[str, Any]:
    tables = vault.tables()
    out: dict[str, Any] = {"tables": [], "by_source": [], "volume_by_month": []}
    sizes = read.table_sizes(vault)
    for t in [*RAW_TABLES, *DERIVED]:
        if t not in tables:
            continue
        span = read.table_span(vault, t)
        out["tables"].append({"table": t, "rows": span.rows, "from": _iso(span.first), "to": _iso(span.last),
                              "estimated_rows_on_disk": sizes.get(t)})
    for t in RAW_TABLES:
        for f in read.format_spans(vault, t):
            out["by_source"].append({"table": t, "format": f.format, "rows": f.rows, "from": _iso(f.first),
                                     "to": _iso(f.last)})
        for v in read.monthly_volume(vault, t):
            out["volume_by_month"].append({"format": v.format, "month": v.month, "rows": v.rows})
    out["memories"] = [  # what the memory layer derived, by kind and by who may see it: counts only
        {"kind": m.kind, "sensitivity": m.sensitivity, "memories": m.memories, "from": _iso(m.first),
         "to": _iso(m.last)}
        for m in read.memory_counts(vault)
    ] if "memories" in tables else []
    info = vault_status.collect(vault)
    out["files"] = info["files"]
    return out


def encryption(vault: Vault) -> dict[str, Any]:
    info = keymod.public_info(vault.home)
    retention = read.meta_value(vault, "retention")
    return {
        "cipher": "AES-256-GCM (DuckDB database, temp files, sealed blobs)",
        "kdf": info["kdf"],
        "keys": info["meta"]["keys"],
        "created_at": info["meta"].get("created_at"),
        "passphrase_changed_at": info["meta"].get("passphrase_changed_at"),
        "last_rotation": info["meta"].get("rotated_at"),
        "retention": json.loads(retention) if retention else "kept until forgotten (no automatic expiry set)",
    }


def _returned(body: dict[str, Any]) -> int:
    if isinstance(body.get("returned_ids"), list):
        return len(body["returned_ids"])
    return int(body.get("returned") or body.get("rows") or 0)


def access(vault: Vault) -> dict[str, Any]:
    per_token: dict[str, dict[str, Any]] = {}
    per_day: Counter[tuple[str, str]] = Counter()
    lifecycle: dict[str, list[dict[str, Any]]] = {"created": [], "revoked": []}
    for row in audit.events(vault):
        b = row.body
        if row.kind.endswith("token.created") or row.kind.endswith("token.revoked"):
            which = "created" if row.kind.endswith("created") else "revoked"
            lifecycle[which].append({"at": _iso(row.at), "token_id": b.get("token_id"), "agent": b.get("agent"),
                                     "scopes": b.get("scopes"), "purpose": b.get("purpose")})
            continue
        token = b.get("token_id")
        if not token or "forget" in row.kind:
            continue
        t = per_token.setdefault(token, {
            "token_id": token, "agent": b.get("agent"), "scopes": set(), "purpose": b.get("purpose"),
            "requests": 0, "rows_returned": 0, "refusals": 0, "endpoints": Counter(),
        })
        t["requests"] += 1
        t["rows_returned"] += _returned(b)
        status = b.get("status")
        if isinstance(status, int) and status >= 400:
            t["refusals"] += 1
        t["endpoints"][b.get("endpoint") or row.kind] += 1
        for s in b.get("scopes_used") or b.get("scopes") or []:
            t["scopes"].add(s)
        t["agent"] = t["agent"] or b.get("agent")
        per_day[(str(t["agent"] or token), row.at.astimezone(UTC).date().isoformat())] += 1
    for c in lifecycle["created"]:
        if c["token_id"] in per_token:
            per_token[c["token_id"]]["purpose"] = per_token[c["token_id"]]["purpose"] or c["purpose"]
            per_token[c["token_id"]]["scopes"] |= set(c["scopes"] or [])
    tokens = [
        t | {"scopes": sorted(t["scopes"]), "endpoints": dict(sorted(t["endpoints"].items()))}
        for t in sorted(per_token.values(), key=lambda t: -t["requests"])
    ]
    return {
        "tokens": tokens,
        "requests_per_agent_per_day": [{"agent": a, "day": d, "requests": n} for (a, d), n in sorted(per_day.items())],
        "tokens_created": lifecycle["created"],
        "tokens_revoked": lifecycle["revoked"],
    }


def privacy(vault: Vault) -> dict[str, Any]:
    releases = []
    for row in ledger.releases(vault):
        b = row.body
        releases.append({"at": _iso(row.at), "seq": row.seq} | {k: b.get(k) for k in (
            "round", "model_id", "mode", "mechanism", "clip_norm", "noise_multiplier", "sampling", "sampling_rate",
            "delta", "epsilon_after", "epsilon_after_rdp", "epsilon_label", "budget_epsilon")})
    refusals = [{"at": _iso(r.at)} | r.body for r in audit.events(vault, kind=ledger.ReleaseRefused.kind)]
    budget = releases[-1]["budget_epsilon"] if releases else ledger.DEFAULT_BUDGET_EPSILON
    spent = ledger.spent(vault)
    return {
        "privacy_unit": "one user (all of one device's data); neighbouring datasets add or remove one user",
        "budget": {"epsilon": budget, "delta": releases[-1]["delta"] if releases else ledger.DEFAULT_BUDGET_DELTA,
                   "spent": spent, "remaining": max(0.0, budget - spent), "renewal": "never (lifetime budget)"},
        "releases": releases,
        "refusals": refusals,
        "epsilon_by_trust_assumption": by_trust_assumption([row.body for row in ledger.releases(vault)]),
    }


def _figure(x: float | None) -> float | str | None:
    return "inf" if x is not None and x == float("inf") else x


def by_trust_assumption(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per trust assumption, each epsilon composed over every release under that assumption
    (federated/trust.py); "inf" where some release gives no guarantee under it. The recorded figure is the
    ledger's own; amplified is shown only where it may be claimed, else why not."""
    from federated import trust

    delta = float(bodies[-1]["delta"]) if bodies else ledger.DEFAULT_BUDGET_DELTA
    per = trust.by_assumption(bodies, delta=delta)
    recorded = float(bodies[-1]["epsilon_after"]) if bodies else 0.0
    rows = [{"assumption": "recorded (the ledger's figure)", "trusting": trust.ASSUMPTIONS["as_declared"],
             "epsilon": recorded}]
    rows += [{"assumption": name.replace("_", "-"), "trusting": trust.ASSUMPTIONS[name], "epsilon": _figure(per[name])}
             for name in ("honest_server", "honest_majority", "device_verifiable")]
    rows.append({"assumption": "amplified (by sampling)",
                 "trusting": "as declared, and that the server sampled secretly with a fixed denominator",
                 "epsilon": _figure(per["amplified"]) if per["amplified"] is not None
                 else f"not claimed: {per['amplified_reason']}"})
    return rows


def deletions(vault: Vault) -> list[dict[str, Any]]:
    out = []
    for row in audit.events(vault):
        if "forget" not in row.kind:
            continue
        b = row.body
        items = b.get("items", b.get("count", b.get("deleted", b.get("memories"))))
        if isinstance(items, list):
            items = len(items)
        out.append({"at": _iso(row.at), "kind": row.kind, "by": b.get("target_kind") or b.get("by"), "items": items})
    return out


def integrity(vault: Vault) -> dict[str, Any]:
    checks = [audit.verify(vault), ledger.verify(vault)]
    cross = ledger.cross_check(vault)  # the ledger against its release anchors in the audit log, both ways
    chains = {c.table: {"ok": c.ok, "records": c.checked, "first_broken": c.first_broken, "reason": c.reason,
                        "head": c.head} for c in checks}
    chains[cross.table] = {"ok": cross.ok, "records": cross.checked, "first_broken": cross.first_broken,
                           "reason": cross.reason, "unanchored": cross.unanchored}
    anchored = headanchor.check(vault)  # both chains against the heads anchored in keys.json
    chains[anchored.table] = {"ok": anchored.ok, "records": anchored.checked, "first_broken": anchored.first_broken,
                              "reason": anchored.reason}
    return {
        "chains": chains,
        "versions": {lib: _version(lib) for lib in LIBRARIES} | {"python": platform.python_version()},
    }


def empirical_audit(vault: Vault) -> dict[str, Any] | None:
    latest = None
    for row in audit.events(vault, kind="privacy.empirical_audit"):
        latest = {"at": _iso(row.at)} | row.body
    return latest


def summary(report: dict[str, Any]) -> list[str]:
    inv, acc, prv, dele, integ = (report[k] for k in ("inventory", "access", "privacy", "deletions", "integrity"))
    raw_rows = sum(t["rows"] for t in inv["tables"] if t["table"] in RAW_TABLES)
    sources = sorted({s["format"] for s in inv["by_source"]})
    requests = sum(t["requests"] for t in acc["tokens"])
    refused = sum(t["refusals"] for t in acc["tokens"])
    b = prv["budget"]
    chains_ok = all(c["ok"] for c in integ["chains"].values())
    lines = [
        f"This vault holds {raw_rows:,} records from {len(sources)} kinds of export, all encrypted on this device.",
        f"{len(acc['tokens'])} agent token(s) made {requests:,} request(s); {refused:,} were refused.",
        f"{len(prv['releases'])} privacy-protected model update(s) left the device, spending epsilon "
        f"{b['spent']:.2f} of a lifetime budget of {b['epsilon']:g} ({b['remaining']:.2f} left); "
        f"{len(prv['refusals'])} update(s) were refused at the budget limit.",
        f"{len(dele)} deletion request(s) were carried out.",
        "The audit log and the privacy ledger are intact." if chains_ok else
        "WARNING: the audit log or the privacy ledger failed verification: see Integrity.",
    ]
    emp = report.get("empirical_audit")
    if emp:
        lines.append(empirical_summary(emp))
    return lines


def empirical_summary(emp: dict[str, Any]) -> str:
    """One plain-language line about the latest empirical privacy audit (`lifevault audit dp`)."""
    upper = emp.get("epsilon_upper_bound")
    when = str(emp.get("at") or "")[:10]
    claim = "no finite epsilon (noise off)" if upper is None else f"epsilon {float(upper):.2f}"
    kind = emp.get("verdict") or ("consistent" if emp.get("consistent", True) else "violation")
    verdict = {
        "consistent": "no leak beyond the claim was found, and the audit could have certified one",
        "violation": "WARNING: the measured leak exceeds the claim, the privacy code is broken",
        "inconclusive": (f"inconclusive: its canaries can certify at most epsilon "
                         f"{float(emp.get('epsilon_certifiable_max') or 0.0):.2f}, so it could not have caught a leak"),
    }.get(str(kind), str(kind))
    return (f"The latest empirical privacy audit ({when}, {emp.get('canaries')} canaries) measured epsilon of at "
            f"least {float(emp.get('epsilon_lower_bound', 0.0)):.2f} with {float(emp.get('confidence', 0.95)):.0%} "
            f"confidence, against the accountant's {claim}: {verdict}.")


def build(vault: Vault) -> dict[str, Any]:
    report: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "inventory": inventory(vault),
        "encryption": encryption(vault),
        "access": access(vault),
        "privacy": privacy(vault),
        "deletions": deletions(vault),
        "integrity": integrity(vault),
        "empirical_audit": empirical_audit(vault),
    }
    report["summary"] = summary(report)
    return report


def group_volume(volume: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for v in volume:
        out[v["format"]][v["month"]] = out[v["format"]].get(v["month"], 0) + v["rows"]
    return dict(out)
