"""The vault home is 0700 even when it already existed with looser modes, and the CLI says when it changed it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lifevault.cli import main
from tests.conftest import FAST_KDF, PASSPHRASE
from vault.store import HOME_MODE, Vault

FAST = ["--kdf-memory-mib", str(FAST_KDF.memory_kib // 1024), "--kdf-iterations", str(FAST_KDF.iterations),
        "--kdf-lanes", str(FAST_KDF.lanes)]


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def env(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("LIFEVAULT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_init_in_an_existing_world_readable_directory_makes_it_private_and_says_so(env: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    env.mkdir(mode=0o755)
    env.chmod(0o755)
    assert main(["init", *FAST]) == 0
    err = capsys.readouterr().err
    assert mode(env) == HOME_MODE == 0o700
    assert "had mode 0755; made it 0700" in err


def test_a_home_loosened_after_init_is_made_private_again_when_opened(env: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["init", *FAST]) == 0
    assert "made it 0700" not in capsys.readouterr().err  # created 0700: nothing to say
    env.chmod(0o775)
    assert main(["status", "--json"]) == 0
    assert mode(env) == 0o700 and "had mode 0775; made it 0700" in capsys.readouterr().err
    assert main(["status", "--json"]) == 0
    assert "made it 0700" not in capsys.readouterr().err  # said once, when it changed


@pytest.mark.parametrize("loose", [0o755, 0o711, 0o750, 0o701, 0o1777])
def test_opening_the_vault_in_the_library_makes_its_home_private(tmp_path: Path, loose: int) -> None:
    home = tmp_path / "home"
    Vault.create(home, PASSPHRASE, kdf=FAST_KDF)[0].close()
    home.chmod(loose)
    with Vault.open(home, PASSPHRASE) as v:
        assert mode(home) == 0o700 and v.home_mode_was == loose
    with Vault.open(home, PASSPHRASE) as v:
        assert v.home_mode_was is None
