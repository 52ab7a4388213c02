"""Memory commands: index, search, context, remember, forget (thin: parse, call MemoryService, print)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lifevault.cli_common import (
    HomeOpt,
    JsonOpt,
    LazyChoice,
    PassFileOpt,
    begin_open,
    choice,
    emit_json,
    err,
    open_vault,
    progress,
    say,
    status,
)

if TYPE_CHECKING:
    from embeddings.forget import ForgetRequest

KINDS = "visit, event, usage, trip, note"
SEARCH_MODES = ("hybrid", "dense", "lexical")


def _memory_kinds() -> tuple[str, ...]:
    from embeddings.records import KINDS as known

    return known


SinceOpt = Annotated[str | None, typer.Option("--since", help="Only memories from this date/time on (ISO 8601).")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Only memories before this date/time (ISO 8601).")]
KindOpt = Annotated[list[str] | None, typer.Option("--kind", help="Only these kinds; repeatable.",
                                                   click_type=LazyChoice(_memory_kinds))]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="Only memories carrying this tag; repeatable.")]


def register(app: typer.Typer) -> None:
    app.command("index")(index)
    app.command("search")(search)
    app.command("context")(context)
    app.command("remember")(remember)
    app.command("forget")(forget)


def _when(value: str | None, option: str) -> datetime | None:
    """ISO date or date-time; without a zone it is local time."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (use 2025-03-04 or 2025-03-04T14:30)", param_hint=option) from None
    return at if at.tzinfo is not None else at.astimezone()


