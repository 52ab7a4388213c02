"""Synthetic fleets for the federated simulation: the persona generator's exports through the real ingest
pipeline, one encrypted vault per device. The composition root's job: federated/simulate.py only takes
prepared vaults, and neither it nor synth/ knows about the other.

    fleet = personas(root, 10, seed=7, days=120, workers=2)    # device i is persona seed + i
    result = federated.simulate.simulate(fleet, rounds=5, mode="central", epsilon=8.0)
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from federated.simulate import Fleet, Populate
    from vault.store import Vault

PERSONA_END = date(2025, 10, 31)


def personas(root: Path, n: int, *, seed: int = 7, days: int = 365, end: date = PERSONA_END,
             progress: Callable[[int], None] | None = None, workers: int = 1) -> Fleet:
    """n synthetic devices under root/device-NNN (existing ones are kept: re-running is cheap): persona
    seed+i's exports in the real formats (synth/), ingested by the real pipeline into device i's vault,
    `workers` processes in parallel. The exports are deleted once ingested."""
    from federated import simulate as sim

    root = sim.fleet_root(root)
    todo = sim.missing(root, n)
    scratch = root / "exports"
    try:
        if workers > 1 and len(todo) > 1:
            import multiprocessing as mp

            jobs = [(root, i, seed, days, end) for i in todo]
            with mp.get_context("spawn").Pool(min(workers, len(todo))) as pool:
                for i in pool.imap_unordered(_build, jobs):
                    if progress:
                        progress(i)
        else:
            sim.build_fleet(root, n, populate=persona(seed=seed, days=days, end=end, scratch=scratch),
                            progress=progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return sim.Fleet.of(root, n)


def persona(*, seed: int, days: int, end: date, scratch: Path) -> Populate:
    """Writes persona seed+i's exports under scratch and ingests them into device i's vault."""

    def populate(vault: Vault, i: int) -> None:
        import synth
        from ingest import pipeline

        out = scratch / f"persona-{i:03d}"
        shutil.rmtree(out, ignore_errors=True)
        synth.generate(out, seed=seed + i, days=days, end=end)
        try:
            pipeline.run(vault, [out])
        finally:
            shutil.rmtree(out, ignore_errors=True)

    return populate


def _build(job: tuple[Path, int, int, int, date]) -> int:
    from federated import simulate as sim

    root, i, seed, days, end = job
    sim.build_device(root, i, persona(seed=seed, days=days, end=end, scratch=root / "exports"))
    return i


__all__ = ["PERSONA_END", "persona", "personas"]
