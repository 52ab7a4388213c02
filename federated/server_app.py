"""The reference cloud: a Flower ServerApp running DP-FedAvg with uniform weights.

Per round: pick the round's devices (all training nodes, or Poisson with rate q when sample-rate is set,
drawn from the OS CSPRNG so the public seed does not reveal who was asked),
send each the global weights and a client.RoundSpec, collect the replies until round-timeout, and
    local        mean = sum(received updates) / received       (each update already carries its noise)
    central      mean = (sum(received updates) + N(0, (zC)^2)) / D   (fixed denominator, decided before any
                 reply: D = q N under Poisson sampling, else the number of devices asked; one user moves
                 the mean by at most C/D)
    distributed  the Skellam mechanism under SecAgg+ (flwr's SecAggPlusWorkflow with
                 aggregate.secagg_settings): the round spec declares gamma (the largest at which the
                 round's n shares cannot overflow, aggregate.pick_gamma, or gamma from the run config, a
                 round of which could wrap is refused: skellam.check_round), dim and bits; the server only
                 learns the sum of the surviving devices' residue shares, decodes the exact integer sum and
                 divides it by gamma times the number of devices asked; the reconstruction threshold is t,
                 so a sum of fewer than t shares cannot be unmasked, and such a round is discarded
    global += server-learning-rate * mean
Dropouts (no reply by the timeout, an error, a refusal) are counted and left out; a round nobody answered
leaves the model unchanged. After each round the global model is evaluated on the held-out nodes
(eval-nodes of them, never trained on) and the round is logged: sent, received, refused, failed,
accuracy (sum correct / sum total over held-out devices), seconds.

Run config (pyproject [tool.flwr.app.config] or `flwr run -c`): see ServerConfig. Flower is kept on the
machine: flower_env() sets FLWR_HOME to a directory the caller owns, switches off telemetry, the update
check and runtime dependency installation.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp

from federated import aggregate, skellam
from federated import client as dev
from federated.trust import SECRET_FIXED

log = logging.getLogger("lifevault.federated")

RoundSink = Callable[["RoundLog"], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    num_rounds: int = 3
    mode: str = "central"
    clip_norm: float = 1.0
    noise_multiplier: float = 1.0
    model_id: str = "lifevault-next-app-v1"
    min_nodes: int = 2
    wait_for_nodes_s: float = 60.0
    eval_nodes: int = 0
    sample_rate: float = 0.0  # 0: every training node every round; else Poisson sampling with this rate
    noise_shares_fraction: float = 0.75  # distributed: t = ceil(fraction * sampled), at least 2
    gamma: float = 0.0  # distributed: the Skellam scale; 0 picks the largest that cannot overflow per round
    local_steps: int = 50
    batch_size: int = 64
    learning_rate: float = 0.05
    server_learning_rate: float = 1.0
    round_timeout_s: float = 600.0
    seed: int = 0
    results_file: str = ""

    def __post_init__(self) -> None:
        if self.mode not in dev.MODES:
            raise ValueError(f"mode must be one of {', '.join(dev.MODES)}")
        if not 0 <= self.sample_rate < 1:
            raise ValueError("sample-rate must be in [0, 1)")
        if not 0 < self.noise_shares_fraction <= 1:
            raise ValueError("noise-shares-fraction must be in (0, 1]")
        if not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise ValueError("gamma must be a finite number >= 0 (0: picked per round)")

    @classmethod
    def from_run_config(cls, cfg: dict[str, Any]) -> ServerConfig:
        kw: dict[str, Any] = {}
        for f in fields(cls):
            key = f.name.replace("_", "-")
            if key in cfg:
                default: Any = f.default  # a field's default names its type (int, float, str, bool)
                kw[f.name] = type(default)(cfg[key]) if default is not None else cfg[key]
        return cls(**kw)

    def to_run_config(self) -> dict[str, Any]:
        return {k.replace("_", "-"): v for k, v in asdict(self).items()}


@dataclass(slots=True, kw_only=True)
class RoundLog:
    round: int
    sent: int
    received: int
    refused: int
    failed: int
    applied: bool
    accuracy: float | None
    evaluated: int
    seconds: float
    epsilon_reported: float | None = None  # the largest ledger epsilon the devices reported
    refusals: dict[str, int] = field(default_factory=dict)


def initial_weights(seed: int) -> np.ndarray:
    from federated import model as fmodel

    return fmodel.initial(seed)  # numpy only: the server process never imports torch


def _content(weights: np.ndarray, config: dict[str, Any] | None = None) -> RecordDict:
    rd = RecordDict({"arrays": ArrayRecord({"weights": Array(np.asarray(weights, dtype=np.float64))})})
    if config is not None:
        rd["config"] = ConfigRecord(config)
    return rd


def wait_for_nodes(grid: Grid, minimum: int, timeout_s: float) -> list[int]:
    end = time.monotonic() + timeout_s
    while True:
        nodes = sorted(int(n) for n in grid.get_node_ids())
        if len(nodes) >= minimum or time.monotonic() >= end:
            return nodes
        time.sleep(0.5)


def split_nodes(nodes: list[int], eval_nodes: int, seed: int) -> tuple[list[int], list[int]]:
    """(training nodes, held-out nodes): a seeded choice, so a run's split is reproducible."""
    if eval_nodes <= 0:
        return nodes, []
    if eval_nodes >= len(nodes):
        raise ValueError(f"eval-nodes ({eval_nodes}) must leave at least one training node of {len(nodes)}")
    order = np.random.default_rng(seed).permutation(len(nodes))
    held = sorted(nodes[i] for i in order[:eval_nodes])
    return [n for n in nodes if n not in held], held


