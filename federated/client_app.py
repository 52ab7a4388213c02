"""The Flower ClientApp: a device answering the reference cloud (federated/server_app.py).

Node config (flower-supernode --node-config, or `lifevault federate node`):
    vault-home       the device's vault home (required)
    passphrase-file  a file holding the vault passphrase (else $LIFEVAULT_PASSPHRASE in the SuperNode's env)
    budget-epsilon   the user's lifetime budget (default 8), budget-delta (default 1e-6): the device's own,
                     the server never sets them
    allow-evaluate   true to answer evaluation requests (default false: evaluation counts on the device's
                     data are not differentially private, so a device only answers them when its owner
                     opts in; the synthetic held-out personas of a simulation do)

Messages (Message API):
    train     content "arrays" (ArrayRecord: "weights", the flat float64 global model) and "config"
              (ConfigRecord: client.RoundSpec.to_config()). Reply: "arrays" {"update"} and "metrics"
              {"num-examples": 1 (uniform weights: the true count is not released), "epsilon": the
              ledger's epsilon after this release}. A refusal replies "status" {"status": "refused",
              "reason": "budget" | "too-little-data"} and no arrays: nothing was released.
    train (SecAgg+ stages)   mode "distributed" only: the SecAgg+ protocol (flwr's secaggplus_mod) wraps
              the legacy NumPyClient fit path, the one place the legacy client_fn path is used, because
              flwr's SecAgg+ speaks FitIns/FitRes. A distributed round outside SecAgg+ is refused: a noise
              share alone is too little noise to release in the clear. Before training, the device checks
              the protocol settings the server declared in the SecAgg+ setup stage (check_secagg_settings):
              a reconstruction threshold below the round's t (the server could unmask a sum carrying
              less than the analysed noise), a quantization other than the one analysed
              (aggregate.secagg_settings: the identity on Skellam residues), a round whose sum could wrap
              at the declared gamma (skellam.check_round), or Skellam parameters other than the ones it
              analyses for its model (client.check_declared), and the device drops out without training
              or spending budget. The share it sends is client.privatize's Skellam share: residues
              modulo 2^22 as float64 integers.
    evaluate  same "arrays"; reply "metrics" {"correct", "total"} when allowed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.client import NumPyClient
from flwr.client.message_handler.message_handler import handle_legacy_message_from_msgtype
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, RECORD_KEY_STATE

from federated import aggregate, skellam
from federated import client as dev
from federated import features as feat
from vault.errors import BudgetExhausted, VaultError
from vault.ledger import DEFAULT_BUDGET_DELTA, DEFAULT_BUDGET_EPSILON

WEIGHTS = "weights"
UPDATE = "update"


class DeviceConfigError(VaultError):
    """The SuperNode's node config does not say where the device's vault is."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    home: Path
    passphrase_file: Path | None = None
    policy: dev.Policy = dev.Policy()
    allow_evaluate: bool = False

    def passphrase(self) -> str:
        if self.passphrase_file is not None:
            text = Path(self.passphrase_file).read_text().rstrip("\r\n")
            if text:
                return text
            raise DeviceConfigError(f"passphrase file {self.passphrase_file} is empty")
        env = os.environ.get("LIFEVAULT_PASSPHRASE")
        if env:
            return env
        raise DeviceConfigError("no passphrase: set passphrase-file in the node config or $LIFEVAULT_PASSPHRASE")

    @contextlib.contextmanager
    def vault(self) -> Iterator[Any]:
        from vault.store import Vault

        with Vault.open(self.home, self.passphrase()) as v:
            yield v


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.strip().lower() in ("1", "true", "yes", "on")) or v == 1


def device_from_node_config(context: Context) -> Device:
    """The Device a SuperNode's node config names (see the module docstring)."""
    cfg = dict(context.node_config)
    home = cfg.get("vault-home")
    if not home:
        raise DeviceConfigError("node config has no vault-home: start the node with `lifevault federate node`")
    pf = cfg.get("passphrase-file")
    return Device(
        home=Path(str(home)).expanduser(),
        passphrase_file=Path(str(pf)).expanduser() if pf else None,
        policy=dev.Policy(
            budget_epsilon=float(cfg.get("budget-epsilon", DEFAULT_BUDGET_EPSILON)),
            delta=float(cfg.get("budget-delta", DEFAULT_BUDGET_DELTA)),
        ),
        allow_evaluate=_truthy(cfg.get("allow-evaluate", False)),
    )


Locate = Callable[[Context], Device]


def weights_of(content: RecordDict) -> np.ndarray:
    return np.asarray(content.array_records["arrays"][WEIGHTS].numpy(), dtype=np.float64)


def spec_of(content: RecordDict) -> dev.RoundSpec:
    return dev.RoundSpec.from_config(dict(content.config_records["config"]))


