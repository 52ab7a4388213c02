"""A real Flower deployment on loopback, as a fleet would run it: one flower-superlink serving TLS with a
certificate from a CA made here (the `cryptography` package) and admitting only registered SuperNode keys
(a fourth node with an unregistered key is never asked), three flower-supernode processes (each device with its own encrypted vault, started by `lifevault federate
node` with the CA and its node key), and `flwr run` of a central round, then a distributed (SecAgg+) round.
Each run must finish as *completed* (read from the SuperLink's run status: `flwr run` exits 0 even when
the run fails) and every device's ledger must hold exactly its two releases. Every process started here is
killed at the end, children included.
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


def tls_files(d: Path) -> tuple[Path, Path, Path]:
    """A CA and a SuperLink certificate for 127.0.0.1 / localhost signed by it: (ca.pem, server.pem, server.key)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lifevault test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = d / "ca.pem", d / "server.pem", d / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def node_key(d: Path, name: str) -> tuple[Path, Path]:
    """A SuperNode authentication key pair (EC P-384, OpenSSH format): (private, public)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    private, public = d / f"{name}.key", d / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH))
    private.chmod(0o600)
    return private, public


def run_to_completion(env: dict[str, str], app_dir: Path, results: Path, cwd: Path) -> None:
    """`flwr run` and wait until the SuperLink says the run finished as completed."""
    started = flwr(env, "run", str(app_dir), "test", cwd=cwd)
    run_id = str(started["run-id"])
    # Every `flwr` call is a new Python process (seconds of CPU): ask for the status when the ServerApp
    # has written its results, or every 15 s in case it died before writing them.
    deadline, status, asked = time.monotonic() + 240, "", time.monotonic()
    while time.monotonic() < deadline:
        if results.exists() or time.monotonic() - asked > 15:
            (run,) = flwr(env, "ls", "test", "--run-id", run_id, cwd=cwd)["runs"]
            status, asked = run["status"], time.monotonic()
            if status.startswith("finished"):
                break
        time.sleep(0.5)
    if status != "finished:completed":
        log = subprocess.run([str(BIN / "flwr"), "log", run_id, "test", "--show"], env=env, cwd=cwd,
                             capture_output=True, text=True, timeout=60)
        pytest.fail(f"run {run_id} ended as {status!r}\n{log.stdout[-4000:]}")


def test_central_and_distributed_rounds_over_a_tls_superlink_with_authenticated_supernodes(tmp_path):
    pp = tmp_path / "passphrase"
    pp.write_text(PASSPHRASE + "\n")
    homes = []
    for i in range(4):  # device-3 is an intruder: its node key is never registered
        home = tmp_path / f"device-{i}"
        vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
        with vault:
            fill_device(vault, seed=10 + i, days=14)
        homes.append(home)
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, server_cert, server_key = tls_files(certs)
    keys = [node_key(certs, f"node-{i}") for i in range(4)]

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
        link = start("superlink", [str(BIN / "flower-superlink"), "--ssl-ca-certfile", str(ca), "--ssl-certfile",
                                   str(server_cert), "--ssl-keyfile", str(server_key), "--enable-supernode-auth",
                                   "--host", HOST, "--port", str(link_port),
                                   "--disable-runtime-dependency-installation"], env)
        wait_listening(link_port, link, logs / "superlink.log")
        sapp.write_flower_config(flwr_home, name="test", address=f"{HOST}:{link_port}", insecure=False,
                                 root_certificates=ca)
        for _, public in keys[:3]:  # the SuperLink admits only registered node keys
            flwr(env, "supernode", "register", str(public), "test", cwd=tmp_path)
        for i, home in enumerate(homes):  # each through `lifevault federate node`, which runs flower-supernode
            start(f"supernode-{i}", [sys.executable, "-m", "lifevault.cli", "federate", "node", "--superlink",
                                     f"{HOST}:{link_port}", "--root-certificates", str(ca), "--node-key", str(keys[i][0]),
                                     "--home", str(home), "--passphrase-file", str(pp), "--port", str(free_port()),
                                     "--flower-home", str(tmp_path / f"flwr-node-{i}")], env)

        rounds = {}
        for mode in ("central", "distributed"):
            results = tmp_path / f"results-{mode}.json"
            cfg = sapp.ServerConfig(num_rounds=1, mode=mode, clip_norm=0.5, noise_multiplier=2.0, min_nodes=3,
                                    wait_for_nodes_s=90.0, local_steps=10, batch_size=32, round_timeout_s=240.0,
                                    results_file=str(results), model_id=f"integration-{mode}")
            run_to_completion(env, sapp.write_flower_app(tmp_path / f"app-{mode}", cfg), results, tmp_path)
            rounds[mode] = json.loads(results.read_text())
    finally:
        stop_all(procs)

    assert all(p.poll() is not None for p in procs)
    end = time.monotonic() + 10  # SIGKILL is asynchronous: give the kernel a moment to reap
    while leftovers(tmp_path) and time.monotonic() < end:
        time.sleep(0.2)
    assert leftovers(tmp_path) == []  # no superexec, clientapp or serverapp left behind, orphans included
    for mode in ("central", "distributed"):
        assert [(r["round"], r["sent"], r["received"], r["applied"]) for r in rounds[mode]] == [(1, 3, 3, True)]
    with Vault.open(homes[3], PASSPHRASE) as v:
        assert list(vledger.releases(v)) == []  # the unregistered node was never admitted, so never asked
    for home in homes[:3]:
        with Vault.open(home, PASSPHRASE) as v:
            rows = [r.body for r in vledger.releases(v)]
            assert vledger.verify(v).ok and vledger.cross_check(v).ok
        assert [(r["model_id"], r["mode"], r["mechanism"], r["noise_shares"]) for r in rows] == [
            ("integration-central", "central", "gaussian", 1), ("integration-distributed", "distributed", "skellam", 3)]


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Flower's simulation engine needs flwr[simulation]")
def test_a_distributed_round_goes_through_secagg_in_flowers_simulation_engine(tmp_path):
    from federated import simulate as sim

    fleet = sim.build_fleet(tmp_path / "fleet", 4, populate=lambda v, i: fill_device(v, seed=20 + i, days=14))
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
            assert [(r["round"], r["mode"], r["mechanism"], r["epsilon_label"]) for r in rows] == [
                (1, "distributed", "skellam", "distributed (honest majority)")]
            assert rows[0]["skellam"]["noise_shares"] == 3 and rows[0]["skellam"]["bits"] == 22
        else:
            assert rows == []  # the held-out device never released anything


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Flower's simulation engine needs flwr[simulation]")
def test_a_run_takes_over_an_engine_started_ahead_in_a_thread_and_shuts_it_down(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    import ray

    from federated import simulate as sim

    fleet = sim.build_fleet(tmp_path / "fleet", 3, populate=lambda v, i: fill_device(v, seed=30 + i, days=14))
    before = dict(os.environ)
    with ThreadPoolExecutor(1) as ahead:  # its thread outlives the run, as start_engine asks
        ahead.submit(sim.start_engine, fleet.root).result()
        assert ray.is_initialized()
        flower = sapp.flower_env(fleet.root / "flwr", base={}, pythonpath=[tmp_path])
        assert {k: os.environ.get(k) for k in flower} == {k: before.get(k) for k in flower}  # for the start only
        result = sim.simulate(fleet, rounds=1, mode="central", epsilon=4.0, eval_fraction=0.0, local_steps=5)
    assert [(r.sent, r.received, r.applied) for r in result.rounds] == [(3, 3, True)]
    assert not ray.is_initialized()  # the run shut down the engine it ran on
    sim.stop_engine()  # nothing left to stop: a no-op


def test_a_node_refuses_plaintext_to_a_superlink_off_this_machine(capsys):
    from lifevault.cli import main

    rc = main(["federate", "node", "--superlink", "10.1.2.3:9092", "--insecure"])
    err = capsys.readouterr().err
    assert rc != 0 and "only allowed for a SuperLink on this machine" in err and "Traceback" not in err


@pytest.mark.parametrize("case", ["missing", "not-a-key", "with-insecure", "ca-is-not-a-certificate"])
def test_a_node_refuses_an_unusable_ca_or_node_key_in_one_line(case, tmp_path, capsys):
    from lifevault.cli import main

    private, _ = node_key(tmp_path, "n")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    args = {"missing": ["--root-certificates", str(ca), "--node-key", str(tmp_path / "absent.key")],
            "not-a-key": ["--root-certificates", str(ca), "--node-key", str(ca)],
            "with-insecure": ["--insecure", "--node-key", str(private)],
            "ca-is-not-a-certificate": ["--root-certificates", str(private)]}[case]
    rc = main(["federate", "node", "--superlink", f"{HOST}:9092", *args])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip().count("\n") <= 3 and "Traceback" not in err
    assert ("--node-key" in err or "--root-certificates" in err)


def test_a_ca_bundle_is_read_up_to_max_pem_bytes(tmp_path, capsys, monkeypatch):
    from lifevault import cli_federate
    from lifevault.cli import main

    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    ca = tmp_path / "ca.pem"
    for size, refused in ((cli_federate.MAX_PEM_BYTES, False), (cli_federate.MAX_PEM_BYTES + 1, True)):
        ca.write_bytes(pem + b"#" * (size - len(pem)))
        rc = main(["federate", "node", "--superlink", f"{HOST}:9092", "--root-certificates", str(ca),
                   "--home", str(tmp_path / "no-vault")])
        err = capsys.readouterr().err
        assert rc != 0 and ("larger than" in err) is refused  # under the bound: it stops later, at the missing vault


def test_simulate_rejects_an_unknown_mode_in_one_line(capsys):
    from lifevault.cli import main

    rc = main(["federate", "simulate", "--mode", "gossip"])
    err = capsys.readouterr().err
    assert rc != 0 and "'gossip' is not one of 'local', 'central', 'distributed'" in err and "Traceback" not in err
