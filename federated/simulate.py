"""Flower's simulation engine over a fleet of prepared devices, each with its own encrypted vault.

    fleet = build_fleet(root, 10, populate=fill)         # Vault.create -> fill(vault, i), per device
    fleet = lifevault.fleet.personas(root, 10, seed=7, days=120)   # the same with synth/ -> ingest
    result = simulate(fleet, rounds=5, mode="central", epsilon=8.0)

The simulation takes vaults as they are: it imports neither the persona generator nor the ingest pipeline
(ARCHITECTURE.md: federated sits on vault/ only). Building personas is the composition root's job.

The run is Flower's own: run_simulation(ServerApp, ClientApp, num_supernodes) with the Ray backend
(flwr 1.42 ships no other simulation backend; Ray comes with `flwr[simulation]`, i.e. ray==2.55.1). The
ServerApp and ClientApp are the deployment ones (server_app.make_app, client_app.make_app); only the way a
node finds its vault differs: a virtual SuperNode's partition-id names persona number partition-id.
Ray is kept on loopback (node address 127.0.0.1, no dashboard, usage stats off).

Held-out devices: eval_fraction of the fleet never trains; the global model's next-app accuracy is
measured on their most recent 20% of examples after every round. Distributed mode runs SecAgg+ over the
same engine.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from federated import aggregate
from federated import client as dev
from federated import client_app as capp
from federated import server_app as sapp
from vault import ledger as vledger

if TYPE_CHECKING:
    from vault.store import Vault

SYNTH_PASSPHRASE = "synthetic persona (not secret)"
ROOT = Path(__file__).resolve().parents[1]


def synth_kdf() -> Any:
    """The cheapest Argon2id a vault accepts, for synthetic personas only (a real vault keeps vault.keys' defaults)."""
    from vault.keys import KDF_FLOOR

    return KDF_FLOOR


@dataclass(frozen=True, slots=True, kw_only=True)
class Fleet:
    root: Path
    homes: tuple[Path, ...]
    passphrase_file: Path

    def device(self, i: int, *, policy: dev.Policy | None = None, allow_evaluate: bool = True) -> capp.Device:
        return capp.Device(home=self.homes[i], passphrase_file=self.passphrase_file,
                           policy=policy or dev.Policy(), allow_evaluate=allow_evaluate)

    @classmethod
    def of(cls, root: Path, n: int) -> Fleet:
        """The first n devices under root (built or not)."""
        root = Path(root).expanduser().absolute()
        return cls(root=root, homes=tuple(_home(root, i) for i in range(n)), passphrase_file=root / "passphrase")

    @classmethod
    def existing(cls, root: Path) -> Fleet:
        homes = tuple(sorted(p for p in Path(root).glob("device-*") if (p / "keys.json").exists()))
        return cls(root=Path(root), homes=homes, passphrase_file=Path(root) / "passphrase")


@dataclass(frozen=True, slots=True)
class FleetDevices:
    """Picklable `locate` for the ClientApp: partition-id -> the persona's vault (Ray ships it to actors)."""

    fleet: Fleet
    policy: dev.Policy = dev.Policy()

    def __call__(self, context: Any) -> capp.Device:
        pid = int(context.node_config["partition-id"])
        return self.fleet.device(pid, policy=self.policy)


Populate = Callable[["Vault", int], None]  # (open vault, device index) -> writes that device's data


def fleet_root(root: Path) -> Path:
    """root as an absolute, owner-only directory holding the fleet's passphrase file."""
    root = Path(root).expanduser().absolute()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    pp = root / "passphrase"
    if not pp.exists():
        pp.write_text(SYNTH_PASSPHRASE + "\n")
        pp.chmod(0o600)
    return root


def missing(root: Path, n: int) -> list[int]:
    """Indices of the devices of an n-device fleet under root that are not built yet."""
    return [i for i in range(n) if not (_home(root, i) / "keys.json").exists()]


def build_device(root: Path, i: int, populate: Populate) -> None:
    """Device i's vault under root/device-NNN, filled by `populate`; built aside and renamed into place, so a
    device interrupted halfway is rebuilt, never half-used."""
    from vault.store import Vault

    home = _home(fleet_root(root), i)
    partial = home.with_name(home.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    vault, _ = Vault.create(partial, SYNTH_PASSPHRASE, kdf=synth_kdf())
    with vault:
        populate(vault, i)
    partial.rename(home)


def build_fleet(root: Path, n: int, *, populate: Populate,
                progress: Callable[[int], None] | None = None) -> Fleet:
    """n devices under root/device-NNN (existing ones are kept: re-running is cheap), each an encrypted
    vault that `populate` fills. The simulation only ever sees prepared vaults: what goes in them (the
    synthetic persona through the real ingest pipeline: lifevault/fleet.py; derived rows written directly:
    the tests) is the caller's."""
    root = fleet_root(root)
    for i in missing(root, n):
        build_device(root, i, populate)
        if progress:
            progress(i)
    return Fleet.of(root, n)


def _home(root: Path, i: int) -> Path:
    return Path(root) / f"device-{i:03d}"


@dataclass(slots=True, kw_only=True)
class SimulationResult:
    mode: str
    noise_multiplier: float
    target_epsilon: float | None
    rounds: list[sapp.RoundLog] = field(default_factory=list)
    epsilons: dict[str, float] = field(default_factory=dict)  # device -> ledger epsilon spent (PLD)
    privacy: dict[str, dict[str, Any]] = field(default_factory=dict)  # device -> client.epsilons(), side by side
    held_out: int = 0

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"mode": self.mode, "noise_multiplier": self.noise_multiplier, "target_epsilon": self.target_epsilon,
                "held_out": self.held_out, "rounds": [asdict(r) for r in self.rounds], "epsilons": self.epsilons,
                "privacy": {k: {n: (None if isinstance(x, float) and math.isinf(x) else x) for n, x in v.items()}
                            for k, v in self.privacy.items()}}


def noise_for(epsilon: float, *, delta: float, rounds: int, event: Callable[[float], Any] | None = None) -> float:
    """The noise multiplier that keeps `rounds` releases (no amplification) within epsilon at delta, each
    counted as `event(z)` (default a Gaussian release; a distributed round passes its Skellam parameters,
    whose recorded figure is a little above the Gaussian's)."""
    from federated import accounting

    z = float(accounting.noise_multiplier_for_budget(epsilon, delta, rounds))
    as_event = event or dev.gaussian

    def fits(x: float) -> bool:  # the devices compose release by release: that sum must fit too
        return dev.composed([as_event(x)] * rounds, delta=delta)[0] <= epsilon

    if fits(z):
        return z
    lo, hi = z, z * 1.01
    for _ in range(60):
        if fits(hi):
            for _ in range(40):
                mid = (lo + hi) / 2
                lo, hi = (lo, mid) if fits(mid) else (mid, hi)
            return hi
        lo, hi = hi, hi * 1.5
    raise ValueError(f"no noise multiplier keeps {rounds} rounds within epsilon {epsilon}")


@contextlib.contextmanager
def _flower_process_env(flwr_home: Path) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(sapp.flower_env(flwr_home, pythonpath=[ROOT]))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def backend_config(cpus: int | None = None) -> dict[str, Any]:
    cpus = cpus or os.cpu_count() or 1
    return {
        "init_args": {"num_cpus": cpus, "num_gpus": 0, "include_dashboard": False,
                      "_node_ip_address": "127.0.0.1", "logging_level": "ERROR", "log_to_driver": False},
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
    }


def start_engine(root: Path, *, cpus: int | None = None) -> None:
    """Start Flower's simulation engine (Ray, on loopback, as backend_config(cpus) sets it) ahead of a
    simulate() over the fleet under `root` with the same `cpus`, so that Ray's start (~3 s quiet: its control
    processes, then one idle worker per CPU importing Ray) can overlap other work, e.g. in a background
    thread. run_simulation starts Ray only when it is not running: simulate() then runs on this one, and the
    end of its run shuts it down (as it would its own); stop_engine() for a caller that gives up before.
    Call it from a thread that lives until the run has ended (the main thread, or a pool's worker thread
    kept until then): Ray binds its processes' lives to the thread that started them (PR_SET_PDEATHSIG),
    so a thread that ends takes Ray's control processes with it.

    Ray's processes take the environment simulate() gives Flower's (sapp.flower_env) from this process's,
    set for the start only (key by key: nothing else in the environment moves meanwhile). No runtime_env is
    passed (run_simulation's own start passes one): the actors of the run then take over the idle workers
    Ray started with, instead of starting workers of their own (measured: ready in 0.9 s rather than 3.4 s;
    a warm-up task on those workers made Ray start new ones for the actors, so there is none)."""
    import logging
    import sys

    import ray

    if ray.is_initialized():
        return
    env = sapp.flower_env(Path(root) / "flwr", base={}, pythonpath=[*map(Path, filter(None, sys.path)), ROOT])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(
        [env["PYTHONPATH"], *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]))
    saved = {k: os.environ.get(k) for k in env}
    worker_log = logging.getLogger("ray._private.worker")  # off the main thread Ray warns it sets no
    level = worker_log.level  # SIGTERM handler: the process's own handlers stay, as they should
    worker_log.setLevel(logging.ERROR)
    try:
        os.environ.update(env)
        ray.init(**backend_config(cpus)["init_args"])
    finally:
        worker_log.setLevel(level)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def stop_engine() -> None:
    """Shut down a Ray that start_engine started and no simulate() ran on (its run shuts Ray down itself):
    for a caller that gives up before the run. Imports nothing when Ray was never imported."""
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def simulate(
    fleet: Fleet,
    *,
    rounds: int,
    mode: str,
    epsilon: float | None = None,
    delta: float = vledger.DEFAULT_BUDGET_DELTA,
    budget_epsilon: float = vledger.DEFAULT_BUDGET_EPSILON,
    noise_multiplier: float = 1.0,
    clip_norm: float = 1.0,
    eval_fraction: float = 0.2,
    local_steps: int = 50,
    learning_rate: float = 0.05,
    server_learning_rate: float = 1.0,
    seed: int = 0,
    cpus: int | None = None,
    on_round: Callable[[sapp.RoundLog], None] | None = None,
) -> SimulationResult:
    """Run `rounds` rounds over the fleet with Flower's simulation engine; returns utility per round and
    every device's ledger epsilon. `epsilon` (per user, over all the rounds) sets the noise multiplier."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise RuntimeError("Flower's simulation engine needs Ray: pip install 'flwr[simulation]==1.42.0'")
    from flwr.simulation import run_simulation

    n = len(fleet.homes)
    held = max(1, math.floor(eval_fraction * n)) if eval_fraction > 0 and n > 2 else 0
    event = None
    if mode == "distributed":  # every training node every round: the server's gamma for that round size
        sampled, dim = n - held, int(sapp.initial_weights(seed).size)
        t = aggregate.noise_shares_for(sampled, aggregate.DEFAULT_NOISE_SHARES_FRACTION)

        def event(x: float) -> Any:
            gamma = aggregate.pick_gamma(sampled=sampled, dim=dim, clip_norm=clip_norm, noise_multiplier=x,
                                         noise_shares=t)
            return aggregate.skellam_params(dim=dim, clip_norm=clip_norm, noise_multiplier=x, gamma=gamma,
                                            noise_shares=t)
    z = noise_for(epsilon, delta=delta, rounds=rounds, event=event) if epsilon is not None else noise_multiplier
    cfg = sapp.ServerConfig(
        num_rounds=rounds, mode=mode, clip_norm=clip_norm, noise_multiplier=z, min_nodes=n, eval_nodes=held,
        local_steps=local_steps, learning_rate=learning_rate, server_learning_rate=server_learning_rate,
        seed=seed, wait_for_nodes_s=30.0, round_timeout_s=3600.0,
    )
    result = SimulationResult(mode=mode, noise_multiplier=z, target_epsilon=epsilon, held_out=held)

    def sink(entry: sapp.RoundLog) -> None:
        result.rounds.append(entry)
        if on_round:
            on_round(entry)

    policy = dev.Policy(budget_epsilon=budget_epsilon, delta=delta)
    with _flower_process_env(fleet.root / "flwr"):
        run_simulation(
            server_app=sapp.make_app(cfg, sink=sink),
            client_app=capp.make_app(FleetDevices(fleet, policy)),
            num_supernodes=n,
            backend_config=backend_config(cpus),
        )
    for i in range(n):
        with fleet.device(i).vault() as v:
            result.epsilons[fleet.homes[i].name] = vledger.spent(v)
            result.privacy[fleet.homes[i].name] = dev.epsilons(v, policy)
    return result