def _body(**fields: Any) -> dict[str, Any]:
    """A JSON body for a job sent to the running server: datetimes as ISO 8601, unset (None) fields left out."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items() if v is not None}


def _check_kinds(kinds: list[str] | None) -> list[str] | None:
    from embeddings.records import KINDS as known

    for k in kinds or ():
        if k not in known:
            raise typer.BadParameter(f"unknown kind {k!r} (one of {KINDS})", param_hint="--kind")
    return kinds or None


def index(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-embed every memory and rebuild the index.")] = False,
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Turn ingested data into memories, embed what is new or changed, and seal the vector index.

    Example: lifevault index --rebuild
    """
    from embeddings.service import MemoryService
    from lifevault.cli_api import forward_if_served

    running = forward_if_served(home)  # a running `lifevault serve` owns the vault: the job runs there
    if running is not None:
        with status(f"indexing in the running server ({running.url})", json_out=json_out):
            out = running.request("POST", "/v1/index", json_body={"rebuild": rebuild}, timeout=None)
        _print_index(out, " (in the server)", json_out)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    with open_vault(home, passphrase_file) as vault:
        svc = MemoryService(vault)
        columns = (TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with progress(*columns, json_out=json_out) as bar:
            task = bar.add_task("embedding", total=None)
            report = svc.index(rebuild=rebuild, progress=lambda done, total: bar.update(task, completed=done, total=total))
        svc.close()
    _print_index(report.to_dict(), "", json_out)


def _print_index(r: dict[str, Any], where: str, json_out: bool) -> None:
    """An IndexReport as a dict (`IndexReport.to_dict`, which is also what `POST /v1/index` answers)."""
    err.print(f"Memories: {r['added']} added, {r['changed']} changed, {r['removed']} removed; "
              f"embedded {r['embedded']}; index holds {r['vectors']} vectors ({r['index_kind']}, "
              f"{r['model']} {r['model_version']}, {r['dtype']}) in {r['seconds']:.1f} s{where}", soft_wrap=True)
    if json_out:
        emit_json(r)


def search(
    query: Annotated[str, typer.Argument(help="What to look for; time phrases like 'last month' become filters.")],
    k: Annotated[int, typer.Option("--k", min=1, max=200, help="How many hits.")] = 10,
    since: SinceOpt = None,
    until: UntilOpt = None,
    kind: KindOpt = None,
    tag: TagOpt = None,
    explain: Annotated[bool, typer.Option("--explain", help="Show each signal's rank and score.")] = False,
    mode: Annotated[str, typer.Option("--mode", help="Rankings used: hybrid fuses lexical (BM25) and dense.",
                                      click_type=choice(*SEARCH_MODES))] = "hybrid",
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Search memories: lexical (BM25) and semantic rankings fused, filters applied first.

    Example: lifevault search "when did I last see Dr. Lee?" --k 5 --explain
    """
    from lifevault.cli_api import forward_if_served

    if mode not in ("hybrid", "dense", "lexical"):
        raise typer.BadParameter("mode must be hybrid, dense or lexical", param_hint="--mode")
    when = {"since": _when(since, "--since"), "until": _when(until, "--until")}
    kinds = _check_kinds(kind)
    running = forward_if_served(home)  # a running `lifevault serve` owns the vault: search there
    if running is not None:
        out = running.request("POST", "/v1/search", json_body=_body(query=query, k=k, kinds=kinds, tags=tag, mode=mode,
                                                                   explain=explain, **when))
    else:
        unlocking, connecting = begin_open(home, passphrase_file)  # both run while the search stack is imported
        from embeddings.service import MemoryService

        with open_vault(home, passphrase_file, unlocking=unlocking, connecting=connecting) as vault:
            svc = MemoryService(vault)
            out = svc.search(query, k=k, kinds=kinds, tags=tag, mode=mode, **when).to_dict(explain=explain)
            svc.close()
    if json_out:
        emit_json(out)
        return
    if out["understood"]:
        say("Understood: " + ", ".join(out["understood"]))
    if not out["hits"]:
        say(f"No memories found ({out['candidates']} passed the filters).")
    for hit in out["hits"]:
        say(f"{hit['rank']:>3}. [{hit['kind']}] {hit['text']}  (id {hit['id']})")
        if explain:
            signals = ", ".join(f"{n} #{s['rank'] or '-'} ({s['score']:.3f}, weight {s['weight']:.2f} -> "
                                f"{s['contribution']:.4f})" for n, s in hit["explain"].items())
            say(f"     fused {hit['score']:.4f}: {signals}")


def context(
    task: Annotated[str, typer.Argument(help="The task the context is for.")],
    budget: Annotated[int, typer.Option("--budget", min=16, help="Token budget (the model's tokenizer).")] = 1500,
    since: SinceOpt = None,
    until: UntilOpt = None,
    kind: KindOpt = None,
    now: Annotated[str | None, typer.Option("--now", help="Plan as of this time (ISO 8601; replaying an old "
                                                          "export). Default: now.")] = None,
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Build a token-budgeted context pack with citations for a task (printed on stdout). A task about the
    future ("plan my week", "tomorrow", "next week") gets the window's events and free time, then routines,
    then the relevant past.

    Example: lifevault context "plan my week around the gym and meetings" --budget 400
    """
    from lifevault.cli_api import forward_if_served

    when = {"since": _when(since, "--since"), "until": _when(until, "--until"), "now": _when(now, "--now")}
    kinds = _check_kinds(kind)
    running = forward_if_served(home)
    if running is not None:
        pack = running.request("POST", "/v1/context", json_body=_body(task=task, token_budget=budget, kinds=kinds, **when))
    else:
        unlocking, connecting = begin_open(home, passphrase_file)  # both run while the search stack is imported
        from embeddings.service import MemoryService

        with open_vault(home, passphrase_file, unlocking=unlocking, connecting=connecting) as vault:
            svc = MemoryService(vault)
            pack = svc.context(task, token_budget=budget, kinds=kinds, **when).to_dict()
            svc.close()
    if json_out:
        emit_json(pack)
        return
    typer.echo(pack["text"])
    say(f"{len(pack['snippets'])} memories, {pack['tokens_used']}/{pack['token_budget']} tokens; "
        f"{len(pack['left_out'])} left out for lack of budget")


def remember(
    text: Annotated[str, typer.Argument(help="The note.")],
    at: Annotated[str | None, typer.Option("--at", help="When it happened (ISO 8601; default now).")] = None,
    tag: TagOpt = None,
    metadata: Annotated[str | None, typer.Option("--metadata", help="A JSON object kept with the note.")] = None,
    source: Annotated[str, typer.Option("--source", help="Who wrote it.")] = "owner",
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a note into memory (searchable at once; `at` is when it happened).

    Example: lifevault remember "Ana's birthday dinner at Tasca do Chico" --at 2025-03-15 --tag lisbon
    """
    from embeddings.service import MemoryService
    from lifevault.cli_api import forward_if_served

    meta = None
    if metadata is not None:
        from embeddings.records import metadata_problem

        try:
            meta = json.loads(metadata)
        except (ValueError, RecursionError):
            raise typer.BadParameter("not valid JSON", param_hint="--metadata") from None
        problem = metadata_problem(meta)
        if problem:
            raise typer.BadParameter(problem, param_hint="--metadata")
    occurred = _when(at, "--at")
    running = forward_if_served(home)
    if running is not None:
        made = running.request("POST", "/v1/memories", json_body=_body(text=text, occurred_at=occurred, tags=tag or [],
                                                                      metadata=meta, source=source))
        record = running.request("GET", f"/v1/memories/{made['id']}")
    else:
        with open_vault(home, passphrase_file) as vault:
            svc = MemoryService(vault)
            record = svc.remember(text, occurred_at=occurred, tags=tag or (), metadata=meta, source=source).to_dict()
            svc.close()
    err.print(f"Remembered as memory {record['id']}")
    if json_out:
        emit_json(record)


def forget(
    memory_id: Annotated[list[int] | None, typer.Option("--id", help="A memory id; repeatable.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="location, calendar, usage or a note source.")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    query: Annotated[str | None, typer.Option("--query", help="Memories containing every word of this.")] = None,
    kind: KindOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would be forgotten.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Forget memories and the source rows behind them, everywhere (preview first; --dry-run stops there).

    Example: lifevault forget --query "Dr Lee" --since 2025-01-01 --dry-run
    """
    from embeddings.forget import ForgetRequest
    from embeddings.service import MemoryService
    from lifevault.cli_api import forward_if_served

    request = ForgetRequest(memory_ids=tuple(memory_id) if memory_id else None, source=source,
                            since=_when(since, "--since"), until=_when(until, "--until"), query=query,
                            kinds=frozenset(_check_kinds(kind) or ()) or None)
    running = forward_if_served(home)  # a running `lifevault serve` owns the vault: preview and commit there
    if running is not None:
        body = _forget_body(request)
        plan = running.request("POST", "/v1/forget", json_body=body | {"commit": False}, timeout=None)
        _confirm_and_commit(plan, " (in the running server)", dry_run=dry_run, yes=yes, json_out=json_out,
                            commit=lambda: running.request("POST", "/v1/forget", timeout=None,
                                                           json_body=body | {"commit": True, "digest": plan["digest"]}))
        return
    with open_vault(home, passphrase_file) as vault:
        svc = MemoryService(vault)
        found = svc.forget_preview(request)
        _confirm_and_commit(found.to_dict(), "", dry_run=dry_run, yes=yes, json_out=json_out,
                            commit=lambda: svc.forget_commit(found).to_dict())
        svc.close()


def _forget_body(request: ForgetRequest) -> dict[str, Any]:
    """A ForgetRequest as the body of `POST /v1/forget` (selectors only; unset ones left out)."""
    return _body(memory_ids=list(request.memory_ids) if request.memory_ids else None, source=request.source,
                 since=request.since, until=request.until, query=request.query,
                 kinds=sorted(request.kinds) if request.kinds else None)


def _confirm_and_commit(plan: dict[str, Any], where: str, *, commit: Callable[[], dict[str, Any]], dry_run: bool, yes: bool,
                        json_out: bool) -> None:
    """Show a forget preview (`ForgetPlan.to_dict`, the shape `POST /v1/forget` previews in), stop there on
    --dry-run, else confirm and commit; `commit` returns the receipt (`ForgetReceipt.to_dict`)."""
    rows = ", ".join(f"{t} {n}" for t, n in plan["rows"].items()) or "none"
    err.print(f"Would forget {plan['memories']} memories "
              f"({', '.join(f'{k} {n}' for k, n in plan['by_kind'].items()) or 'none'}); source rows: {rows}{where}",
              markup=False, soft_wrap=True)
    for item in plan["preview"]:
        err.print(f"  - [{item['kind']}] {item['text']}", markup=False)
    if plan["memories"] > len(plan["preview"]):
        err.print(f"  ... and {plan['memories'] - len(plan['preview'])} more")
    if dry_run or not plan["memories"]:
        if json_out:
            emit_json({"dry_run": True} | plan)
        return
    if not yes and not typer.confirm("Forget these for good?", err=True):
        raise typer.Exit(1)
    receipt = commit()
    err.print(f"Forgotten: {receipt['memories']} memories; rows deleted {receipt['rows_deleted']}; "
              f"index resealed (audit record {receipt['audit_seq']})", markup=False, soft_wrap=True)
    if json_out:
        emit_json({"dry_run": False} | receipt)
