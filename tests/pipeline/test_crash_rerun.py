"""`lifevault ingest` killed (SIGKILL) at every batch boundary, inside a batch, inside derive and after it,
then run again: every table of the vault ends as one clean run leaves it.

The kill is real and deterministic: the child runs the installed CLI with LIFEVAULT_TEST_CRASH_AT naming a
crash point (vault/crashpoint.py), so it dies exactly there, whatever the machine's speed. Every vault is a
copy of one template home, so all of them share keys and their keyed row ids compare directly.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest

from lifevault.cli import main
from synth import generate
from tests.conftest import FAST_KDF, PASSPHRASE
from vault import audit, crashpoint
from vault.store import Vault

ROOT = Path(__file__).resolve().parents[2]
# columns that legitimately differ between runs: which load wrote a row, and when
RUN_COLUMNS = {"load_id", "started_at", "finished_at", "quarantined_at", "updated_at", "applied_at", "marked_at",
               "seconds"}

KILLED_AT_ONCE = 4  # children run side by side (each on its own vault copy)

pytestmark = pytest.mark.slow


def cli() -> list[str]:
    """The installed `lifevault` entry point of this interpreter (else the same code as a module)."""
    script = Path(sys.executable).parent / "lifevault"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lifevault.cli"]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three days of the synthetic persona: 9 files of every kind, 15 batches, stays, trips, sessions, days."""
    root = tmp_path_factory.mktemp("persona")
    generate(root, seed=7, days=3)
    return root


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("template") / "home"
    Vault.create(home, PASSPHRASE, kdf=FAST_KDF)[0].close()
    return home


def copy_of(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest


def args(home: Path, export: Path) -> list[str]:
    secret = home.parent / "passphrase.txt"
    secret.write_text(PASSPHRASE)
    return ["ingest", str(export), "--home", str(home), "--passphrase-file", str(secret)]


def ingest(home: Path, export: Path) -> int:
    """The CLI in this process (a re-run after a crash, or the clean run)."""
    return main(args(home, export))


def killed_at(point: str, home: Path, export: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {crashpoint.ENV: point, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*cli(), *args(home, export)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def snapshot(home: Path) -> dict[str, pl.DataFrame]:
    """Every table, without the columns naming the run, in a stable order. `loads` and `audit_log` hold per-run
    bookkeeping (ids, counts of what each run added, hash chains over them): they are reduced to what must
    match, and "loads left open" lists earlier loads not closed as interrupted (none, in a clean run)."""
    out: dict[str, pl.DataFrame] = {}
    with Vault.open(home, PASSPHRASE) as v:
        assert audit.verify(v).ok
        for t in v.tables():
            df = v.frame(f'SELECT * FROM "{t}"')
            if t == "loads":
                df = df.sort("started_at")
                out["loads left open"] = df.head(df.height - 1).filter(pl.col("status") != "interrupted").select("status")
                df = df.tail(1).select("kind", "source", "files", "status")
            elif t == "audit_log":
                df = pl.DataFrame({"kind": df.sort("seq")["kind"]})
            else:
                df = df.drop([c for c in df.columns if c in RUN_COLUMNS])
                df = df.sort(df.columns) if df.height else df
            out[t] = df
    return out


def differences(got: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame]) -> list[str]:
    if got.keys() != want.keys():
        return [f"tables {sorted(got.keys() ^ want.keys())}"]
    return [f"{t} ({got[t].height} rows, clean {want[t].height})" for t in want if not got[t].equals(want[t])]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, template: Path, export: Path) -> tuple[dict[str, pl.DataFrame], Counter[str]]:
    """One clean run: its tables, and how often it reached each crash point."""
    reached: Counter[str] = Counter()
    original = crashpoint.reached
    crashpoint.reached = lambda name: reached.update([name])  # type: ignore[assignment]
    try:
        home = copy_of(template, tmp_path_factory.mktemp("clean") / "home")
        assert ingest(home, export) == 0
    finally:
        crashpoint.reached = original  # type: ignore[assignment]
    tables = snapshot(home)
    for t in ("stays", "trips", "app_sessions", "daily_summaries", "location_points", "calendar_events"):
        assert tables[t].height > 0, t
    return tables, reached


def test_the_clean_run_passes_every_crash_point_it_is_killed_at(clean):
    _, reached = clean
    assert reached["batch.committed"] == reached["batch.writing"] >= 10
    assert reached["file.completed"] >= 5 and reached["derive.writing"] == reached["load.derived"] == 1


def test_an_ingest_killed_at_any_point_and_run_again_ends_with_every_table_of_a_clean_run(
        clean, template, export, tmp_path):
    want, reached = clean
    batches, files = reached["batch.committed"], reached["file.completed"]
    points = [f"batch.committed#{k}" for k in range(1, batches + 1)]  # every batch boundary
    points += [f"batch.writing#{k}" for k in (1, batches)]  # inside a batch's transaction
    points += [f"file.completed#{k}" for k in (1, files)]  # the last file done, nothing derived
    points += ["derive.writing", "load.derived"]  # inside derive's transaction; derived, load not closed
    homes = [copy_of(template, tmp_path / f"home{i}") for i in range(len(points))]
    with ThreadPoolExecutor(KILLED_AT_ONCE) as pool:  # the children mostly wait on fsync: overlap them
        children = list(pool.map(lambda ph: killed_at(ph[0], ph[1], export), zip(points, homes, strict=True)))
    wrong = []
    for point, home, child in zip(points, homes, children, strict=True):
        assert child.returncode == -signal.SIGKILL, f"{point}: not killed there ({child.returncode}) {child.stderr[-500:]}"
        assert ingest(home, export) == 0
        wrong += [f"{point}: {d}" for d in differences(snapshot(home), want)]
    assert wrong == []


def test_a_rerun_killed_again_while_catching_up_still_ends_as_a_clean_run(clean, template, export, tmp_path):
    want, _ = clean
    home = copy_of(template, tmp_path / "home")
    assert killed_at("file.completed#3", home, export).returncode == -signal.SIGKILL
    assert killed_at("derive.writing", home, export).returncode == -signal.SIGKILL
    assert ingest(home, export) == 0
    assert differences(snapshot(home), want) == []


def test_a_vault_an_older_version_left_underived_is_derived_by_its_next_run(clean, template, export, tmp_path):
    """Migration 0015 marks raw tables that hold rows: the first run after the upgrade derives them, even with
    nothing new to load."""
    want, _ = clean
    home = copy_of(template, tmp_path / "home")
    assert ingest(home, export) == 0
    with Vault.open(home, PASSPHRASE) as v:  # as the crash left it before the marker existed
        for t in ("stays", "trips", "app_sessions", "daily_summaries"):
            v.execute(f"DELETE FROM {t}")
        v.execute("DROP TABLE derive_pending")
        v.execute("DELETE FROM _migrations WHERE name = '0015_derive_pending'")
    with Vault.open(home, PASSPHRASE) as v:
        assert v.scalar("SELECT count(*) FROM derive_pending") == 6
    assert ingest(home, export) == 0
    got = snapshot(home)
    assert got.pop("_migrations")["name"].sort().equals(want["_migrations"]["name"].sort())  # (0015 re-applied last)
    runs = {"_migrations", "audit_log", "loads left open"}  # two runs here, both completed, by design
    assert differences({t: df for t, df in got.items() if t not in runs},
                       {t: df for t, df in want.items() if t not in runs}) == []
