"""Federated learning commands: `lifevault federate simulate` and `lifevault federate node`."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from lifevault.cli_common import (
    App,
    HomeOpt,
    JsonOpt,
    PassFileOpt,
    choice,
    emit_json,
    err,
    progress,
    settings,
)
from vault.errors import VaultError

MODES = ("local", "central", "distributed")

federate = App(
    name="federate",
    help="Train the shared model with differential privacy: simulate a fleet, or run this device as a node.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(federate, name="federate")


@federate.command("simulate")
def simulate_cmd(
    devices: Annotated[int, typer.Option(help="Synthetic devices (personas), each with its own vault.", min=3)] = 10,
    rounds: Annotated[int, typer.Option(help="Federated rounds.", min=1)] = 5,
    mode: Annotated[str, typer.Option(help="Where the noise is added (distributed: SecAgg+).",
                                      click_type=choice(*MODES))] = "central",
    epsilon: Annotated[float | None, typer.Option(help="Per-user epsilon over all rounds (sets the noise).")] = None,
    delta: Annotated[float, typer.Option(help="Delta of the per-user guarantee.")] = 1e-6,
    noise_multiplier: Annotated[float, typer.Option(help="Noise multiplier when --epsilon is not given.")] = 1.0,
    clip_norm: Annotated[float, typer.Option(help="L2 clip norm C of each device's whole update.")] = 1.0,
    days: Annotated[int, typer.Option(help="Days of life per persona.", min=14)] = 120,
    seed: Annotated[int, typer.Option(help="Persona seed (device i is persona seed+i).")] = 7,
    root: Annotated[Path | None, typer.Option(help="Keep the fleet's vaults here (default: a temporary folder).")] = None,
    eval_fraction: Annotated[float, typer.Option(help="Share of devices held out for evaluation.")] = 0.2,
    json_out: JsonOpt = False,
) -> None:
    """Simulate N devices with Flower's simulation engine; print accuracy per round and each device's epsilon.

    Every device keeps its own encrypted vault and privacy ledger; held-out devices never train and
    measure the global model's next-app accuracy on their most recent data.

    Example: lifevault federate simulate --devices 10 --rounds 5 --mode central --epsilon 8
    """
    from federated import simulate as sim
    from lifevault.fleet import personas

    if mode not in MODES:
        raise typer.BadParameter(f"--mode must be one of {', '.join(MODES)}")
    if epsilon is not None and not (epsilon > 0 and epsilon < float("inf")):
        raise typer.BadParameter("--epsilon must be a finite number > 0")
    if not 0 < delta < 1:
        raise typer.BadParameter("--delta must be in (0, 1)")
    target = (root or Path(tempfile.mkdtemp(prefix="lifevault-fleet-"))).expanduser().absolute()
    err.print(f"Building {devices} synthetic devices ({days} days each) in {target}, then {rounds} rounds, mode "
              f"{mode}" + (f", epsilon {epsilon:g} per user" if epsilon else "") + "…")
    with fleet_progress(devices=devices, rounds=rounds, json_out=json_out) as (on_device, on_round):
        fleet = personas(target, devices, seed=seed, days=days, progress=on_device)
        result = sim.simulate(fleet, rounds=rounds, mode=mode, epsilon=epsilon, delta=delta,
                              noise_multiplier=noise_multiplier, clip_norm=clip_norm, eval_fraction=eval_fraction,
                              seed=seed, on_round=on_round)
    from rich.table import Table

    table = Table(title=f"{mode} DP, noise multiplier {result.noise_multiplier:.3f}, delta {delta:g}")
    for col in ("device", "epsilon (PLD)", "assuming", "RDP", "device-verifiable", "amplified"):
        table.add_column(col, justify="right", no_wrap=col != "assuming")

    def fmt(x: float | None) -> str:
        return "-" if x is None else ("inf" if x == float("inf") else f"{x:.3f}")

    for name, p in result.privacy.items():
        if not p["releases"]:
            table.add_row(name, "0", "held out", "-", "-", "-")
            continue
        table.add_row(name, fmt(p["recorded"]), ", ".join(p["labels"]), fmt(p["rdp"]), fmt(p["device_verifiable"]),
                      fmt(p.get("amplified")))
    err.print(table)
    if json_out:
        emit_json(result.to_json())


@contextlib.contextmanager
def fleet_progress(*, devices: int, rounds: int, json_out: bool) -> Iterator[tuple[Callable[[int], None],
                                                                                Callable[[Any], None]]]:
    """Bars for the devices built and the rounds run, and one line per round (none of it under --json)."""
    from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with progress(*columns, json_out=json_out) as bar:
        built = bar.add_task("devices built", total=devices)
        ran = bar.add_task("rounds", total=rounds)

        def on_device(i: int) -> None:
            bar.update(built, completed=i + 1)

        def on_round(r: Any) -> None:
            bar.update(ran, completed=r.round)
            if not json_out:
                acc = "-" if r.accuracy is None else f"{r.accuracy:.3f}"
                err.print(f"  round {r.round}: {r.received}/{r.sent} updates, {r.refused} refused, {r.failed} dropped, "
                          f"held-out accuracy {acc}")

        yield on_device, on_round


MAX_PEM_BYTES = 1_000_000  # a CA bundle or a node key; larger is not a PEM file


def _readable_pem(path: Path, option: str, marker: bytes) -> Path:
    """The absolute path of a readable PEM file holding `marker` (e.g. CERTIFICATE), else a one-line error."""
    p = path.expanduser().absolute()
    try:
        if p.stat().st_size > MAX_PEM_BYTES:
            raise typer.BadParameter(f"{option} {p} is larger than {MAX_PEM_BYTES} bytes: not a PEM file")
        data = p.read_bytes()
    except OSError as e:
        raise typer.BadParameter(f"{option} {p}: {e.strerror}") from None
    if b"-----BEGIN " + marker not in data:
        raise typer.BadParameter(f"{option} {p} holds no PEM '{marker.decode()}' block")
    return p


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@federate.command("node")
def node_cmd(
    superlink: Annotated[str, typer.Option(help="The SuperLink's Fleet API address, HOST:PORT.")],
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    budget_epsilon: Annotated[float, typer.Option(help="This user's lifetime epsilon budget (never renewed).")] = 8.0,
    budget_delta: Annotated[float, typer.Option(help="Delta of the budget.")] = 1e-6,
    root_certificates: Annotated[Path | None, typer.Option(help="PEM CA bundle to verify the SuperLink's TLS.")] = None,
    node_key: Annotated[Path | None, typer.Option(
        help="This node's private key (EC P-384, OpenSSH format) for SuperNode authentication; its public key "
             "must be registered on the SuperLink (`flwr supernode register`).")] = None,
    insecure: Annotated[bool, typer.Option(help="No TLS: only allowed for a SuperLink on this machine (loopback).")] = False,
    allow_evaluate: Annotated[bool, typer.Option(help="Answer evaluation requests (accuracy counts are not DP).")] = False,
    port: Annotated[int, typer.Option(help="Loopback port of this node's Flower runtime API.")] = 9094,
    flower_home: Annotated[Path | None, typer.Option(help="Flower's own files (default: <home>-flower, beside the vault).")] = None,
) -> None:
    """Run this device as a Flower SuperNode: it trains rounds and releases only DP updates, within budget.

    The vault stays on the device; each round is recorded in the privacy ledger before its update
    leaves, and a round that would exceed the budget is refused. Stop with Ctrl-C.

    Example: lifevault federate node --superlink fl.example.org:9092 --root-certificates ca.pem --node-key node.key
    """
    host = superlink.rsplit(":", 1)[0]
    if ":" not in superlink:
        raise typer.BadParameter("--superlink must be HOST:PORT")
    if insecure and not _is_loopback(host):
        raise typer.BadParameter("--insecure is only allowed for a SuperLink on this machine; use --root-certificates")
    if insecure and (root_certificates or node_key):
        raise typer.BadParameter("--insecure cannot be combined with --root-certificates or --node-key")
    if root_certificates is not None:
        root_certificates = _readable_pem(root_certificates, "--root-certificates", b"CERTIFICATE")
    if node_key is not None:
        node_key = _readable_pem(node_key, "--node-key", b"OPENSSH PRIVATE KEY")
    if not 0 < budget_epsilon < float("inf") or not 0 < budget_delta < 1:
        raise typer.BadParameter("the budget needs epsilon > 0 and 0 < delta < 1")
    from federated import server_app as sapp
    from lifevault.secrets_input import read_passphrase
    from vault.store import Vault

    s = settings(home)
    env = dict(os.environ)
    if passphrase_file is None:  # the ClientApp process needs it every round: hand it over in its environment
        env["LIFEVAULT_PASSPHRASE"] = read_passphrase(None)
    with Vault.open(s.home, read_passphrase(passphrase_file) if passphrase_file else env["LIFEVAULT_PASSPHRASE"]):
        pass  # fail now (wrong passphrase, vault in use), not at the first round
    flwr_home = (flower_home or s.home.with_name(s.home.name + "-flower")).expanduser().absolute()
    env = sapp.flower_env(flwr_home, base=env, pythonpath=[Path(__file__).resolve().parents[1]])
    cfg = [f'vault-home="{s.home}"', f"budget-epsilon={float(budget_epsilon)!r}", f"budget-delta={float(budget_delta)!r}",
           f"allow-evaluate={'true' if allow_evaluate else 'false'}"]
    if passphrase_file is not None:
        cfg.append(f'passphrase-file="{Path(passphrase_file).expanduser().absolute()}"')
    exe = Path(sys.executable).parent / "flower-supernode"
    args = [str(exe) if exe.exists() else "flower-supernode", "--superlink", superlink, "--host", "127.0.0.1",
            "--port", str(port), "--node-config", " ".join(cfg)]
    args += ["--insecure"] if insecure else (["--root-certificates", str(root_certificates)] if root_certificates else [])
    args += ["--auth-supernode-private-key", str(node_key)] if node_key else []
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    err.print(f"Node for vault {s.home} -> SuperLink {superlink} ({'no TLS, loopback' if insecure else 'TLS'}"
              f"{', authenticated by its node key' if node_key else ''}); "
              f"budget epsilon {budget_epsilon:g} at delta {budget_delta:g}. Ctrl-C stops.")
    try:
        proc = subprocess.Popen(args, env=env)
    except OSError as e:
        raise VaultError(f"cannot start flower-supernode: {e.strerror}") from None
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
    if rc not in (0, -signal.SIGINT, 130):
        raise typer.Exit(rc if rc > 0 else 1)