def sample(nodes: list[int], rate: float) -> list[int]:
    """Poisson sampling with rate `rate` from the OS CSPRNG (secrets.SystemRandom): nothing in the run
    config (the seed is public) lets anyone replay who was asked."""
    if rate <= 0:
        return list(nodes)
    rng = secrets.SystemRandom()
    return [n for n in nodes if rng.random() < rate]


def denominator(cfg: ServerConfig, training_nodes: int, sampled: int) -> float:
    """What a central round's sum is divided by: q N under Poisson sampling (fixed before anyone is asked,
    so the mean does not reveal how many were sampled), else the number of devices asked."""
    return cfg.sample_rate * training_nodes if cfg.sample_rate > 0 else float(sampled)


def round_spec(cfg: ServerConfig, rnd: int, sampled: int, *, dim: int | None = None) -> dev.RoundSpec:
    """The round's spec; a distributed round declares its Skellam parameters for a model of `dim`
    parameters (refused, ValueError, when `sampled` shares at the configured gamma could overflow)."""
    shares = aggregate.noise_shares_for(sampled, cfg.noise_shares_fraction) if cfg.mode == "distributed" else 1
    sk: dict[str, Any] = {}
    if cfg.mode == "distributed":
        if dim is None:
            raise ValueError("a distributed round spec needs the model's dim")
        gamma = cfg.gamma or aggregate.pick_gamma(sampled=sampled, dim=dim, clip_norm=cfg.clip_norm,
                                                  noise_multiplier=cfg.noise_multiplier, noise_shares=shares)
        sk = {"mechanism": skellam.NAME, "gamma": gamma, "dim": dim, "bits": skellam.BITS}
    spec = dev.RoundSpec(
        round=rnd, model_id=cfg.model_id, mode=cfg.mode, clip_norm=cfg.clip_norm,
        noise_multiplier=cfg.noise_multiplier, noise_shares=shares,
        sampling="poisson" if cfg.sample_rate > 0 else "none",
        sampling_rate=cfg.sample_rate if cfg.sample_rate > 0 else None,
        sampler=SECRET_FIXED if cfg.sample_rate > 0 and cfg.mode == "central" else "",
        local_steps=cfg.local_steps, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, **sk,
    )
    if cfg.mode == "distributed":
        skellam.check_round(sampled, spec.skellam_params())
    return spec


def _number(value: float | list[int] | list[float]) -> float:
    """A metric a device sent (a Flower record value may be a list too: that fails here, as float() would)."""
    if isinstance(value, list):
        raise TypeError(f"a metric is a list of {len(value)}, not a number")
    return float(value)


def _status(msg: Message) -> str | None:
    if msg.has_content() and "status" in msg.content.config_records:
        return str(msg.content.config_records["status"].get("reason", "refused"))
    return None