def refusal(msg: Message, reason: str) -> Message:
    return Message(RecordDict({"status": ConfigRecord({"status": "refused", "reason": reason})}), reply_to=msg)


def run_round(device: Device, weights: np.ndarray, spec: dev.RoundSpec) -> dev.Released:
    with device.vault() as vault:
        return dev.release_round(vault, weights, spec, device.policy)


def _train(locate: Locate, msg: Message, context: Context) -> Message:
    device = locate(context)
    spec = spec_of(msg.content)
    if spec.mode == "distributed":
        return refusal(msg, "distributed-needs-secagg")
    try:
        rel = run_round(device, weights_of(msg.content), spec)
    except BudgetExhausted:
        return refusal(msg, "budget")
    except feat.TooLittleData:
        return refusal(msg, "too-little-data")
    return Message(RecordDict({
        "arrays": ArrayRecord({UPDATE: Array(rel.update)}),
        "metrics": MetricRecord({"num-examples": 1, "epsilon": rel.epsilon_after}),
    }), reply_to=msg)


def check_secagg_settings(declared: dict[str, Any], spec: dev.RoundSpec) -> None:
    """Raise ValueError unless the SecAgg+ settings the server declared (the protocol state after setup:
    sample_num, threshold, clipping_range, target_range, mod_range, max_weight) are the ones the round's
    noise was analysed for: a reconstruction threshold of at least t, so no sum of fewer than t shares
    can be unmasked, the quantization of aggregate.secagg_settings (the identity on the Skellam residues),
    and a round size whose sum cannot overflow at the declared gamma (skellam.check_round)."""
    try:
        sampled, threshold = int(declared["sample_num"]), int(declared["threshold"])
        expected = aggregate.secagg_settings(sampled=sampled, noise_shares=spec.noise_shares)
        skellam.check_round(sampled, spec.skellam_params())  # the round's sum could wrap: no point sending
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"SecAgg+ settings unusable for this round: {e}") from None
    if threshold < spec.noise_shares:
        raise ValueError(f"SecAgg+ reconstruction threshold {threshold} is below t = {spec.noise_shares}: "
                         "a sum of fewer than t shares could be unmasked")
    pairs = (("clipping_range", "clipping_range"), ("target_range", "quantization_range"),
             ("mod_range", "modulus_range"), ("max_weight", "max_weight"))
    for got, want in pairs:
        if got not in declared or not abs(float(declared[got]) - float(expected[want])) <= 1e-12 * float(expected[want]):
            raise ValueError(f"SecAgg+ {got} {declared.get(got)!r} is not the analysed {expected[want]!r}")


class _SecAggDevice(NumPyClient):
    """The legacy fit path, for SecAgg+ only: returns this device's noisy share of a distributed round."""

    def __init__(self, device: Device, declared: dict[str, Any]) -> None:
        self.device = device
        self.declared = declared

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        spec = dev.RoundSpec.from_config(dict(config))
        if spec.mode != "distributed":
            raise ValueError("SecAgg+ rounds carry mode distributed")
        check_secagg_settings(self.declared, spec)  # before the budget is touched: a refusal is a dropout
        weights = np.concatenate([np.ravel(p) for p in parameters]).astype(np.float64)
        rel = run_round(self.device, weights, spec)  # raises on refusal: SecAgg+ treats it as a dropout
        return [rel.update], 1, {"epsilon": rel.epsilon_after}


def _secagg_train(locate: Locate, msg: Message, context: Context) -> Message:
    device = locate(context)

    def legacy(m: Message, c: Context) -> Message:
        state = c.state.config_records.get(RECORD_KEY_STATE)
        declared = dict(state) if state is not None else {}  # what secaggplus_mod stored at setup
        return handle_legacy_message_from_msgtype(lambda _c: _SecAggDevice(device, declared).to_client(), m, c)

    return secaggplus_mod(msg, context, legacy)


def _evaluate(locate: Locate, msg: Message, context: Context) -> Message:
    device = locate(context)
    if not device.allow_evaluate:
        return refusal(msg, "evaluation-not-allowed")
    with device.vault() as vault:
        ex = feat.examples(vault)
    _, test = ex.split_by_time(0.8) if len(ex) >= 10 else (ex, ex)
    correct, total = dev.evaluate(weights_of(msg.content), test)
    return Message(RecordDict({"metrics": MetricRecord({"correct": correct, "total": total})}), reply_to=msg)


def make_app(locate: Locate = device_from_node_config) -> ClientApp:
    """A ClientApp whose devices are found by `locate` (node config by default; simulate.py maps
    partition ids to synthetic personas' vaults)."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        if RECORD_KEY_CONFIGS in msg.content.config_records:
            return _secagg_train(locate, msg, context)
        return _train(locate, msg, context)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return _evaluate(locate, msg, context)

    return app


app = make_app()  # the component `flwr run` loads: federated.client_app:app
