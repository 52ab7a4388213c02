"""keys.json is trusted only within bounds: Argon2id parameters between the floor and the ceiling, every field
present and of its shape, wrapped keys where they belong. Anything else is "keys.json is damaged", one line,
before any slow work, never "wrong passphrase" or an internal error; `passwd` never lowers the parameters."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lifevault.cli import main
from tests.conftest import FAST_KDF, PASSPHRASE
from vault import keys as keymod
from vault.errors import KeysDamaged, WrongPassphrase
from vault.keys import (
    KDF_MAX_ITERATIONS,
    KDF_MAX_LANES,
    KDF_MAX_MEMORY_KIB,
    KDF_MIN_ITERATIONS,
    KDF_MIN_LANES,
    KDF_MIN_MEMORY_KIB,
    KdfParams,
)
from vault.store import Vault

STRONGER = KdfParams(memory_kib=24 * 1024, iterations=3, lanes=1)  # above the floor, still quick


def edit(home: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = home / "keys.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def kdf(home: Path, record: str = "kdf") -> tuple[int, int, int]:
    k = json.loads((home / "keys.json").read_text())[record]
    return k["memory_kib"], k["iterations"], k["lanes"]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.fixture
def closed(new_vault: tuple[Vault, str], home: Path) -> tuple[Path, str]:
    vault, code = new_vault
    vault.close()
    return home, code


# ---- the bounds themselves ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "floor", "ceiling"), [
    ("memory_kib", KDF_MIN_MEMORY_KIB, KDF_MAX_MEMORY_KIB),
    ("iterations", KDF_MIN_ITERATIONS, KDF_MAX_ITERATIONS),
    ("lanes", KDF_MIN_LANES, KDF_MAX_LANES),
])
def test_kdf_parameters_are_accepted_at_the_floor_and_ceiling_and_refused_just_outside(field, floor, ceiling):
    base = {"memory_kib": KDF_MIN_MEMORY_KIB, "iterations": KDF_MIN_ITERATIONS, "lanes": KDF_MIN_LANES}
    assert getattr(KdfParams(**base | {field: floor}), field) == floor
    assert getattr(KdfParams(**base | {field: ceiling}), field) == ceiling
    with pytest.raises(ValueError, match="below the floor"):
        KdfParams(**base | {field: floor - 1})
    with pytest.raises(ValueError, match="above the ceiling"):
        KdfParams(**base | {field: ceiling + 1})


def test_the_floor_is_owasps_argon2id_minimum_and_the_test_vaults_use_exactly_it():
    assert (KDF_MIN_MEMORY_KIB, KDF_MIN_ITERATIONS, KDF_MIN_LANES) == (19 * 1024, 2, 1)
    assert FAST_KDF == keymod.KDF_FLOOR


# ---- keys.json read back -----------------------------------------------------------------------------------

def test_keys_json_with_its_kdf_lowered_is_refused_as_damaged_or_weakened(closed):
    home, _ = closed
    edit(home, lambda d: d["kdf"].update(memory_kib=8, iterations=1))
    with pytest.raises(KeysDamaged) as e:
        Vault.open(home, PASSPHRASE)
    msg = str(e.value)
    assert "keys.json is damaged or weakened" in msg and "8 KiB is below the floor of 19 MiB" in msg
    assert "passwd --recovery-code" in msg and "\n" not in msg


def test_keys_json_with_iterations_raised_to_ten_million_is_refused_at_once(closed):
    home, _ = closed
    edit(home, lambda d: d["kdf"].update(iterations=10_000_000))
    t0 = time.perf_counter()
    with pytest.raises(KeysDamaged, match="10000000 iterations is above the ceiling of 10"):
        Vault.open(home, PASSPHRASE)
    assert time.perf_counter() - t0 < 1.0


def test_a_recovery_side_lowered_is_refused_for_the_recovery_code_only(closed):
    home, code = closed
    edit(home, lambda d: d["recovery_kdf"].update(memory_kib=1024))
    with pytest.raises(KeysDamaged, match="damaged or weakened: its recovery-code Argon2id memory 1 MiB"):
        Vault.open(home, recovery_code=code)
    Vault.open(home, PASSPHRASE).close()  # the passphrase side is intact


@pytest.mark.parametrize(("what", "change"), [
    ("lanes 0 on both sides", lambda d: [d[r].update(lanes=0) for r in ("kdf", "recovery_kdf")]),
    ("iterations as a string", lambda d: d["kdf"].update(iterations="3")),
    ("memory as a float", lambda d: d["kdf"].update(memory_kib=1e7)),
    ("iterations as a boolean", lambda d: d["recovery_kdf"].update(iterations=True)),
    ("a missing lanes", lambda d: d["kdf"].pop("lanes")),
    ("a missing recovery kdf", lambda d: d.pop("recovery_kdf")),
    ("another kdf", lambda d: d["kdf"].update(name="scrypt")),
    ("a short salt", lambda d: d["kdf"].update(salt="AAAA")),
    ("a missing wrapped key", lambda d: d["wrapped"]["passphrase"].pop("rowid")),
    ("a missing recovery key wrap", lambda d: d["wrapped"]["passphrase"].pop("recovery_kek")),
    ("a wrapped key as a list", lambda d: d["wrapped"]["recovery"].update(sealed=[1, 2])),
    ("a nonce of the wrong size", lambda d: d["wrapped"]["passphrase"]["duckdb"].update(nonce="AAAA")),
    ("a wrapped key not base64", lambda d: d["wrapped"]["passphrase"]["duckdb"].update(ct="not base64!")),
    ("a missing pending field", lambda d: d.pop("pending")),
    ("a malformed pending rotation", lambda d: d.update(pending={"passphrase": {}})),
    ("a missing meta", lambda d: d.pop("meta")),
])
def test_a_malformed_keys_json_says_damaged_in_one_line_from_the_library_and_the_cli(
        closed, capsys, monkeypatch, what, change):
    home, code = closed
    edit(home, change)
    for opener in (lambda: Vault.open(home, PASSPHRASE), lambda: Vault.open(home, recovery_code=code)):
        with pytest.raises(KeysDamaged, match="keys.json is damaged"):
            opener()
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    status, err = cli(capsys, "status", "--home", str(home))
    assert status == 1 and "keys.json is damaged" in err and err.count("\n") == 1, (what, err)
    assert "internal error" not in err and "wrong passphrase" not in err


@pytest.mark.parametrize(("side", "a", "b"), [
    ("passphrase", "duckdb", "sealed"),
    ("passphrase", "rowid", "recovery_kek"),
    ("recovery", "sealed", "rowid"),
])
def test_swapped_wrapped_keys_say_damaged_not_wrong_passphrase(closed, side, a, b):
    home, code = closed

    def swap(d: dict[str, Any]) -> None:
        w = d["wrapped"][side]
        w[a], w[b] = w[b], w[a]

    edit(home, swap)
    with pytest.raises(KeysDamaged, match="keys.json is damaged .*swapped or altered"):
        if side == "passphrase":
            Vault.open(home, PASSPHRASE)
        else:
            Vault.open(home, recovery_code=code)
    with pytest.raises(WrongPassphrase):  # a wrong secret on the same file is still just that
        if side == "passphrase":
            Vault.open(home, "not the passphrase")
        else:
            Vault.open(home, recovery_code="AAAAA-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA")


def test_a_wrapped_key_swapped_across_the_two_sides_says_damaged_to_both_secrets(closed):
    home, code = closed

    def swap(d: dict[str, Any]) -> None:
        w = d["wrapped"]
        w["passphrase"]["duckdb"], w["recovery"]["duckdb"] = w["recovery"]["duckdb"], w["passphrase"]["duckdb"]

    edit(home, swap)
    with pytest.raises(KeysDamaged, match="swapped or altered"):
        Vault.open(home, PASSPHRASE)
    with pytest.raises(KeysDamaged, match="swapped or altered"):
        Vault.open(home, recovery_code=code)


# ---- passwd keeps or raises --------------------------------------------------------------------------------

def test_passwd_with_the_recovery_code_after_a_lowering_restores_the_original_parameters(tmp_path):
    home = tmp_path / "home"
    vault, code = Vault.create(home, PASSPHRASE, kdf=STRONGER)
    vault.close()
    edit(home, lambda d: d["kdf"].update(memory_kib=8, iterations=1))  # what an attacker with write access does
    with pytest.raises(KeysDamaged, match="weakened"):
        Vault.open(home, PASSPHRASE)
    with Vault.open(home, recovery_code=code) as v:
        v.change_passphrase("a brand new passphrase")
    assert kdf(home) == (24 * 1024, 3, 1)  # the recovery side's parameters, not the lowered ones
    Vault.open(home, "a brand new passphrase").close()


def test_passwd_refuses_to_lower_the_parameters(closed):
    home, _ = closed
    keys = keymod.unlock(home, PASSPHRASE)
    keymod.change_passphrase(home, keys, "second", kdf=STRONGER)
    assert kdf(home) == (24 * 1024, 3, 1)
    with pytest.raises(ValueError, match="never lowered"):
        keymod.change_passphrase(home, keys, "third", kdf=FAST_KDF)
    keymod.change_passphrase(home, keys, "third")  # no parameters: the current ones are kept
    assert kdf(home) == (24 * 1024, 3, 1)


def test_cli_passwd_raises_the_kdf_and_refuses_to_lower_it(tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    Vault.create(home, PASSPHRASE, kdf=FAST_KDF)[0].close()
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("LIFEVAULT_NEW_PASSPHRASE", "second passphrase")
    code, err = cli(capsys, "passwd", "--home", str(home), "--kdf-memory-mib", "24", "--kdf-iterations", "3")
    assert code == 0, err
    assert kdf(home) == (24 * 1024, 3, 1)
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", "second passphrase")
    before = (home / "keys.json").read_bytes()
    code, err = cli(capsys, "passwd", "--home", str(home), "--kdf-memory-mib", "20")
    assert code == 2 and "never lowers them (now 24 MiB, 3 iterations, 1 lanes)" in err
    code, err = cli(capsys, "passwd", "--home", str(home), "--kdf-iterations", "11")
    assert code == 2 and "above the ceiling of 10" in err
    assert (home / "keys.json").read_bytes() == before
    assert cli(capsys, "passwd", "--home", str(home))[0] == 0  # nothing asked: kept
    assert kdf(home) == (24 * 1024, 3, 1)


@pytest.mark.parametrize(("option", "value", "bound"), [
    ("--kdf-memory-mib", "18", "below the floor of 19 MiB"),
    ("--kdf-iterations", "1", "below the floor of 2"),
    ("--kdf-lanes", "0", "below the floor of 1"),
    ("--kdf-memory-mib", "1025", "above the ceiling of 1024 MiB"),
    ("--kdf-iterations", "11", "above the ceiling of 10"),
    ("--kdf-lanes", "17", "above the ceiling of 16"),
])
def test_init_outside_the_kdf_bounds_is_a_usage_error_and_creates_nothing(
        tmp_path, capsys, monkeypatch, option, value, bound):
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    floor = {"--kdf-memory-mib": "19", "--kdf-iterations": "2", "--kdf-lanes": "1"} | {option: value}
    code, err = cli(capsys, "init", "--home", str(tmp_path / "home"), *[x for kv in floor.items() for x in kv])
    assert code == 2 and bound in err and "Traceback" not in err
    assert not (tmp_path / "home" / "keys.json").exists()


def test_init_at_the_floor_creates_a_vault(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    home = tmp_path / "home"
    code, err = cli(capsys, "init", "--home", str(home), "--kdf-memory-mib", "19", "--kdf-iterations", "2",
                    "--kdf-lanes", "1")
    assert code == 0, err
    assert kdf(home) == kdf(home, "recovery_kdf") == (19 * 1024, 2, 1)