def plain_round(grid: Grid, weights: np.ndarray, spec: dev.RoundSpec, nodes: list[int], timeout: float,
                *, divide_by: float | None = None) -> tuple[np.ndarray | None, RoundLog]:
    """One local/central round over the Message API; returns (mean update or None, partial log). A central
    round divides by `divide_by` (default: the number of devices asked)."""
    msgs = [Message(_content(weights, spec.to_config()), dst_node_id=n, message_type=MessageType.TRAIN,
                    group_id=str(spec.round)) for n in nodes]
    replies = list(grid.send_and_receive(msgs, timeout=timeout))
    updates: list[np.ndarray] = []
    refusals: dict[str, int] = {}
    failed, eps = 0, []
    for m in replies:
        if m.has_error():
            failed += 1
            continue
        reason = _status(m)
        if reason is not None:
            refusals[reason] = refusals.get(reason, 0) + 1
            continue
        try:
            u = np.asarray(m.content.array_records["arrays"]["update"].numpy(), dtype=np.float64)
        except (KeyError, ValueError):
            failed += 1
            continue
        if u.shape != weights.shape or not np.all(np.isfinite(u)):
            failed += 1
            continue
        updates.append(u)
        if "metrics" in m.content.metric_records:
            eps.append(_number(m.content.metric_records["metrics"].get("epsilon", 0.0)))
    failed += len(nodes) - len(replies)  # no reply by the timeout: a dropout
    mean = aggregate.mean_update(updates, mode=spec.mode, sampled=divide_by or len(nodes), clip_norm=spec.clip_norm,
                                 noise_multiplier=spec.noise_multiplier)
    log_ = RoundLog(round=spec.round, sent=len(nodes), received=len(updates), refused=sum(refusals.values()),
                    failed=failed, applied=mean is not None, accuracy=None, evaluated=0, seconds=0.0,
                    epsilon_reported=max(eps) if eps else None, refusals=refusals)
    return mean, log_


def secagg_round(grid: Grid, context: Context, weights: np.ndarray, spec: dev.RoundSpec, nodes: list[int],
                 timeout: float) -> tuple[np.ndarray | None, RoundLog]:
    """One distributed round under SecAgg+ (flwr's legacy workflow: the only legacy path on the server)."""
    from flwr.common import FitIns, parameters_to_ndarrays
    from flwr.server.client_manager import SimpleClientManager
    from flwr.server.compat.app_utils import start_update_client_manager_thread
    from flwr.server.compat.legacy_context import LegacyContext
    from flwr.server.server_config import ServerConfig as LegacyServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key

    wanted = set(nodes)
    counted: dict[str, int] = {}

    class _Chosen(FedAvg):  # exactly the round's devices, uniform weights
        def configure_fit(self, server_round, parameters, client_manager):
            ins = FitIns(parameters, spec.to_config())
            return [(p, ins) for p in client_manager.all().values() if p.node_id in wanted]

    def _count(metrics: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        counted["received"] = len(metrics)
        return {"received": len(metrics)}

    strategy = _Chosen(accept_failures=True, fit_metrics_aggregation_fn=_count, min_available_clients=len(nodes))
    legacy = LegacyContext(context, config=LegacyServerConfig(num_rounds=1), strategy=strategy,
                           client_manager=SimpleClientManager())
    thread, stop, ready = start_update_client_manager_thread(grid, legacy.client_manager)
    try:
        ready.wait()
        legacy.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
            {Key.CURRENT_ROUND: spec.round, Key.START_TIME: time.time()})
        legacy.state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord(
            {"0": Array(np.asarray(weights, dtype=np.float64))})
        settings = aggregate.secagg_settings(sampled=len(nodes), noise_shares=spec.noise_shares)
        workflow = SecAggPlusWorkflow(**settings, timeout=timeout)  # reconstruction threshold: t
        workflow(grid, legacy)
    finally:
        stop.set()
        thread.join()
    received = counted.get("received", 0)
    mean = None
    if received >= spec.noise_shares:
        from flwr.compat.common import recorddict_compat as compat

        params = compat.arrayrecord_to_parameters(legacy.state.array_records[MAIN_PARAMS_RECORD], keep_input=True)
        arr = np.concatenate([np.ravel(a) for a in parameters_to_ndarrays(params)]).astype(np.float64)
        if arr.shape == weights.shape:  # the mean of the residue shares: decode the exact integer sum
            mean = aggregate.decode(arr, survivors=received, p=spec.skellam_params(), denominator=len(nodes))
    log_ = RoundLog(round=spec.round, sent=len(nodes), received=received, refused=0,
                    failed=len(nodes) - received, applied=mean is not None, accuracy=None, evaluated=0,
                    seconds=0.0)
    return mean, log_


def evaluate(grid: Grid, weights: np.ndarray, nodes: list[int], rnd: int, timeout: float) -> tuple[float | None, int]:
    """(accuracy over the held-out devices' test examples, devices that answered)."""
    if not nodes:
        return None, 0
    msgs = [Message(_content(weights), dst_node_id=n, message_type=MessageType.EVALUATE, group_id=str(rnd))
            for n in nodes]
    correct = total = answered = 0
    for m in grid.send_and_receive(msgs, timeout=timeout):
        if m.has_error() or "metrics" not in m.content.metric_records:
            continue
        met = m.content.metric_records["metrics"]
        correct += int(_number(met["correct"]))
        total += int(_number(met["total"]))
        answered += 1
    return (correct / total if total else None), answered


