"""A real Flower deployment on loopback: one flower-superlink, three flower-supernode processes (each
device with its own encrypted vault, started by `lifevault federate node`), `flwr run` of two rounds. The run must finish as *completed* (read
from the SuperLink's run status: `flwr run` exits 0 even when the run fails) and every device's ledger
must hold exactly its two releases. Every process started here is killed at the end, children included.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from federated import server_app as sapp
from tests.conftest import FAST_KDF, PASSPHRASE
from tests.federated.test_flower_client import fill_device
from vault import ledger as vledger
from vault.store import Vault

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every live descendant of pid (from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def stop_all(procs: list[subprocess.Popen]) -> None:
    pids = []
    for p in procs:
        pids += [p.pid, *descendants(p.pid)]
    for pid in reversed(pids):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def leftovers(tmp_path: Path) -> list[str]:
    """Live processes whose command line or environment mentions tmp_path (every process this test started
    has FLWR_HOME or a vault under it), wherever they were reparented."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X") and str(tmp_path).encode() in blob:
            found.append(f"{entry.name}: {blob[:200]!r}")
    return found


def flwr(env: dict[str, str], *args: str, cwd: Path) -> dict:
    out = subprocess.run([str(BIN / "flwr"), *args, "--format", "json"], env=env, cwd=cwd, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    return json.loads(out.stdout)


def wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, log.read_text()[-3000:]
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.3)
    raise AssertionError(f"nothing listens on {HOST}:{port}:\n{log.read_text()[-3000:]}")


def test_two_rounds_over_a_real_superlink_and_three_supernodes(tmp_path):
    pp = tmp_path / "passphrase"
    pp.write_text(PASSPHRASE + "\n")
    homes = []
    for i in range(3):
        home = tmp_path / f"device-{i}"
        vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
        with vault:
            fill_device(vault, seed=10 + i, days=14)
        homes.append(home)

    flwr_home = tmp_path / "flwr"
    env = sapp.flower_env(flwr_home, pythonpath=[ROOT])
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("LIFEVAULT_PASSPHRASE", None)  # the nodes read their passphrase file
    link_port = free_port()
    procs: list[subprocess.Popen] = []
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(name: str, args: list[str], env_: dict[str, str]) -> subprocess.Popen:
        log = (logs / f"{name}.log").open("w")
        p = subprocess.Popen(args, env=env_, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(p)
        return p

    try:
        link = start("superlink", [str(BIN / "flower-superlink"), "--insecure", "--host", HOST, "--port", str(link_port),
                                   "--disable-runtime-dependency-installation"], env)
        wait_listening(link_port, link, logs / "superlink.log")
        for i, home in enumerate(homes):  # each through `lifevault federate node`, which runs flower-supernode
            start(f"supernode-{i}", [sys.executable, "-m", "lifevault.cli", "federate", "node", "--superlink",
                                     f"{HOST}:{link_port}", "--insecure", "--home", str(home), "--passphrase-file",
                                     str(pp), "--port", str(free_port()), "--flower-home", str(tmp_path / f"flwr-node-{i}")],
                  env)

        results = tmp_path / "results.json"
        cfg = sapp.ServerConfig(num_rounds=2, mode="local", clip_norm=0.5, noise_multiplier=2.0, min_nodes=3,
                                wait_for_nodes_s=90.0, local_steps=10, batch_size=32, round_timeout_s=240.0,
                                results_file=str(results), model_id="integration")
        app_dir = sapp.write_flower_app(tmp_path / "app", cfg)
        sapp.write_flower_config(flwr_home, name="test", address=f"{HOST}:{link_port}", insecure=True)
        started = flwr(env, "run", str(app_dir), "test", cwd=tmp_path)
        run_id = str(started["run-id"])

        # Every `flwr` call is a new Python process (seconds of CPU): ask for the status when the ServerApp
        # has written its results, or every 15 s in case it died before writing them.
        deadline, status, asked = time.monotonic() + 240, "", time.monotonic()
        while time.monotonic() < deadline:
            if results.exists() or time.monotonic() - asked > 15:
                (run,) = flwr(env, "ls", "test", "--run-id", run_id, cwd=tmp_path)["runs"]
                status, asked = run["status"], time.monotonic()
                if status.startswith("finished"):
                    break
            time.sleep(0.5)
        if status != "finished:completed":
            log = subprocess.run([str(BIN / "flwr"), "log", run_id, "test", "--show"], env=env, cwd=tmp_path,
                                 capture_output=True, text=True, timeout=60)
            pytest.fail(f"run {run_id} ended as {status!r}\n{log.stdout[-4000:]}")
    finally:
        stop_all(procs)

    assert all(p.poll() is not None for p in procs)
    end = time.monotonic() + 10  # SIGKILL is asynchronous: give the kernel a moment to reap
    while leftovers(tmp_path) and time.monotonic() < end:
        time.sleep(0.2)
    assert leftovers(tmp_path) == []  # no superexec, clientapp or serverapp left behind, orphans included
    rounds = json.loads(results.read_text())
    assert [(r["round"], r["sent"], r["received"], r["applied"]) for r in rounds] == [(1, 3, 3, True), (2, 3, 3, True)]
    for home in homes:
        with Vault.open(home, PASSPHRASE) as v:
            rows = [r.body for r in vledger.releases(v)]
            assert vledger.verify(v).ok
        assert [(r["round"], r["model_id"], r["mode"]) for r in rows] == [(1, "integration", "local"),
                                                                          (2, "integration", "local")]


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Flower's simulation engine needs flwr[simulation]")
def test_a_distributed_round_goes_through_secagg_in_flowers_simulation_engine(tmp_path):
    from federated import simulate as sim

    fleet = sim.personas(tmp_path / "fleet", 4, populate=lambda v, i: fill_device(v, seed=20 + i, days=14))
    # epsilon 2 rather than 8: a larger z keeps the PLD grids (and this test) small; the checks are the same
    result = sim.simulate(fleet, rounds=1, mode="distributed", epsilon=2.0, eval_fraction=0.25, local_steps=5)
    (rnd,) = result.rounds
    assert (rnd.sent, rnd.received, rnd.applied) == (3, 3, True) and rnd.accuracy is not None
    trained = [name for name, eps in result.epsilons.items() if eps > 0]
    assert len(trained) == 3 and all(0 < result.epsilons[n] <= 2.0 for n in trained)
    # the ledger records t: what the device's own share (z / sqrt(t)) protects is finite and weaker than the sum
    assert all(result.epsilons[n] < result.privacy[n]["device_verifiable"] < float("inf") for n in trained)
    for home in fleet.homes:
        with Vault.open(home, sim.SYNTH_PASSPHRASE) as v:
            rows = [r.body for r in vledger.releases(v)]
        if home.name in trained:
            assert [(r["round"], r["mode"], r["epsilon_label"]) for r in rows] == [
                (1, "distributed", "distributed (honest majority)")]
        else:
            assert rows == []  # the held-out device never released anything


def test_a_node_refuses_plaintext_to_a_superlink_off_this_machine(capsys):
    from lifevault.cli import main

    rc = main(["federate", "node", "--superlink", "10.1.2.3:9092", "--insecure"])
    err = capsys.readouterr().err
    assert rc != 0 and "only allowed for a SuperLink on this machine" in err and "Traceback" not in err


def test_simulate_rejects_an_unknown_mode_in_one_line(capsys):
    from lifevault.cli import main

    rc = main(["federate", "simulate", "--mode", "gossip"])
    err = capsys.readouterr().err
    assert rc != 0 and "--mode must be one of local, central, distributed" in err and "Traceback" not in err
