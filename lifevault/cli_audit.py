"""`lifevault audit dp` (empirical privacy audit), `lifevault audit export`, and the epsilon recomputation of
`lifevault audit verify`.

The vault never imports federated: the recomputation happens here, on the ledger's recorded bodies,
with federated.accounting (PLD and RDP), and the verdict goes back to `audit verify`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lifevault.cli_common import HomeOpt, JsonOpt, PassFileOpt, choice, emit_json, err, open_vault
from vault.errors import VaultError

EXIT_CHECK_FAILED = 5  # `audit verify` found a broken chain or a wrong epsilon; `audit dp` proved a violation
EXIT_INCONCLUSIVE = 6  # `audit dp` could not have seen a violation of this claim (too few canaries for it)
EXIT_ANCHOR_MISMATCH = 7  # `audit verify`: a chain is shorter than, or differs from, keys.json's head anchor


def register(audit_app: typer.Typer) -> None:
    audit_app.command("dp")(audit_dp)
    audit_app.command("export")(audit_export)


def audit_export(
    out: Annotated[Path | None, typer.Option("--out", help="File to write (default: standard output).")] = None,
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Export the audit log and the privacy ledger as JSON Lines an auditor verifies without lifevault.

    A header line (record counts, head hashes), then every record of both hash chains with its RFC 8785
    canonical body: ids, keyed hashes, counts and parameters, no personal data. Verify it anywhere with
    `python3 tools/verify_export.py FILE` (standard library only). With --json (and --out), a summary.

    Example: lifevault audit export --out chains.jsonl
    """
    from vault import chain_export

    if json_out and out is None:
        raise typer.BadParameter("--json needs --out (standard output carries the export itself)")
    with open_vault(home, passphrase_file) as vault:
        lines = list(chain_export.lines(vault))
    text = "\n".join(lines) + "\n"
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        tmp = out.with_name(out.name + ".tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out)
    import json

    chains = json.loads(lines[0])["chains"]
    err.print("Exported " + ", ".join(f"{t} ({c['records']} records, head {c['head'][:12]})" for t, c in chains.items())
              + (f" to {out}" if out else "") + "; verify with: python3 tools/verify_export.py FILE")
    if json_out:
        emit_json({"out": str(out), "chains": chains})


def audit_dp(
    canaries: Annotated[int, typer.Option(help="Canary clients (each included with probability 1/2).")] = 1000,
    rounds: Annotated[int, typer.Option(help="Rounds the canaries take part in.")] = 1,
    mode: Annotated[str | None, typer.Option(help="Mode audited (default: the ledger's last release, else central).",
                                             click_type=choice("local", "central", "distributed"),
                                             show_default=False)] = None,
    clip_norm: Annotated[float | None, typer.Option(help="Clip norm C (default: the ledger's last release, else 1.0).")] = None,
    noise_multiplier: Annotated[float | None, typer.Option(
        help="Noise multiplier z; 0 switches noise off (default: the z at which the accountant's bound is half "
             "of what the canaries can certify, so that a broken clip or noise is caught).")] = None,
    delta: Annotated[float | None, typer.Option(help="Delta of both bounds (default: the ledger's, else 1e-6).")] = None,
    dim: Annotated[int | None, typer.Option(help="Update dimension (default max(2048, 8 x canaries)).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the audit's CSPRNG (default: fresh random).")] = None,
    significance: Annotated[float, typer.Option(help="1 - confidence of the lower bound.")] = 0.05,
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Empirical privacy audit: run the DP mechanism with canaries, report a lower bound on epsilon.

    Submits canary updates through the device's real clip and noise (the step release_round runs) and the
    server's real aggregation (in distributed mode the Skellam share, SecAgg+'s exact modular sum and its
    decoding), in simulation (no
    personal data is read), and records the result in the audit log (`privacy.empirical_audit`), where the
    privacy report shows it. Exit code 5: the lower bound exceeds the accountant's upper bound (the
    mechanism leaks more than it claims). Exit code 6: inconclusive, even a perfect guesser could not have
    exceeded the accountant's bound with this many canaries.

    Example: lifevault audit dp --canaries 1000 --json
    """
    from federated import audit as faudit
    from vault import audit, ledger

    with open_vault(home, passphrase_file) as vault:
        last: dict[str, Any] = {}
        for row in ledger.releases(vault):
            last = row.body
        d = float(delta if delta is not None else last.get("delta", ledger.DEFAULT_BUDGET_DELTA))
        try:
            z = noise_multiplier
            if z is None:
                z = faudit.powerful_noise_multiplier(canaries=canaries, rounds=rounds, delta=d,
                                                     significance=significance)
            result = faudit.run_audit(
                canaries, rounds=rounds, clip_norm=float(clip_norm if clip_norm is not None else last.get("clip_norm", 1.0)),
                noise_multiplier=float(z), mode=mode or str(last.get("mode", "central")), seed=seed, delta=d,
                significance=significance, dim=dim,
            )
        except (ValueError, TypeError) as e:
            raise VaultError(f"audit dp: {e}") from None
        audit.record(vault, result)
    upper = result.epsilon_upper_bound
    err.print(
        f"Empirical lower bound on epsilon: {result.epsilon_lower_bound:.3f} at {result.confidence:.0%} confidence "
        f"(delta {result.delta:g}; {result.canaries} canaries, {result.correct}/{result.guesses} guesses right; "
        f"the most these canaries can certify: {result.epsilon_certifiable_max:.3f}); "
        f"accountant's upper bound: {'none (noise off)' if upper is None else f'{upper:.3f}'}; "
        f"mode {result.mode}, C {result.clip_norm:g}, z {result.noise_multiplier:g}, {result.rounds} round(s), "
        f"{result.seconds:.1f} s."
    )
    if noise_multiplier is None:
        err.print(f"z {result.noise_multiplier:g} was chosen so that a broken clip or noise would be certified; the "
                  "code audited (device clip and noise, server aggregation) is the same for every z.")
    err.print({
        "consistent": "Consistent: no leak beyond the accountant's bound was found, and this audit could have "
                      "certified one up to its maximum.",
        "violation": "VIOLATION: the lower bound exceeds the accountant's upper bound; the DP code is broken.",
        "inconclusive": "Inconclusive: the accountant's bound is above what these canaries can certify, so the "
                        "audit could not have caught a leak; use fewer rounds, more canaries or a larger z.",
    }[result.verdict])
    if json_out:
        emit_json(result.to_json())
    if result.verdict == "violation":
        raise typer.Exit(EXIT_CHECK_FAILED)
    if result.verdict == "inconclusive":
        raise typer.Exit(EXIT_INCONCLUSIVE)


def recompute_ledger(vault: Any) -> dict[str, Any]:
    """Every epsilon in the privacy ledger recomputed independently (PLD and RDP) against what was recorded."""
    from federated import accounting
    from vault import ledger

    rows = list(ledger.releases(vault))
    checked = accounting.recompute([r.body for r in rows])
    mismatches = [
        {"seq": rows[c.index].seq, "recorded_pld": c.recorded_pld, "pld": c.pld, "recorded_rdp": c.recorded_rdp,
         "rdp": c.rdp}
        for c in checked if not c.ok
    ]
    return {"ok": not mismatches, "checked": len(checked), "mismatches": mismatches}


def summary(result: dict[str, Any]) -> str:
    if result["ok"]:
        return f"privacy_ledger epsilons: OK ({result['checked']} recomputed with PLD and RDP)"
    seqs = ", ".join(str(m["seq"]) for m in result["mismatches"])
    return f"privacy_ledger epsilons: {len(result['mismatches'])} mismatch(es) at record(s) {seqs}"