def run_rounds(grid: Grid, context: Context, cfg: ServerConfig, *, sink: RoundSink | None = None,
               weights: np.ndarray | None = None) -> tuple[np.ndarray, list[RoundLog]]:
    """The whole run; returns (final weights, one log per round)."""
    nodes = wait_for_nodes(grid, cfg.min_nodes, cfg.wait_for_nodes_s)
    if len(nodes) < cfg.min_nodes:
        raise RuntimeError(f"only {len(nodes)} of the {cfg.min_nodes} nodes needed connected")
    train_nodes, held_out = split_nodes(nodes, cfg.eval_nodes, cfg.seed)
    log.info("federated run: %d training nodes, %d held out, mode %s", len(train_nodes), len(held_out), cfg.mode)
    w = initial_weights(cfg.seed) if weights is None else np.asarray(weights, dtype=np.float64)
    logs: list[RoundLog] = []
    for rnd in range(1, cfg.num_rounds + 1):
        t0 = time.perf_counter()
        chosen = sample(train_nodes, cfg.sample_rate)
        if not chosen or (cfg.mode == "distributed" and len(chosen) < 2):
            entry = RoundLog(round=rnd, sent=0, received=0, refused=0, failed=0, applied=False, accuracy=None,
                             evaluated=0, seconds=0.0)
        else:
            spec = round_spec(cfg, rnd, len(chosen), dim=int(w.size))
            if cfg.mode == "distributed":
                mean, entry = secagg_round(grid, context, w, spec, chosen, cfg.round_timeout_s)
            else:
                mean, entry = plain_round(grid, w, spec, chosen, cfg.round_timeout_s,
                                          divide_by=denominator(cfg, len(train_nodes), len(chosen)))
            if mean is not None:
                w = w + cfg.server_learning_rate * mean
        entry.accuracy, entry.evaluated = evaluate(grid, w, held_out, rnd, cfg.round_timeout_s)
        entry.seconds = round(time.perf_counter() - t0, 3)
        log.info("round %d: %s", rnd, json.dumps(asdict(entry), sort_keys=True))
        logs.append(entry)
        if sink is not None:
            sink(entry)
    if cfg.results_file:
        Path(cfg.results_file).write_text(json.dumps([asdict(x) for x in logs], indent=1))
    return w, logs


def make_app(cfg: ServerConfig | None = None, *, sink: RoundSink | None = None) -> ServerApp:
    """A ServerApp; `cfg` None reads the run config (what `flwr run` passes)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        _quiet_flower_logs()
        run_rounds(grid, context, cfg or ServerConfig.from_run_config(dict(context.run_config)), sink=sink)

    return app


def _quiet_flower_logs() -> None:
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


app = make_app()  # the component `flwr run` loads: federated.server_app:app


# ---- running Flower on this machine only ----------------------------------------------------------

def flower_env(flwr_home: Path, *, base: dict[str, str] | None = None, pythonpath: Iterable[Path] = ()) -> dict[str, str]:
    """Environment for Flower processes: FLWR_HOME under the caller's control, no telemetry, no update
    check, no runtime dependency installation, this project importable."""
    env = dict(os.environ if base is None else base)
    env.update({
        "FLWR_HOME": str(flwr_home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
        "PYTHONUNBUFFERED": "1",
    })
    paths = [str(p) for p in pythonpath] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


APP_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "lifevault-federated"
version = "{version}"
description = "lifevault: next-app-category model trained with differential privacy on devices"
dependencies = []

[tool.flwr.app]
publisher = "lifevault"

[tool.flwr.app.components]
serverapp = "federated.server_app:app"
clientapp = "federated.client_app:app"

[tool.flwr.app.config]
{config}
"""


def write_flower_app(directory: Path, cfg: ServerConfig, *, version: str = "0.1.0") -> Path:
    """A Flower App folder for `flwr run`: only a pyproject.toml naming this package's components (every
    node runs the installed lifevault; the FAB carries no code)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for k, v in cfg.to_run_config().items():
        lines.append(f"{k} = {json.dumps(v)}")
    (directory / "pyproject.toml").write_text(APP_PYPROJECT.format(version=version, config="\n".join(lines)))
    return directory


def write_flower_config(flwr_home: Path, *, name: str, address: str, insecure: bool,
                        root_certificates: Path | None = None) -> Path:
    """FLWR_HOME/config.toml with exactly one SuperLink connection (no default cloud connection); TLS
    verified against `root_certificates` (a CA bundle) when given."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    path = flwr_home / "config.toml"
    ca = f"root-certificates = {json.dumps(str(root_certificates))}\n" if root_certificates else ""
    path.write_text(
        f'[superlink]\ndefault = "{name}"\n\n[superlink.{name}]\naddress = "{address}"\n'
        f"insecure = {'true' if insecure else 'false'}\n{ca}"
    )
    return path
